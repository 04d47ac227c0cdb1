"""The node's cache of its instances' states, kept from the provider's change feed: the same for every provider.

A provider answers what changed since a cursor (``base.Provider.changes``); this cache applies
each answer and keeps the cursor for the next call, so a provider holds no state between
calls and a provider that can tell changes cheaply (ECI's incremental listing) costs in
proportion to the change. :attr:`Instances.by_uid` is the product the reconciler reads (the
pod controller's ``view.states``): the node's instances by pod UID, only those tagged with this
cluster and node.
"""

from __future__ import annotations

from collections.abc import Iterable

from vnode import models
from vnode.provider import base

__all__ = ["Instances"]


class Instances:
    def __init__(self, cluster_id: str, node_name: str) -> None:
        self.cluster_id = cluster_id
        self.node_name = node_name
        #: The cursor to pass to the next ``changes`` call; ``None``: the next answer must be complete.
        self.cursor: base.Cursor | None = None
        self._by_id: dict[str, models.InstanceState] = {}
        #: The node's instances by pod UID (the reconciler's view of the cloud).
        self.by_uid: dict[str, models.InstanceState] = {}
        self._uid_of: dict[str, str] = {}  # instance id -> pod UID, for those in by_uid

    def apply(self, changes: base.Changes) -> set[str]:
        """Take one answer of the feed in; returns the pod UIDs whose instance changed or went."""
        touched: set[str] = set()
        if changes.complete:
            listed = {state.id for state in changes.changed}
            for instance_id in [i for i in self._by_id if i not in listed]:
                touched.update(self._drop(instance_id))
        for instance_id in changes.gone:
            touched.update(self._drop(instance_id))
        for state in changes.changed:
            touched.update(self._put(state))
        self.cursor = changes.cursor
        return touched

    def put(self, state: models.InstanceState) -> set[str]:
        """One state from elsewhere (a push); the feed's next answers still count."""
        return self._put(state)

    def reset(self) -> None:
        """Forget the cursor: the next answer is a complete one (the states stay until it comes)."""
        self.cursor = None

    def states(self) -> Iterable[models.InstanceState]:
        return self.by_uid.values()

    def _put(self, state: models.InstanceState) -> set[str]:
        before = self._by_id.get(state.id)
        if before is state:
            return set()
        self._by_id[state.id] = state
        uid = self._uid(state)
        if uid is None:
            return self._forget_uid(state.id)
        old_uid = self._uid_of.get(state.id)
        touched = self._forget_uid(state.id) if old_uid is not None and old_uid != uid else set()
        previous = self.by_uid.get(uid)
        self.by_uid[uid] = state
        self._uid_of[state.id] = uid
        if previous is None or previous != state:
            touched.add(uid)
        return touched

    def _drop(self, instance_id: str) -> set[str]:
        self._by_id.pop(instance_id, None)
        return self._forget_uid(instance_id)

    def _forget_uid(self, instance_id: str) -> set[str]:
        uid = self._uid_of.pop(instance_id, None)
        if uid is None:
            return set()
        current = self.by_uid.get(uid)
        if current is not None and current.id == instance_id:
            del self.by_uid[uid]
        return {uid}

    def _uid(self, state: models.InstanceState) -> str | None:
        """The pod UID of an instance of this node, or None for anyone else's."""
        tags = state.tags
        if tags.get(models.TAG_CLUSTER) != self.cluster_id or tags.get(models.TAG_NODE) != self.node_name:
            return None
        return state.pod_uid or None
