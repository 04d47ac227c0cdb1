"""The per-pod state of a node, in one place: what the pod controller sees, what the reconciler remembers.

Two kinds of state, each with its writers named here and nowhere else:

* :class:`View` is what the node knows right now, shared by the pod controller (which feeds
  it), the reconciler (which reads it, and records what its own cloud calls taught it) and
  the kubelet API and volume refresher (which only read it).
* :class:`Memory` is what the reconciler remembers about one pod between reconciles: lost
  on a restart and rebuilt from the cloud and the pod's status. Only :class:`Book` holds it.

Who writes what: every write is a method of :class:`Book`, named here with its callers (a
unit test fails when code elsewhere assigns to a View field or changes one in place):

=================  ==========================================================================
``View.pods``      the pod informer only: it is the informer's cache (by namespace/name), shared
``View.gone``      the pod watch (``PodController._on_pod``): :meth:`Book.mark_gone` adds the
                   UID of a pod deleted from the cache; the reconciler: :meth:`Book.forget`
                   removes it once it has dealt with that pod
``View.states``    the cloud listing (``PodController._apply``): :meth:`Book.listed` replaces it
                   whole with a copy of ``instances.Instances.by_uid``; a push
                   (``PodController._push``): :meth:`Book.pushed` sets one entry; the
                   reconciler: :meth:`Book.record` adds an instance it made or looked up,
                   :meth:`Book.drop` removes one whose pod it releases, :meth:`Book.forget` a
                   forgotten pod's; orphan collection (``PodController.collect_orphans``):
                   :meth:`Book.drop` removes an instance it deleted
``View.listed_at`` the cloud listing: :meth:`Book.listed` (monotonic time the listing began)
``View.created``   the reconciler: :meth:`Book.record` sets it when it made an instance; the
                   listing: :meth:`Book.listing_begins` clears it as a listing begins
``Book`` memory    the reconciler only: :meth:`Book.memory` reads it, :meth:`Book.remember`
                   stores what a decision says, :meth:`Book.wrote` the status a patch has
                   written, :meth:`Book.annotated` the cloud's annotations a metadata patch
                   has written, :meth:`Book.forget` drops a released or vanished pod
=================  ==========================================================================

The pod controller makes the Book and hands it to the reconciler; the others (the kubelet API,
the volume refresher) get the :class:`View` to read.

The reconciler handles one pod at a time (the work queue's guarantee), so a pod's memory has
one writer at any moment, and no lock is needed: everything runs on one event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from vnode import models
from vnode.kube import objects

__all__ = ["Book", "Memory", "View"]


@dataclasses.dataclass
class View:
    """What the pod controller knows right now, shared with the reconciler (writers: see the module)."""

    pods: dict[str, objects.Pod]  # the informer's cache, by namespace/name
    states: dict[str, models.InstanceState]  # the last listing, by pod UID
    listed_at: float = 0.0  # monotonic time the last complete listing *started*
    gone: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> UID of pods deleted from the cache
    created: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # an instance was made: list soon


@dataclasses.dataclass(frozen=True, slots=True)
class Memory:
    """What vnode remembers about a pod between reconciles (lost on restart, rebuilt from the cloud).

    Frozen: a decision returns the next memory rather than changing this one.
    """

    instance_id: str = ""
    created_at: float = 0.0  # monotonic time the create was sent
    seen_events: frozenset[tuple[str, str, int | str]] = frozenset()  # (reason, container, second) recorded
    written: Mapping[str, Any] | None = None  # the status last written (or found on the pod)
    warned: str = ""  # "reason:message" of the last warning event, to post each warning once
    delete_requested_at: float = 0.0  # monotonic time the instance's delete was accepted
    deleting: bool = False  # an instance existed when the delete was sent
    annotated: frozenset[tuple[str, str]] = frozenset()  # cloud annotations written to the pod
    misses: int = 0  # looks in a row that found a ConfigMap, Secret or claim missing (the back-off)


FRESH = Memory()


class Book:
    """The reconciler's memory of every pod, and every write to the shared :class:`View`."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._memory: dict[str, Memory] = {}

    def memory(self, uid: str) -> Memory:
        return self._memory.get(uid, FRESH)

    def remember(self, uid: str, memory: Memory) -> None:
        self._memory[uid] = memory

    def wrote(self, uid: str, status: Mapping[str, Any]) -> None:
        """A status patch for the pod landed: it is what the pod shows now."""
        self._memory[uid] = dataclasses.replace(self.memory(uid), written=status)

    def annotated(self, uid: str, annotations: Mapping[str, str]) -> None:
        """A metadata patch of the pod's cloud annotations landed: they are on the pod now."""
        memory = self.memory(uid)
        self._memory[uid] = dataclasses.replace(memory, annotated=memory.annotated | set(annotations.items()))

    def record(self, uid: str, state: models.InstanceState, *, made: bool) -> None:
        """The reconciler made (``made``) or looked up an instance: the view has it before the next listing."""
        self.view.states[uid] = state
        if made:
            self.view.created.set()

    def drop(self, uid: str) -> None:
        """The pod's instance is deleted, or no longer the pod's concern: out of the view."""
        self.view.states.pop(uid, None)

    def forget(self, uid: str, *, key: str = "") -> None:
        """The pod is released or gone: drop its memory and its instance (and, given its key, its gone mark)."""
        self._memory.pop(uid, None)
        self.view.states.pop(uid, None)
        if key:
            self.view.gone.pop(key, None)

    # --- the pod controller's writes ---

    def mark_gone(self, key: str, uid: str) -> None:
        """The pod watch saw the pod leave the cache: its key keeps its UID until the reconciler forgets it."""
        self.view.gone[key] = uid

    def listing_begins(self) -> None:
        """A listing begins: instances made from now on are seen by the next one, not this one."""
        self.view.created.clear()

    def listed(self, states: Mapping[str, models.InstanceState], began: float) -> list[str]:
        """A complete listing that began at ``began`` replaces the states; returns the pod UIDs whose
        state it changed or removed, in the listing's order and then the removed ones.

        The listing's word is final over what others wrote between listings; an unchanged state
        is usually the same object, so the comparison is by identity for all but the changed ones.
        """
        old = self.view.states
        changed = [uid for uid, state in states.items() if (before := old.get(uid)) is not state and before != state]
        changed.extend(uid for uid in old.keys() - states.keys())
        self.view.states = dict(states)
        self.view.listed_at = began
        return changed

    def pushed(self, uid: str, state: models.InstanceState) -> bool:
        """The cloud pushed the pod's instance state between listings; False if the view had it already."""
        if self.view.states.get(uid) == state:
            return False
        self.view.states[uid] = state
        return True
