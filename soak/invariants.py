"""The soak's invariants, read from the API server (a pod watch) and from the cloud's own record.

Each check runs every few seconds. A condition that is normal for a moment (an instance whose
pod was just deleted, a pod whose status write is on its way) becomes a *violation* only when it
lasts longer than its grace, and each violation names the pods and instances involved:

- **duplicated**: a pod with two live instances, at any moment (no grace: never acceptable);
- **leaked**: an instance whose pod is gone, for longer than ``LEAK_GRACE`` (its cost from then on
  is the leaked cost); at the end, after the settle time, any instance without a live pod;
- **lost**: a pod Running without an instance; a pod Pending while its instance runs; a finished pod
  whose instance runs, or a Running pod whose instance finished: each for longer than ``STATUS_GRACE``
  on a Ready node. A node that is not Ready (its daemon dead, or the cloud unreachable) says that
  its pods' statuses are unknown, as Kubernetes says it of a dead kubelet's (the node controller
  marks them not Ready): the grace starts again when the node is Ready. ``unknown_seconds`` counts
  the pod-seconds spent so, reported beside the violations;
- **stuck Terminating**: a pod deleted longer ago than its grace period plus ``TERMINATING_GRACE``.

The leaked and stuck Terminating bounds also allow the cloud's own time for the deletes queued
ahead: an instance cannot go faster than the account's delete rate (``DELETE_RATE``, ECI's 20/s),
so one whose delete became due while ``n`` instances were already waiting for theirs gets
``n / DELETE_RATE`` seconds more (a scale-in 3 → 1 under load queues about 3,600 deletes: three
minutes of the account's rate). Deletes served in order at the account's rate meet the bound; a
delete that stalls, or capacity left unused, does not.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from vnode import models
from vnode.kube import objects

LEAK_GRACE = 180.0  # a delete retried through a minute of 5xx and backoff, or a takeover, fits in it
STATUS_GRACE = 60.0  # the daemon lists the cloud every 2 s; a minute covers a restart or a storm
TERMINATING_GRACE = 180.0  # beyond the pod's own grace period: a dead replica's takeover fits in it
SETTLE_AGE = 20.0  # "settled": no candidate older than this
DELETE_RATE = 20.0  # the account's deletes per second (ECI's limit, the realistic profile's)


@dataclasses.dataclass
class PodSeen:
    uid: str
    key: str
    node: str
    phase: str
    grace: float
    first_seen: float
    deleting_since: float | None = None
    gone_at: float | None = None
    ahead: int = 0  # deletes already waiting when this pod was deleted


@dataclasses.dataclass
class Violation:
    kind: str
    subject: str  # namespace/name of the pod, or the instance id
    detail: str
    at: float


@dataclasses.dataclass
class Checker:
    """Fed by the pod watch (:meth:`on_pod`) and the cloud listings (:meth:`check`)."""

    node_prefix: str
    clock: Any = time.monotonic
    pods: dict[str, PodSeen] = dataclasses.field(default_factory=dict)  # by uid
    uid_of: dict[str, str] = dataclasses.field(default_factory=dict)  # namespace/name -> uid
    violations: dict[tuple[str, str], Violation] = dataclasses.field(default_factory=dict)
    since: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)  # candidate -> first seen
    leak_cost_from: dict[str, float] = dataclasses.field(default_factory=dict)  # instance -> cost at grace end
    leak_cost: dict[str, float] = dataclasses.field(default_factory=dict)
    cycles: int = 0  # pods bound to a soak node that were created and are gone again
    created: int = 0
    samples: list[tuple[float, int, int]] = dataclasses.field(default_factory=list)  # (t, live pods, instances)
    ready: dict[str, bool] = dataclasses.field(default_factory=dict)  # node name -> Ready (unknown: Ready)
    unknown_seconds: float = 0.0  # pod-seconds of status disagreements on nodes that were not Ready
    last_check: float | None = None
    backlog: int = 0  # live instances whose pod is deleted or gone, at the last check: deletes due
    deleted_since: int = 0  # pods deleted since the last check: due too (a namespace deleted goes at once)
    leak_ahead: dict[str, int] = dataclasses.field(default_factory=dict)  # instance -> deletes ahead of it

    def on_node(self, name: str, node: objects.Node | None) -> None:
        """The Node watch: a node gone or not Ready has pods whose status nobody can know."""
        conditions = (node.status.get("conditions") or []) if node is not None else []
        self.ready[name] = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    # -- the pod watch -----------------------------------------------------------------------

    def on_pod(self, key: str, pod: objects.Pod | None) -> None:
        now = self.clock()
        if pod is None:
            uid = self.uid_of.pop(key, "")
            seen = self.pods.get(uid)
            if seen is not None and seen.gone_at is None:
                seen.gone_at = now
                self.cycles += 1
            return
        node = pod.spec.node_name
        if not node.startswith(self.node_prefix) or pod.metadata.namespace == "soak-system":
            return
        uid = pod.metadata.uid
        old = self.uid_of.get(key)
        if old and old != uid and (gone := self.pods.get(old)) is not None and gone.gone_at is None:
            gone.gone_at = now
            self.cycles += 1
        self.uid_of[key] = uid
        seen = self.pods.get(uid)
        if seen is None:
            grace = pod.spec.termination_grace_period_seconds
            seen = PodSeen(uid, key, node, pod.status.phase, float(30 if grace is None else grace), now)
            self.pods[uid] = seen
            self.created += 1
        seen.phase = pod.status.phase
        seen.node = node
        if pod.metadata.deletion_timestamp and seen.deleting_since is None:
            seen.deleting_since = now
            seen.ahead = self.backlog + self.deleted_since
            self.deleted_since += 1

    def carried(self) -> dict[str, int]:
        """Live pods per node, now."""
        return dict(collections.Counter(p.node for p in self.pods.values() if p.gone_at is None))

    def forget_old(self, older_than: float = 900.0) -> None:
        """Drop pods gone for long (their instances were checked meanwhile): memory stays flat."""
        now = self.clock()
        for uid in [u for u, p in self.pods.items() if p.gone_at is not None and now - p.gone_at > older_than]:
            del self.pods[uid]

    # -- the checks --------------------------------------------------------------------------

    def check(self, instances: Iterable[dict[str, Any]]) -> dict[str, int]:
        """One round over a cloud listing; returns the candidates now, by kind (for "settled")."""
        now = self.clock()
        by_pod: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for inst in instances:
            by_pod[inst["tags"].get(models.TAG_POD_UID, "")].append(inst)
        live_pods = [p for p in self.pods.values() if p.gone_at is None]
        self.samples.append((now, len(live_pods), sum(len(v) for v in by_pod.values())))
        candidates: set[tuple[str, str]] = set()

        def hold(kind: str, subject: str, grace: float, detail: str) -> None:
            key = (kind, subject)
            candidates.add(key)
            first = self.since.setdefault(key, now)
            if now - first >= grace and key not in self.violations:
                self.violations[key] = Violation(kind, subject, detail, now)

        due = 0
        for uid, found in by_pod.items():
            pod = self.pods.get(uid)
            if len(found) > 1:
                hold("duplicated", pod.key if pod else uid, 0.0, ", ".join(i["id"] for i in found))
            if pod is None or pod.gone_at is not None or pod.deleting_since is not None:
                due += len(found)
            for inst in found:
                if pod is None or pod.gone_at is not None:
                    who = pod.key if pod else f"pod uid {uid or '(none)'}"
                    ahead = self.leak_ahead.setdefault(inst["id"], self.backlog)
                    hold(
                        "leaked",
                        inst["id"],
                        LEAK_GRACE + ahead / DELETE_RATE,
                        f"{inst['status']}, its pod {who} is gone",
                    )
                    self._leak_cost(inst, now, LEAK_GRACE + ahead / DELETE_RATE)
        elapsed = now - self.last_check if self.last_check is not None else 0.0
        self.last_check = now
        for pod in live_pods:
            self._check_pod(pod, by_pod.get(pod.uid, []), now, hold, elapsed)
        for key in [k for k in self.since if k not in candidates]:
            del self.since[key]
            if key[0] == "leaked":
                self.leak_ahead.pop(key[1], None)
        self.backlog, self.deleted_since = due, 0
        old = collections.Counter(k[0] for k, first in self.since.items() if now - first > SETTLE_AGE)
        return dict(old)

    def pending(self) -> dict[str, int]:
        """Every candidate of the last round, whatever its age, by kind."""
        return dict(collections.Counter(kind for kind, _ in self.since))

    def _check_pod(self, pod: PodSeen, found: list[dict[str, Any]], now: float, hold: Any, elapsed: float) -> None:
        if pod.deleting_since is not None:
            bound = pod.grace + TERMINATING_GRACE + pod.ahead / DELETE_RATE
            hold(
                "stuck Terminating",
                pod.key,
                bound,
                f"deleted, still on {pod.node} ({pod.ahead} deletes were due before)",
            )
            return
        status = found[0]["status"] if found else ""
        where = f"instance {found[0]['id']} is {status}" if found else "no instance"
        wrong = ""
        if pod.phase == "Running" and not found:
            wrong = "Running without an instance"
        elif pod.phase == "Pending" and status == "Running":
            wrong = f"Pending while its {where}"
        elif pod.phase in ("Succeeded", "Failed") and status == "Running":
            wrong = f"{pod.phase} while its {where}"
        elif pod.phase == "Running" and status in ("Succeeded", "Failed", "Expired"):
            wrong = f"Running while its {where}"
        if not wrong:
            return
        if not self.ready.get(pod.node, True):
            self.unknown_seconds += elapsed
            return
        hold("lost", pod.key, STATUS_GRACE, wrong)

    def _leak_cost(self, inst: dict[str, Any], now: float, grace: float) -> None:
        key = ("leaked", inst["id"])
        first = self.since.get(key, now)
        if now - first <= grace:
            return
        start = self.leak_cost_from.setdefault(inst["id"], float(inst["cost_usd"]))
        self.leak_cost[inst["id"]] = float(inst["cost_usd"]) - start

    def final(self, instances: Iterable[dict[str, Any]]) -> None:
        """After the settle time: every instance must belong to a live pod, or to one gone only moments
        ago (the Jobs started before the workload stopped still finish, and their pods go)."""
        now = self.clock()
        for inst in instances:
            pod = self.pods.get(inst["tags"].get(models.TAG_POD_UID, ""))
            if pod is None or (pod.gone_at is not None and now - pod.gone_at > SETTLE_AGE):
                key = ("leaked at the end", inst["id"])
                self.violations[key] = Violation(key[0], inst["id"], f"{inst['status']}, no live pod", now)
