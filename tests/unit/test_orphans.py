"""The orphan decision as a table: one instance's tags and what the caller knows -> keep, adopt or delete."""

from __future__ import annotations

import pytest

from vnode import models
from vnode.node import orphans

KEEP, ADOPT, DELETE = orphans.Verdict.KEEP, orphans.Verdict.ADOPT, orphans.Verdict.DELETE


def tags(cluster: str = "c1", node: str = "vn-0", uid: str = "u-live") -> dict[str, str]:
    return {models.TAG_CLUSTER: cluster, models.TAG_NODE: node, models.TAG_POD_UID: uid,
            models.TAG_NAMESPACE: "ns", models.TAG_NAME: "p"}  # fmt: skip


# What each caller knows: a node's own collection (its node, its cached pods), a drain (its node,
# a fresh read of its pods), gc (the cluster's pods and nodes) and gc's cheap pass (nodes only).
NODE = orphans.Known("c1", "vn-0", live_pods={"u-live"})
COLD = orphans.Known("c1", "vn-0", live_pods=set(), complete=False)
GC = orphans.Known("c1", None, live_pods={"u-live"}, live_nodes={"vn-0"})
NODES_ONLY = orphans.Known("c1", None, live_pods=None, live_nodes={"vn-0"})

TABLE = [
    # (case, tags, known, verdict, reason)
    ("a live pod's instance is adopted", tags(), NODE, ADOPT, "its pod exists"),
    ("a gone pod's instance is deleted", tags(uid="u-gone"), NODE, DELETE, "pod gone"),
    ("an instance without a pod UID is deleted", tags(uid=""), NODE, DELETE, "pod gone"),
    ("another cluster's instance is kept", tags(cluster="c2", uid="u-gone"), NODE, KEEP, "another cluster's"),
    ("an untagged instance is kept", {}, NODE, KEEP, "another cluster's"),
    ("another node's instance is kept", tags(node="vn-1", uid="u-gone"), NODE, KEEP, "another node's"),
    ("a cold cache deletes nothing", tags(uid="u-gone"), COLD, KEEP, "the view of pods is not complete"),
    ("a cold cache keeps another cluster's too", tags(cluster="c2"), COLD, KEEP, "another cluster's"),
    ("gc adopts a live pod's instance on a live node", tags(), GC, ADOPT, "its pod exists"),
    ("gc deletes a gone pod's instance", tags(uid="u-gone"), GC, DELETE, "pod gone"),
    ("gc deletes a gone node's instance", tags(node="vn-7"), GC, DELETE, "node gone"),
    ("gc names the pod first when both are gone", tags(node="vn-7", uid="u-gone"), GC, DELETE, "pod gone"),
    ("gc keeps another cluster's instance", tags(cluster="c2", node="vn-7"), GC, KEEP, "another cluster's"),
    ("gc's cheap pass deletes a gone node's instance", tags(node="vn-7"), NODES_ONLY, DELETE, "node gone"),
    ("gc's cheap pass keeps a live node's", tags(uid="u-gone"), NODES_ONLY, KEEP, "its pod was not looked at"),
]


@pytest.mark.parametrize(("tags", "known", "verdict", "reason"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])  # fmt: skip
def test_the_orphan_decision(tags: dict[str, str], known: orphans.Known, verdict: str, reason: str) -> None:
    decision = orphans.decide(tags, known)
    assert (decision.verdict, decision.reason) == (verdict, reason)
    assert decision.delete == (verdict == DELETE)
