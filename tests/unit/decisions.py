"""What the decision tests share: a pod of two containers, an instance, facts about them, and the
summary of a decision that the table compares."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import msgspec

from vnode import errors, models
from vnode.kube import objects
from vnode.node import book, lifecycle, status

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
BEFORE = NOW - datetime.timedelta(minutes=5)  # earlier than this daemon's start
CONFIG = lifecycle.Config(node_ip="10.0.0.1", scheme="eci", started_at=NOW - datetime.timedelta(minutes=1))
STARTING = dataclasses.replace(CONFIG, first_status_after=2.0)
A, S, C = lifecycle.Action, models.InstanceStatus, models.ContainerState
UID = "uid-1"
CAPACITY = errors.CapacityError("no stock of ecs.c6 in any zone", code="NoStock")
PULLED = models.InstanceEvent("Pulled", "pulled nginx", timestamp=NOW, container="app")
STARTED = models.InstanceEvent("Started", "started app", timestamp=NOW, container="app")
OLD = models.InstanceEvent("Pulling", "pulling nginx", timestamp=BEFORE, container="app")


def pod(
    *, deleting: bool = False, phase: str = "Pending", daemonset: bool = False, instance: str = "", shows: Any = None
) -> objects.Pod:
    """A pod of two containers; ``shows``: the status it shows (else just ``phase``, and ``instance``'s ID)."""
    meta = objects.ObjectMeta(name="web", namespace="ns", uid=UID)
    if deleting:
        meta.deletion_timestamp, meta.deletion_grace_period_seconds = "2026-01-02T03:04:00Z", 30
    if daemonset:
        meta.owner_references = [objects.OwnerReference(kind="DaemonSet", name="agent")]
    st: dict[str, Any] = shows or {"phase": phase}
    if instance:
        st["containerStatuses"] = [{"name": "app", "containerID": f"eci://{instance}"}]
    containers = [objects.Container(name="app", image="nginx"), objects.Container(name="side", image="envoy")]
    return objects.Pod(
        metadata=meta, spec=objects.PodSpec(containers=containers), status=msgspec.convert(st, objects.PodStatus)
    )


def state(st: models.InstanceStatus = S.RUNNING, *evs: models.InstanceEvent) -> models.InstanceState:
    running = tuple(models.ContainerStatus(name, C.RUNNING, started_at=NOW, ready=True) for name in ("app", "side"))
    return models.InstanceState(id="eci-1", status=st, containers=running, ip="192.168.0.9", events=evs)


def facts(p: objects.Pod | None = None, s: models.InstanceState | None = None, **kw: Any) -> lifecycle.Facts:
    fields: dict[str, Any] = {"uid": UID, "memory": book.Memory(), "now": NOW, "moment": 100.0, "listed_at": 50.0}
    return lifecycle.Facts(pod=p, state=s, **{**fields, **kw})


def asked(at: float, *, deleting: bool = True) -> book.Memory:
    return book.Memory(instance_id="eci-1", delete_requested_at=at, deleting=deleting)


def written(p: objects.Pod, s: models.InstanceState) -> book.Memory:
    return book.Memory(instance_id=s.id, written=status.from_instance(p, s, scheme="eci", host_ip="10.0.0.1", now=NOW))


def _why(st: Any) -> str:
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    return str(st.get("reason") or ready.get("reason") or "")


def summary(d: lifecycle.Decision) -> dict[str, Any]:
    return {
        "stage": d.stage,
        "action": d.action,
        "instances": d.instances,
        "grace": d.grace,
        "events": [e.reason for e in d.events],
        "status": None if d.status is None else (d.status["phase"], _why(d.status)),
        "record": d.record.id if d.record else None,
        "forget": d.forget,
        "requeue": d.requeue,
        "count": d.count,
        "error": d.error,
        "note": bool(d.note),
    }


def expect(stage: str, **fields: Any) -> dict[str, Any]:
    base = {"action": A.NOTHING, "instances": (), "grace": 0.0, "events": [], "status": None, "record": None}
    base |= {"forget": False, "requeue": None, "count": "", "error": None, "note": False}
    return {"stage": stage, **base, **fields}
