"""Turning an instance state into a pod status: the one place that builds Kubernetes pod status.

Pure functions of (pod, instance state, node facts, now), so the whole mapping is tested by
tables. What they build is the body of a strategic-merge patch of ``status`` (a dict: which
keys it has matters to the merge); what a pod shows is read typed (``objects.PodStatus``).
The status is written only when it differs from what the pod shows: :func:`same` compares the
fields vnode owns, ignoring condition timestamps, whose ``lastTransitionTime`` is carried over
from the pod while a condition keeps its value.

ECI statuses map to phases as the cloud documents them: Scheduling, Pending, Restarting,
Updating → Pending; Running, Terminating → Running; Succeeded → Succeeded; Failed, Expired,
ScheduleFailed → Failed.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from vnode import models
from vnode.kube import objects

__all__ = ["PHASES", "failed", "from_instance", "owned", "rfc3339", "same", "typed", "waiting"]

S = models.InstanceStatus
PHASES: Mapping[models.InstanceStatus, str] = {
    S.SCHEDULING: "Pending",
    S.PENDING: "Pending",
    S.RESTARTING: "Pending",
    S.UPDATING: "Pending",
    S.RUNNING: "Running",
    S.TERMINATING: "Running",
    S.SUCCEEDED: "Succeeded",
    S.FAILED: "Failed",
    S.EXPIRED: "Failed",
    S.SCHEDULE_FAILED: "Failed",
}
OWNED_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


def rfc3339(when: datetime.datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is not datetime.UTC:
        when = when.astimezone(datetime.UTC)
    # Formatted by hand: a pod's status formats a dozen times per decision, strftime is 2x slower.
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"


def _conditions(
    pod: objects.Pod, now: datetime.datetime, values: Sequence[tuple[str, bool, str, str]]
) -> list[dict[str, Any]]:
    previous = {c.type: c for c in pod.status.conditions}
    result = []
    for kind, ok, reason, message in values:
        status = "True" if ok else "False"
        before = previous.get(kind)
        since = before.last_transition_time if before and before.status == status else None
        condition: dict[str, Any] = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": since or rfc3339(now),
        }
        # A strategic merge keeps a key the patch omits: an empty one clears what the pod shows.
        if reason or (before and before.reason):
            condition["reason"] = reason
        if message or (before and before.message):
            condition["message"] = message
        result.append(condition)
    return result


def _container_state(cs: models.ContainerStatus, container_id: str) -> dict[str, Any]:
    if cs.state is models.ContainerState.RUNNING:
        return {"running": {"startedAt": rfc3339(cs.started_at)}}
    if cs.state is models.ContainerState.TERMINATED:
        terminated: dict[str, Any] = {
            "exitCode": cs.exit_code if cs.exit_code is not None else 0,
            "reason": cs.reason or ("Completed" if not cs.exit_code else "Error"),
            "startedAt": rfc3339(cs.started_at),
            "finishedAt": rfc3339(cs.finished_at),
            "containerID": container_id,
        }
        if cs.message:
            terminated["message"] = cs.message
        return {"terminated": terminated}
    waiting: dict[str, Any] = {"reason": cs.reason or "ContainerCreating"}
    if cs.message:
        waiting["message"] = cs.message
    return {"waiting": waiting}


def _container_statuses(
    containers: Sequence[objects.Container],
    reported: Sequence[models.ContainerStatus],
    container_id: str,
    waiting_reason: str = "ContainerCreating",
    waiting_message: str = "",
) -> list[dict[str, Any]]:
    by_name = {c.name: c for c in reported}
    result = []
    for c in containers:
        cs = by_name.get(c.name) or models.ContainerStatus(
            c.name, models.ContainerState.WAITING, reason=waiting_reason, message=waiting_message
        )
        known = bool(container_id) and cs.state is not models.ContainerState.WAITING
        entry: dict[str, Any] = {
            "name": c.name,
            "image": c.image,
            "imageID": cs.image_id,
            "state": _container_state(cs, container_id),
            "lastState": {},
            "ready": cs.ready and cs.state is models.ContainerState.RUNNING,
            "restartCount": cs.restart_count,
            "started": cs.state is models.ContainerState.RUNNING,
        }
        if known:
            entry["containerID"] = container_id
        if cs.last_finished_at is not None:  # also before the first restart, in its back-off
            entry["lastState"] = {
                "terminated": {
                    "exitCode": cs.last_exit_code or 0,
                    "reason": cs.last_reason or "Error",
                    "startedAt": rfc3339(cs.last_started_at),
                    "finishedAt": rfc3339(cs.last_finished_at),
                    "containerID": container_id,
                }
            }
        result.append(entry)
    return result


def _gates_unready(pod: objects.Pod) -> str:
    """The kubelet's message for the readiness gates whose condition is not True ("" if all are)."""
    shown = {c.type: c.status for c in pod.status.conditions}
    messages = []
    for gate in pod.spec.readiness_gates:
        value = shown.get(gate.condition_type)
        if value is None:
            messages.append(f'corresponding condition of pod readiness gate "{gate.condition_type}" does not exist.')
        elif value != "True":
            messages.append(f'the status of pod readiness gate "{gate.condition_type}" is not "True", but {value}')
    return ", ".join(messages)


#: Why an ephemeral container (``kubectl debug``) never starts on a virtual node: its status and Warning say so.
EPHEMERAL = "ephemeral containers (kubectl debug) cannot be added to a running cloud instance"


def ephemeral(pod: objects.Pod) -> list[dict[str, Any]]:
    """Each ephemeral container of ``pod`` terminated at once, saying why, so that ``kubectl debug`` ends
    with the reason instead of waiting for a container that will never run."""
    return [
        {
            "name": str(c.get("name", "")),
            "image": str(c.get("image", "")),
            "imageID": "",
            "state": {"terminated": {"exitCode": 128, "reason": "Unsupported", "message": EPHEMERAL}},
            "lastState": {},
            "ready": False,
            "restartCount": 0,
        }
        for c in pod.spec.ephemeral_containers
    ]


def from_instance(
    pod: objects.Pod, state: models.InstanceState, *, scheme: str, host_ip: str, now: datetime.datetime
) -> dict[str, Any]:
    """The pod status that ``state`` means (a dict for a strategic-merge patch of ``status``)."""
    phase = PHASES.get(state.status, "Pending")
    if state.status is S.UPDATING and pod.status.phase == "Running":
        phase = "Running"  # new volume files (vnode's only update): the containers keep running, as on a kubelet
    container_id = f"{scheme}://{state.id}"
    containers = _container_statuses(pod.spec.containers, state.containers, container_id)
    init = _container_statuses(pod.spec.init_containers, state.init_containers, container_id, "PodInitializing")
    initialized = phase in ("Running", "Succeeded") or all(
        c["state"].get("terminated", {}).get("exitCode") == 0 for c in init
    )
    unready = [c["name"] for c in containers if not c["ready"]]
    if phase == "Succeeded" or (phase == "Failed" and unready):
        ready_reason, ready_message = "PodCompleted", ""
    else:
        ready_reason = "ContainersNotReady" if unready else ""
        ready_message = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    gates = "" if unready else _gates_unready(pod)
    values = [
        ("PodScheduled", True, "", ""),
        ("Initialized", initialized, "" if initialized else "ContainersNotInitialized", ""),
        ("ContainersReady", not unready, ready_reason, ready_message),
        (
            "Ready",
            not unready and not gates,
            "ReadinessGatesNotReady" if gates else ready_reason,
            gates or ready_message,
        ),
    ]
    result: dict[str, Any] = {
        "phase": phase,
        "conditions": _conditions(pod, now, values),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}] if host_ip else [],
        "startTime": rfc3339(state.created_at) or pod.status.start_time or rfc3339(now),
        "containerStatuses": containers,
    }
    if init:
        result["initContainerStatuses"] = init
    if pod.spec.ephemeral_containers:
        result["ephemeralContainerStatuses"] = ephemeral(pod)
    if state.ip:
        result["podIP"] = state.ip
        result["podIPs"] = [{"ip": state.ip}]
    if phase == "Failed":
        result["reason"] = state.reason or {S.EXPIRED: "Expired", S.SCHEDULE_FAILED: "ScheduleFailed"}.get(
            state.status, "ProviderFailed"
        )
        result["message"] = state.message or f"the cloud reports the instance {state.id} as {state.status.value}"
    return result


def waiting(pod: objects.Pod, *, reason: str, message: str, host_ip: str, now: datetime.datetime) -> dict[str, Any]:
    """A pending pod whose instance cannot be created yet (missing Secret, stock-out, throttling...)."""
    values = [
        ("PodScheduled", True, "", ""),
        ("Initialized", True, "", ""),
        ("ContainersReady", False, reason, message),
        ("Ready", False, reason, message),
    ]
    return {
        "phase": "Pending",
        "conditions": _conditions(pod, now, values),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}] if host_ip else [],
        "startTime": pod.status.start_time or rfc3339(now),
        "containerStatuses": _container_statuses(pod.spec.containers, (), "", reason, message),
    }


def failed(pod: objects.Pod, *, reason: str, message: str, host_ip: str, now: datetime.datetime) -> dict[str, Any]:
    """A pod that will never run here; its controller (if any) replaces it."""
    values = [
        ("PodScheduled", True, "", ""),
        ("Initialized", True, "", ""),
        ("ContainersReady", False, reason, message),
        ("Ready", False, reason, message),
    ]
    previous: dict[str, models.ContainerStatus] = {}
    for shown in pod.status.container_statuses:
        terminated = shown.state.terminated
        if terminated is not None:
            previous[shown.name] = models.ContainerStatus(
                shown.name,
                models.ContainerState.TERMINATED,
                exit_code=terminated.exit_code,
                reason=terminated.reason,
                message=terminated.message,
            )
    containers = []
    for c in pod.spec.containers:
        containers.append(
            previous.get(c.name)
            or models.ContainerStatus(
                c.name, models.ContainerState.TERMINATED, exit_code=137, reason=reason, message=message
            )
        )
    return {
        "phase": "Failed",
        "reason": reason,
        "message": message,
        "conditions": _conditions(pod, now, values),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}] if host_ip else [],
        "startTime": pod.status.start_time or rfc3339(now),
        "containerStatuses": _container_statuses(pod.spec.containers, containers, ""),
    }


def typed(status: Mapping[str, Any]) -> objects.PodStatus:
    """A status built here, read as a pod would show it once written."""
    return msgspec.convert(status, objects.PodStatus)


def _state(s: objects.ContainerState) -> tuple[Any, ...]:
    w, r, t = s.waiting, s.running, s.terminated
    return (
        w and (w.reason, w.message),
        r and r.started_at,
        t and (t.exit_code, t.reason, t.message, t.started_at, t.finished_at, t.container_id),
    )


_EMPTY = _state(objects.ContainerState())


def _container(c: objects.ContainerStatus) -> tuple[Any, ...]:
    last = _state(c.last_state)
    return (
        c.name,
        c.image,
        c.image_id,
        _state(c.state),
        None if last == _EMPTY else last,
        c.ready,
        c.restart_count,
        c.started,
        c.container_id,
    )


def owned(status: objects.PodStatus) -> tuple[Any, ...]:
    """Every field of a pod's status vnode owns, condition times aside, as one comparable value."""
    return (
        status.phase,
        status.reason,
        status.message,
        status.pod_ip,
        status.host_ip,
        status.start_time or None,
        sorted((c.type, c.status, c.reason, c.message) for c in status.conditions if c.type in OWNED_CONDITIONS),
        [_container(c) for c in status.container_statuses],
        [_container(c) for c in status.init_container_statuses],
        [_container(c) for c in status.ephemeral_container_statuses],
    )


def same(current: objects.PodStatus | Mapping[str, Any], wanted: objects.PodStatus | Mapping[str, Any]) -> bool:
    """Whether the pod already shows ``wanted`` in every field vnode owns (condition times aside).

    A built status (a dict) is compared as the pod would show it: a field written empty is one
    the pod does not show.
    """
    current = current if isinstance(current, objects.PodStatus) else typed(current)
    wanted = wanted if isinstance(wanted, objects.PodStatus) else typed(wanted)
    return owned(current) == owned(wanted)
