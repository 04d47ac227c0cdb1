"""The node's own identity: the daemon acting as ``system:node:<name>``, as its kubelet would.

A kubelet reads only the Secrets, ConfigMaps, claims and volumes of the pods bound to it, and
requests tokens only for their service accounts: the API server's Node authorizer grants
``system:node:<name>`` in ``system:nodes`` exactly those, and NodeRestriction binds each token
to one of the node's pods. The daemon runs as a ServiceAccount, whose RBAC cannot name the
Secrets of pods not yet created; instead it may impersonate its own nodes' users only
(``impersonate`` with ``resourceNames``, the chart's ClusterRole), and reads those objects as
the node. A stolen daemon token then reads no Secret of a pod elsewhere, and mints no token
for an account no pod of a virtual node uses.
"""

from __future__ import annotations

from vnode import errors
from vnode.kube import api, client

__all__ = ["NODES_GROUP", "as_node", "check", "user_of"]

NODES_GROUP = "system:nodes"


def user_of(node_name: str) -> str:
    return f"system:node:{node_name}"


def as_node(kube: client.Client, node_name: str) -> client.Client:
    """``kube`` acting as the node ``node_name`` (sharing its connections)."""
    return kube.impersonating(user_of(node_name), (NODES_GROUP,))


async def check(kube: client.Client, node_name: str) -> None:
    """Refuse to start, naming the fix, if the daemon may not act as its node.

    One SelfSubjectReview as the node: the API server answers with the user it took the request
    for, or refuses the impersonation (403). Unreachable: the start ends naming the API server,
    as every first call of ``vnode run`` does.
    """
    user = user_of(node_name)
    try:
        seen = await api.review_self(as_node(kube, node_name))
    except errors.Forbidden as exc:
        raise errors.ConfigError(
            f"the daemon may not act as its node {user!r} ({exc.message}): grant it impersonate on users "
            f"{user!r} and groups {NODES_GROUP!r} (the chart does for daemon.maxReplicas nodes), "
            "or set VNODE_NODE_IDENTITY=false to read Secrets and request tokens as its own account"
        ) from exc
    if seen.username != user or NODES_GROUP not in seen.groups:
        raise errors.ConfigError(
            f"the daemon acting as its node {user!r} is seen as {seen.username!r} in {seen.groups}: "
            "the API server does not honour impersonation; set VNODE_NODE_IDENTITY=false"
        )
