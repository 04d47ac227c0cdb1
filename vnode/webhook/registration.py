"""The MutatingWebhookConfiguration, written by the webhook itself and kept in step with its CA bundle.

kopf can manage an admission configuration but not its namespaceSelector (kopf#864), and
the selectors are the point here: the API server should call the webhook only for pods that
may need it, so an outage or a slow reply never touches the rest of the cluster.

Selectors are ANDed within one webhook entry, and "namespace label OR pod label" is an OR, so
the configuration holds three entries with disjoint selectors (a pod matches at most one):

1. namespaces labelled ``virtual-node-affinity-injection`` in (enabled, burst);
2. namespaces carrying a provider's force label (``mutation.FORCE_LABELS``, from the providers'
   profiles), and not 1 nor an earlier force label;
3. pods carrying a force label in any other namespace.

With one force label that makes three entries. All leave out ``kube-system`` and pods with the
opt-out label, serve pods CREATE only, have ``sideEffects: None``, a short timeout and the
failurePolicy ``Ignore`` by default.

Every replica applies the same configuration with server-side apply under one field manager:
identical applies are no-ops, so replicas need no leader; ``force`` lets a newer replica take
over fields an older one set (a rolling upgrade that changes the timeout, say).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from vnode import errors
from vnode.kube import api, client, objects
from vnode.webhook import certs, mutation

log = logging.getLogger(__name__)

FIELD_MANAGER = "vnode-webhook"
PATH = "/mutate"


@dataclasses.dataclass(frozen=True)
class ServiceRef:
    """In-cluster: the API server reaches the webhook through this Service."""

    namespace: str
    name: str
    port: int = 443

    def hosts(self) -> list[str]:
        base = f"{self.name}.{self.namespace}"
        return [f"{base}.svc", base, f"{base}.svc.cluster.local"]


@dataclasses.dataclass(frozen=True)
class Registration:
    """What the configuration says, apart from the CA bundle (which follows the certificate)."""

    name: str = "vnode-webhook"
    url: str | None = None  # out of cluster, e.g. https://127.0.0.1:8443/mutate
    service: ServiceRef | None = None
    failure_policy: Literal["Ignore", "Fail"] = "Ignore"
    timeout_seconds: int = 3
    # Extra namespace labels every entry requires (key -> value): confines the webhook, e.g. to test namespaces.
    namespace_match: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.url is None) == (self.service is None):
            raise ValueError("a webhook registration needs exactly one of url or service")
        if not 1 <= self.timeout_seconds <= 30:
            raise ValueError("timeoutSeconds must be between 1 and 30")


def _requirement(key: str, operator: str, values: Sequence[str]) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


def configuration(reg: Registration, ca_bundle: bytes) -> dict[str, Any]:
    """The full MutatingWebhookConfiguration object, ready to apply."""
    client: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle).decode()}
    if reg.url is not None:
        client["url"] = reg.url
    else:
        assert reg.service is not None
        client["service"] = {
            "namespace": reg.service.namespace,
            "name": reg.service.name,
            "path": PATH,
            "port": reg.service.port,
        }
    never = [
        _requirement("kubernetes.io/metadata.name", "NotIn", sorted(mutation.PROTECTED_NAMESPACES)),
        *(_requirement(key, "In", [value]) for key, value in sorted(reg.namespace_match.items())),
    ]
    injection_on = _requirement(mutation.INJECTION_LABEL, "In", ["enabled", "burst"])
    injection_off = _requirement(mutation.INJECTION_LABEL, "NotIn", ["enabled", "burst"])
    not_opted_out = _requirement(mutation.OPT_OUT_LABEL, "NotIn", ["disabled"])
    on = [_requirement(f.key, "In", [f.value]) for f in mutation.FORCE_LABELS]
    off = [_requirement(f.key, "NotIn", [f.value]) for f in mutation.FORCE_LABELS]
    # (name, namespace requirements, pod requirements): disjoint, so a pod is reviewed at most once.
    entries = [("namespace-injection", [injection_on], [not_opted_out])]
    for n, forced in enumerate(mutation.FORCE_LABELS):
        entries.append((f"namespace-{forced.provider}", [on[n], injection_off, *off[:n]], [not_opted_out]))
    for n, forced in enumerate(mutation.FORCE_LABELS):
        entries.append((f"pod-{forced.provider}", [*off, injection_off], [not_opted_out, on[n], *off[:n]]))
    webhooks = [
        {
            "name": f"{suffix}.{reg.name}.vnode.io",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "timeoutSeconds": reg.timeout_seconds,
            "failurePolicy": reg.failure_policy,
            "matchPolicy": "Equivalent",
            "reinvocationPolicy": "Never",
            "clientConfig": client,
            "rules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["pods"],
                    "scope": "Namespaced",
                }
            ],
            "namespaceSelector": {"matchExpressions": [*never, *namespace_terms]},
            "objectSelector": {"matchExpressions": object_terms},
        }
        for suffix, namespace_terms, object_terms in entries
    ]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": reg.name, "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
        "webhooks": webhooks,
    }


async def apply(kube: client.Client, reg: Registration, ca_bundle: bytes) -> None:
    """Server-side apply the configuration; idempotent, safe from several replicas at once.

    The field manager is the client's (``vnode-webhook`` in ``vnode webhook``).
    """
    await api.apply_webhook_configuration(kube, reg.name, configuration(reg, ca_bundle))


async def shared_ca(kube: client.Client, namespace: str, name: str) -> certs.Pem:
    """The CA every replica signs with, from a Secret; the first replica to find none creates it.

    Two replicas starting together may both generate a CA; the API server accepts one create
    and answers the other 409, and the loser reads the winner's Secret.
    """
    try:
        return _ca_from_secret(await api.read(kube, api.secrets(namespace), name))
    except errors.NotFound:
        pass
    ca = certs.make_ca()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
        "type": "Opaque",
        "data": {"ca.crt": base64.b64encode(ca.cert).decode(), "ca.key": base64.b64encode(ca.key).decode()},
    }
    try:
        await api.create_secret(kube, namespace, secret)
        log.info("created the webhook CA secret", extra={"secret": f"{namespace}/{name}"})
        return ca
    except errors.Conflict:
        return _ca_from_secret(await api.read(kube, api.secrets(namespace), name))


def _ca_from_secret(secret: objects.Secret) -> certs.Pem:
    try:
        return certs.Pem(base64.b64decode(secret.data["ca.crt"]), base64.b64decode(secret.data["ca.key"]))
    except KeyError as exc:
        raise ValueError(f"the CA secret lacks {exc.args[0]}") from exc
