"""The kubelet API of a virtual node: logs, exec, attach, stats and metrics over HTTPS.

``server.KubeletServer`` serves it; ``auth`` checks callers like the real kubelet does;
``certs`` gets its serving certificate from the cluster's signer; ``remotecommand`` is the
WebSocket protocol of exec and attach; ``stats`` the shapes metrics-server reads. It knows the
node's pods only through ``pods.PodDirectory``, which the node package implements.
"""

__all__ = ["auth", "certs", "clock", "pods", "remotecommand", "server", "stats"]
