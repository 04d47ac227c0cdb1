"""The orphan decision: keep, adopt or delete one cloud instance, given what the caller knows.

Three parts of vnode look at a listing of instances and must tell the instances of live pods
from the leftovers: a node's own collection (at start-up, where it also adopts what its live
pods already run, and every ``--orphan-interval``), the drain at scale-in, and ``vnode gc``
(and its share run by replica 0). They differ only in what they know, so they describe that
in a :class:`Known` and ask :func:`decide`, which never does I/O; the table of its answers is
tests/unit/test_orphans.py.

The rules, in order:

1. **Another cluster's or another node's instance is kept**: never touched, even when a
   provider filtered its listing loosely.
2. **A view that is not complete keeps everything**: a cold watch cache lacks pods that
   exist, and deleting their healthy instances is the worst thing a restart can do. A view is
   complete when the pods were read *after* the instances were listed (a pod exists before its
   instance does, so an instance whose pod is missing from a later read belongs to a pod that
   is gone): a fresh read (drain, gc), or a watch cache synced before a listing that began
   after the sync (a node's own collection).
3. **An instance whose pod is gone is deleted**, and so is one whose node is gone (when the
   caller knows the nodes; a node's own collection knows its node exists).
4. **An instance whose pod is live is adopted**: the pod's instance, whoever created it.
5. When the caller did not look at pods (gc's cheap pass, nodes only), what is left is kept.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Mapping

from vnode import models

__all__ = ["Decision", "Known", "Verdict", "decide"]


class Verdict(enum.StrEnum):
    KEEP = "keep"  # not ours to judge (another cluster or node, or an incomplete view)
    ADOPT = "adopt"  # the instance of a live pod
    DELETE = "delete"  # an orphan: its pod or its node is gone


@dataclasses.dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str  # "pod gone", "node gone", "another cluster's", ...

    @property
    def delete(self) -> bool:
        return self.verdict is Verdict.DELETE


@dataclasses.dataclass(frozen=True)
class Known:
    """What the caller knows when it judges a listing of instances."""

    cluster_id: str
    #: This node's name, for a node's own collection and a drain; None for the whole cluster (gc).
    node: str | None
    #: UIDs of the pods that exist; None when pods were not looked at.
    live_pods: Collection[str] | None
    #: Names of the nodes that exist; None when nodes were not looked at (this node exists).
    live_nodes: Collection[str] | None = None
    #: The pods were read after the instances were listed (see rule 2).
    complete: bool = True


def decide(tags: Mapping[str, str], known: Known) -> Decision:
    """What to do with the instance carrying ``tags`` (``models.TAG_*``), and why."""
    if tags.get(models.TAG_CLUSTER) != known.cluster_id:
        return Decision(Verdict.KEEP, "another cluster's")
    if known.node is not None and tags.get(models.TAG_NODE) != known.node:
        return Decision(Verdict.KEEP, "another node's")
    if not known.complete:
        return Decision(Verdict.KEEP, "the view of pods is not complete")
    if known.live_pods is not None and tags.get(models.TAG_POD_UID, "") not in known.live_pods:
        return Decision(Verdict.DELETE, "pod gone")
    if known.live_nodes is not None and tags.get(models.TAG_NODE, "") not in known.live_nodes:
        return Decision(Verdict.DELETE, "node gone")
    if known.live_pods is not None:
        return Decision(Verdict.ADOPT, "its pod exists")
    return Decision(Verdict.KEEP, "its pod was not looked at")
