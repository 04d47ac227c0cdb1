"""What a lifecycle decision takes and gives: the facts about one pod, the node's fixed facts, the
decision, and the stage that makes it. ``vnode/node/lifecycle.py`` holds the table of stages and
their conditions and plans; these are its types (it exports them too).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from vnode import errors, models
from vnode.kube import objects
from vnode.node import book, events, pending
from vnode.node.answers import Answer

__all__ = ["ASKS", "Action", "Condition", "Config", "Decision", "Facts", "Lifecycle", "Plan", "Stage"]


class Lifecycle(enum.StrEnum):
    PENDING = "pending"  # no instance yet, or none can be made yet
    CREATING = "creating"  # an instance was just made; no listing shows it yet
    RUNNING = "running"  # an instance exists: the pod's status follows it
    FINISHED = "finished"  # Succeeded or Failed: nothing runs for it any more
    TERMINATING = "terminating"  # the pod is being deleted: stop the instance, then release the pod
    GONE = "gone"  # the pod left the API: its instance must go too


class Action(enum.StrEnum):
    NOTHING = "nothing"  # final: just the decision's status, events and memory
    RELEASE = "release"  # final: remove the pod object (grace 0, UID precondition) and forget it
    CREATE = "create"  # ask: build the instance spec, create it (answer: Created, Missing, Invalid, NoCapacity)
    LOOK_UP = "look-up"  # ask: describe ``instances[0]`` (answer: LookedUp)
    FIND = "find"  # ask: list the instances tagged with the pod's UID (answer: Found)
    DELETE = "delete"  # ask: delete ``instances`` with ``grace`` seconds (answer: Deleted)
    EVICT = "evict"  # final: delete the pod object with its grace period (its controller replaces it)
    EVICTION = "eviction"  # final: ask the Eviction API (PodDisruptionBudgets honoured); refused: look again


ASKS = frozenset({Action.CREATE, Action.LOOK_UP, Action.FIND, Action.DELETE})


# --- what a decision takes and gives ---


@dataclasses.dataclass(frozen=True, slots=True)
class Facts:
    """Everything known about one pod at one moment."""

    pod: objects.Pod | None  # None: gone from the API (the watch said so)
    uid: str  # the pod's UID; for a gone pod, the one the watch last saw ("" if none)
    state: models.InstanceState | None  # its instance as last listed, pushed or recorded
    memory: book.Memory
    now: datetime.datetime  # wall clock, for the times in a status
    moment: float  # monotonic clock
    listed_at: float  # monotonic time the last complete cloud listing began
    answer: Answer | None = None  # the cloud's answer to this reconcile's last ask
    draining: bool = False  # the node is being drained away: its pods are about to be evicted


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """The node's fixed facts a decision needs."""

    node_ip: str
    scheme: str  # the provider's containerID scheme: "eci" makes eci://<instance id>
    started_at: datetime.datetime  # when this daemon started: older cloud events were recorded before it
    # A just-created instance is almost always still starting, and the next listing usually shows
    # it further along: its first status waits for that (or this long), so that a pod that starts
    # within one listing gets one status write, not Pending then Running. 0: write at once.
    first_status_after: float = 0.0
    max_pending: pending.Rule = dataclasses.field(
        default_factory=pending.Rule
    )  # the provider's maximum-Pending-time annotation, if any
    # The provider's pod annotation (key, value) asking that a pod whose instance the cloud is about
    # to reclaim be evicted through the Eviction API, its PodDisruptionBudgets honoured; (): none.
    reclaim_eviction: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    stage: str = ""  # the stage that decided (set by :func:`decide`)
    action: Action = Action.NOTHING
    instances: tuple[str, ...] = ()  # DELETE: the instances; LOOK_UP: the one to describe
    grace: float = 0.0  # DELETE: the grace period, seconds
    events: tuple[events.Event, ...] = ()  # to post first, whatever the action
    status: Mapping[str, Any] | None = None  # to write: it differs from what the pod shows
    memory: book.Memory | None = None  # the pod's memory after (None: unchanged)
    record: models.InstanceState | None = None  # an instance this reconcile made or found: into the view
    forget: bool = False  # drop the pod's memory and instance from the book
    requeue: float | None = None  # seconds until another look, if one is due
    count: str = ""  # a cause to count in vnode_retries_total
    note: str = ""  # a warning to log
    error: errors.ApiError | None = None  # to raise once carried out: retry with backoff
    annotations: Mapping[str, str] | None = None  # the cloud's annotations the pod lacks: to patch

    def named(self, stage: str) -> Decision:
        """This decision as ``stage``'s. Positional, every field: ``dataclasses.replace`` cost a
        tenth of a steady pod's decision (tests/unit/test_decision.py checks no field is missed)."""
        return Decision(
            stage, self.action, self.instances, self.grace, self.events, self.status, self.memory,
            self.record, self.forget, self.requeue, self.count, self.note, self.error, self.annotations,
        )  # fmt: skip


Condition: TypeAlias = Callable[[Facts, Config], bool]
Plan: TypeAlias = Callable[[Facts, Config], Decision]


@dataclasses.dataclass(frozen=True, slots=True)
class Stage:
    name: str
    lifecycle: Lifecycle
    when: Condition
    plan: Plan
