"""A ``ContainerGroups`` item of DescribeContainerGroups as an ``InstanceState``."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from vnode import models
from vnode.provider.eci import mapping

__all__ = ["state_of"]


def _time(text: Any) -> datetime.datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.UTC)


_shared = models.shared


SPOT_NOTICE = "SpotToBeReleased"  # ECI's Warning before it reclaims a spot instance
_STATUS = {s.value: s for s in models.InstanceStatus}
_CONTAINER = {s.value: s for s in models.ContainerState}


def _container_status(raw: Mapping[str, Any]) -> models.ContainerStatus:
    current = raw.get("CurrentState") or {}
    previous = raw.get("PreviousState") or {}
    exit_code = current.get("ExitCode")
    terminated = current.get("State") == "Terminated"
    return models.ContainerStatus(
        name=_shared(raw.get("Name", "")),
        state=_CONTAINER.get(str(current.get("State", "")), models.ContainerState.WAITING),
        image=_shared(raw.get("Image", "")),
        reason=_shared(current.get("Reason") or current.get("DetailStatus") or ""),
        message=_shared(current.get("Message") or ""),
        exit_code=int(exit_code) if terminated and exit_code is not None else None,
        started_at=_time(current.get("StartTime")),
        finished_at=_time(current.get("FinishTime")) if terminated else None,
        restart_count=int(raw.get("RestartCount") or 0),
        ready=bool(raw.get("Ready")),
        last_exit_code=int(previous["ExitCode"]) if previous.get("State") == "Terminated" else None,
        last_reason=_shared(previous.get("Reason") or ""),
        last_started_at=_time(previous.get("StartTime")),
        last_finished_at=_time(previous.get("FinishTime")),
    )


_EVENT_CONTAINER = re.compile(r"\bcontainer (?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\b")


def _event(raw: Mapping[str, Any]) -> models.InstanceEvent:
    mention = _EVENT_CONTAINER.search(str(raw.get("Message", "")))
    return models.InstanceEvent(
        container=_shared(mention["name"]) if mention else "",
        reason=_shared(raw.get("Reason", "")),
        message=_shared(raw.get("Message", "")),
        type=models.EventType.WARNING if raw.get("Type") == "Warning" else models.EventType.NORMAL,
        timestamp=_time(raw.get("LastTimestamp") or raw.get("FirstTimestamp")),
        count=int(raw.get("Count") or 1),
        notice=models.Notice.RECLAIM if raw.get("Reason") == SPOT_NOTICE else None,
    )


def state_of(group: Mapping[str, Any]) -> models.InstanceState:
    """One ``ContainerGroups`` item of DescribeContainerGroups as an ``InstanceState``."""
    status = _STATUS.get(str(group.get("Status", "")), models.InstanceStatus.PENDING)
    containers = tuple(_container_status(c) for c in group.get("Containers") or ())
    starts = [c.started_at for c in containers if c.started_at is not None]
    finished = _time(group.get("SucceededTime")) or _time(group.get("FailedTime"))
    events = tuple(_event(e) for e in group.get("Events") or ())
    warning = next((e for e in reversed(events) if e.type is models.EventType.WARNING), None)
    failed = status in (models.InstanceStatus.FAILED, models.InstanceStatus.SCHEDULE_FAILED)
    reason, message = (warning.reason, warning.message) if failed and warning else ("", "")
    if status is models.InstanceStatus.EXPIRED and any(e.notice for e in events):
        # ECI's words for a reclaimed spot instance's pod (kubectl shows STATUS BidFailed).
        at = _time(group.get("ExpiredTime")) or _time(group.get("FailedTime")) or finished
        when = at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else "an unknown time"
        reason, message = "BidFailed", f"The pod is spot instance, and have been released at {when}"
    return models.InstanceState(
        id=str(group["ContainerGroupId"]),
        status=status,
        tags={_shared(t.get("Key", "")): _shared(t.get("Value", "")) for t in group.get("Tags") or ()},
        containers=containers,
        init_containers=tuple(_container_status(c) for c in group.get("InitContainers") or ()),
        ip=str(group.get("IntranetIp") or ""),
        zone=_shared(group.get("ZoneId") or ""),
        vswitch=_shared(group.get("VSwitchId") or ""),
        created_at=_time(group.get("CreationTime")),
        started_at=min(starts) if starts else None,
        finished_at=finished,
        reason=reason,
        message=message,
        events=events,
        cpu=float(group.get("Cpu") or 0.0),
        memory_gib=float(group.get("Memory") or 0.0),
        instance_type=_shared(group.get("InstanceType") or ""),
        annotations=_annotations(group),
        interruptible=str(group.get("SpotStrategy") or "NoSpot") != "NoSpot",
    )


def _annotations(group: Mapping[str, Any]) -> dict[str, str]:
    """What ECI writes back to the pod: the public address it allocated, the instance type it used."""
    written = {mapping.ALLOCATED_ADDRESS: group.get("InternetIp"), mapping.INSTANCE_SPEC: group.get("InstanceType")}
    return {key: _shared(value) for key, value in written.items() if value}
