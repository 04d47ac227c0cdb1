"""The mutating admission webhook: pods of labelled namespaces (or labelled pods) go to virtual nodes.

``mutation`` decides (pure), ``review`` reads and writes AdmissionReview v1, ``admission``
answers one review, ``server`` holds the HTTPS endpoints, ``certs`` the TLS, ``registration``
the MutatingWebhookConfiguration, ``namespaces`` the label cache, ``deletion_cost`` the loop
that makes burst pods on virtual nodes go first at scale-in, ``service`` runs them together,
and ``command`` is ``vnode webhook``.
"""

from vnode.webhook.mutation import Mode, Outcome, Result, mutate

__all__ = ["Mode", "Outcome", "Result", "mutate"]
