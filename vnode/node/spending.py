"""What a node's instances have cost, counted per namespace and owning workload.

Each accounting pass prices every listed instance so far (the profile's ``spent``: billed size times
run time) and hands back what it cost since the pass before, under its pod's namespace and
owner, for a Prometheus counter (``vnode_workload_cost_dollars_total``). An instance billed below its
list price (spot: ``InstanceState.hourly_price``) is counted at its own price, and what that saved
against the list price is summed too (``vnode_spot_saved_dollars``). An instance is remembered only
while it is listed: one the cloud no longer lists had its last increment counted already, so the
memory is the node's live instances, not every instance it ever ran. What it cost between the
last pass and its end (at most one accounting interval) is not counted. After a restart the
counter starts again (a reset, as Prometheus expects of counters) from what the instances it
adopts have cost so far.

The owner is the workload a person names (a Deployment rather than its ReplicaSet, a CronJob
rather than its Job), as ``Kind/name``, or ``(none)`` for a bare pod. Labels are bounded: past
``MAX_SERIES`` (namespace, owner) pairs, a new owner is counted as ``(other)`` in its namespace,
and past ``MAX_SERIES`` such namespaces, as ``(other)`` in ``(other)``: a cluster that churns
names cannot grow the daemon's metrics without bound.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable

from vnode import models
from vnode.kube import objects
from vnode.provider import profile

__all__ = ["MAX_SERIES", "NONE", "OTHER", "Spending", "owner_of"]

MAX_SERIES = 500  # (namespace, owner) label pairs one node may make
NONE = "(none)"  # a bare pod, or an instance whose pod the node never saw
OTHER = "(other)"  # an owner past the bound
_LIVE = frozenset(models.InstanceStatus) - {
    models.InstanceStatus.SUCCEEDED, models.InstanceStatus.FAILED, models.InstanceStatus.EXPIRED,
    models.InstanceStatus.SCHEDULE_FAILED, models.InstanceStatus.TERMINATING,
}  # fmt: skip
_CRONJOB_JOB = re.compile(r"^(?P<base>.+)-\d{8,}$")  # a CronJob names its Jobs <cronjob>-<scheduled minute>


def owner_of(pod: objects.Pod) -> str:
    """The workload that owns ``pod``, as ``Kind/name`` (``(none)`` for a bare pod)."""
    ref = next((r for r in pod.metadata.owner_references if r.controller), None)
    if ref is None:
        ref = next(iter(pod.metadata.owner_references), None)
    if ref is None or not ref.kind:
        return NONE
    hash_ = pod.metadata.labels.get("pod-template-hash", "")
    if ref.kind == "ReplicaSet" and hash_ and ref.name.endswith(f"-{hash_}"):
        return f"Deployment/{ref.name[: -len(hash_) - 1]}"
    cron = _CRONJOB_JOB.match(ref.name) if ref.kind == "Job" else None
    if cron is not None:
        return f"CronJob/{cron['base']}"
    return f"{ref.kind}/{ref.name}"


@dataclasses.dataclass
class _Counted:
    namespace: str
    owner: str
    dollars: float  # counted so far
    saved: float = 0.0  # below the list price (spot), counted so far
    # What the pass needs of the instance's state, worked out when that state object is new: the feed
    # hands back the same object while nothing changed, and a pass prices every instance every interval.
    state: models.InstanceState | None = None
    start: float = 0.0  # epoch seconds
    end: float | None = None  # epoch seconds, once it finished
    billed: float = 0.0  # dollars per second
    below_list: float = 0.0  # dollars per second saved against the list price


class Spending:
    """The node's cost so far, and each live instance's share of it counted (see the module)."""

    def __init__(self, rules: profile.Profile, *, max_series: int = MAX_SERIES) -> None:
        self.rules = rules
        self.max_series = max_series
        self.total = 0.0  # every increment ever handed out: the node's cost so far
        self.saved = 0.0  # what its instances billed below the list price (spot) saved so far
        self.interruptible = 0  # live instances the cloud may take back (spot), at the last pass
        self._counted: dict[str, _Counted] = {}  # instance id -> what was counted of it
        self._series: set[tuple[str, str]] = set()  # (namespace, owner) pairs counted under their names
        self._others: set[tuple[str, str]] = set()  # (namespace, "(other)") pairs, past that bound

    def account(
        self, states: Iterable[models.InstanceState], pod_of: Callable[[str], objects.Pod | None], now: float
    ) -> dict[tuple[str, str], float]:
        """What the listed ``states`` cost since the last pass, by (namespace, owner); ``pod_of`` (a
        pod UID) names an instance's owner the first time it is priced. Instances not listed are forgotten."""
        increments: dict[tuple[str, str], float] = {}
        listed: dict[str, _Counted] = {}
        self.interruptible = 0
        for state in states:
            self.interruptible += state.interruptible and state.status in _LIVE
            if state.started_at is None:
                continue
            counted = self._counted.get(state.id) or self._first(state, pod_of(state.pod_uid))
            if counted.state is not state:
                _read(counted, state, self.rules)
            seconds = max(0.0, (now if counted.end is None else counted.end) - counted.start)
            spent = seconds * counted.billed
            if spent > counted.dollars:
                key = (counted.namespace, counted.owner)
                increments[key] = increments.get(key, 0.0) + spent - counted.dollars
                self.total += spent - counted.dollars
                counted.dollars = spent
            saved = seconds * counted.below_list
            if saved > counted.saved:
                self.saved += saved - counted.saved
                counted.saved = saved
            listed[state.id] = counted
        self._counted = listed
        return increments

    def _first(self, state: models.InstanceState, pod: objects.Pod | None) -> _Counted:
        namespace = state.tags.get(models.TAG_NAMESPACE) or NONE
        pair = (namespace, owner_of(pod) if pod is not None else NONE)
        if pair not in self._series and len(self._series) >= self.max_series:
            pair = (namespace, OTHER)  # past the bound of owners: the namespace's (other)
            if pair not in self._others and len(self._others) >= self.max_series:
                pair = (OTHER, OTHER)  # and past the bound of namespaces too
            self._others.add(pair)
        else:
            self._series.add(pair)
        return _Counted(*pair, dollars=0.0)


def _read(counted: _Counted, state: models.InstanceState, rules: profile.Profile) -> None:
    """Take what pricing needs from a state not seen before (``Profile.spent`` and ``saved``, per second)."""
    assert state.started_at is not None
    billed, listed = rules.rates(state)
    counted.state = state
    counted.start = state.started_at.timestamp()
    counted.end = state.finished_at.timestamp() if state.finished_at else None
    counted.billed = billed
    counted.below_list = max(0.0, listed - billed) if state.hourly_price else 0.0
