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

import asyncio
import time

from vnode import errors
from vnode.kube import api, client, objects

__all__ = ["NODES_GROUP", "as_node", "check", "user_of"]

NODES_GROUP = "system:nodes"


def user_of(node_name: str) -> str:
    return f"system:node:{node_name}"


def as_node(kube: client.Client, node_name: str) -> client.Client:
    """``kube`` acting as the node ``node_name`` (sharing its connections)."""
    return kube.impersonating(user_of(node_name), (NODES_GROUP,))


async def check(kube: client.Client, node_name: str, *, retry_within: float = 300.0) -> None:
    """Refuse to start, naming the fix, if the daemon may not act as its node.

    One SelfSubjectReview as the node: the API server answers with the user it took the request
    for, or refuses the impersonation (403). An API server unreachable or throttling is asked
    again (a daemon started while the control plane restarts waits for it) for ``retry_within`` s.
    """
    user = user_of(node_name)
    try:
        seen = await _review(as_node(kube, node_name), retry_within)
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


async def _review(kube: client.Client, retry_within: float) -> objects.UserInfo:
    deadline, delay = time.monotonic() + retry_within, 0.5
    while True:
        try:
            return await api.review_self(kube)
        except errors.Retryable as exc:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(max(delay, exc.retry_after or 0.0))
            delay = min(delay * 2, 10.0)
