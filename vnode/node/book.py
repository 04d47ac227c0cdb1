"""The per-pod state of a node, in one place: what the pod controller sees, what the reconciler remembers.

Two kinds of state, each with its writers named here and nowhere else:

* :class:`View` is what the node knows right now, shared by the pod controller (which feeds
  it), the reconciler (which reads it, and records what its own cloud calls taught it) and
  the kubelet API and volume refresher (which only read it).
* :class:`Memory` is what the reconciler remembers about one pod between reconciles: lost
  on a restart and rebuilt from the cloud and the pod's status. Only :class:`Book` holds it.

Who writes what:

=================  ==========================================================================
``View.pods``      the pod informer (it is the informer's cache, by namespace/name)
``View.states``    the cloud listing replaces it whole, a push sets one entry, orphan
                   collection drops the instances it deleted; the reconciler, through
                   :class:`Book` only, records an instance it made or looked up and drops one
                   that is deleted or whose pod is released
``View.listed_at`` the cloud listing (monotonic time the last complete listing began)
``View.gone``      the pod watch adds the UID of a pod deleted from the cache; the reconciler,
                   through :class:`Book`, removes it once it has dealt with that pod
``View.created``   the reconciler, through :class:`Book`, sets it when it made an instance;
                   the listing clears it as it begins
``Book`` memory    the reconciler only: :meth:`Book.remember` stores what a decision says,
                   :meth:`Book.wrote` the status a patch has written, :meth:`Book.forget`
                   drops a released or vanished pod
=================  ==========================================================================

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
    seen_events: frozenset[tuple[str, str, str]] = frozenset()  # (reason, container, time) recorded
    written: Mapping[str, Any] | None = None  # the status last written (or found on the pod)
    warned: str = ""  # "reason:message" of the last warning event, to post each warning once
    delete_requested_at: float = 0.0  # monotonic time the instance's delete was accepted
    deleting: bool = False  # an instance existed when the delete was sent


FRESH = Memory()


class Book:
    """The reconciler's memory of every pod, and its writes to the shared :class:`View`."""

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
