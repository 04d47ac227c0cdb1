"""An ARM container group as an ``InstanceState``.

A Spot group (``properties.priority: Spot``) is ``interruptible``, priced at the list price less
``profile.SPOT_DISCOUNT`` (ACI shows no price on a group). ACI evicts a Spot group by restarting it
in place, so its eviction is no reclaim notice: the pod keeps running, its containers show the
restart (restart count, last state) and the group's Warning event (the simulator's ``SpotEviction``)
reaches the pod as any Warning does.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from vnode import models
from vnode.provider.aci import mapping, profile

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


def _status(provisioning: str, state: str) -> models.InstanceStatus:
    s = models.InstanceStatus
    if provisioning == "Pending":
        return s.SCHEDULING
    if provisioning in ("Creating", "Accepted", "Updating", "Repairing"):
        return s.PENDING
    if provisioning == "Deleting":
        return s.TERMINATING
    if provisioning in ("Failed", "Canceled"):
        return s.FAILED
    return {
        "Running": s.RUNNING,
        "Pending": s.RESTARTING,
        "Succeeded": s.SUCCEEDED,
        "Failed": s.FAILED,
        "Stopped": s.TERMINATING,
    }.get(state, s.PENDING)


_CONTAINER = {s.value: s for s in models.ContainerState}


def _container_status(raw: Mapping[str, Any]) -> tuple[models.ContainerStatus, list[models.InstanceEvent]]:
    props = raw.get("properties") or {}
    view = props.get("instanceView") or {}
    current = view.get("currentState") or {}
    previous = view.get("previousState") or {}
    name = _shared(raw.get("name", ""))
    terminated = current.get("state") == "Terminated"
    status = models.ContainerStatus(
        name=name,
        state=_CONTAINER.get(str(current.get("state", "")), models.ContainerState.WAITING),
        image=_shared(props.get("image", "")),
        reason=_shared(current.get("detailStatus") or ""),
        exit_code=int(current["exitCode"]) if terminated and current.get("exitCode") is not None else None,
        started_at=_time(current.get("startTime")),
        finished_at=_time(current.get("finishTime")) if terminated else None,
        restart_count=int(view.get("restartCount") or 0),
        ready=current.get("state") == "Running",  # ACI reports no readiness
        last_exit_code=int(previous["exitCode"]) if previous.get("exitCode") is not None else None,
        last_reason=_shared(previous.get("detailStatus") or ""),
        last_started_at=_time(previous.get("startTime")),
        last_finished_at=_time(previous.get("finishTime")),
    )
    return status, [_event(e, name) for e in view.get("events") or ()]


def _event(raw: Mapping[str, Any], container: str = "") -> models.InstanceEvent:
    return models.InstanceEvent(
        reason=_shared(raw.get("name", "")),
        message=_shared(raw.get("message", "")),
        type=models.EventType.WARNING if raw.get("type") == "Warning" else models.EventType.NORMAL,
        timestamp=_time(raw.get("lastTimestamp") or raw.get("firstTimestamp")),
        container=container,
        count=int(raw.get("count") or 1),
    )


def _gpus(props: Mapping[str, Any]) -> tuple[str, int]:
    """The GPU SKU of a group's containers and their GPUs together (("", 0): none)."""
    asked = [
        ((c.get("properties") or {}).get("resources") or {}).get("requests", {}).get("gpu") or {}
        for c in props.get("containers") or ()
    ]
    asked = [g for g in asked if g.get("count")]
    return (str(asked[0].get("sku") or ""), sum(int(g["count"]) for g in asked)) if asked else ("", 0)


def state_of(group: Mapping[str, Any]) -> models.InstanceState:
    """One ARM container group as an ``InstanceState``; its id is the group's name."""
    props = group.get("properties") or {}
    view = props.get("instanceView") or {}
    status = _status(str(props.get("provisioningState", "")), str(view.get("state", "")))
    containers, events = [], [_event(e) for e in view.get("events") or ()]
    for raw in props.get("containers") or ():
        container, its_events = _container_status(raw)
        containers.append(container)
        events += its_events
    events.sort(key=lambda e: e.timestamp or datetime.datetime.min.replace(tzinfo=datetime.UTC))
    starts = [c.started_at for c in containers if c.started_at is not None]
    ends = [c.finished_at for c in containers if c.finished_at is not None]
    terminal = status in (models.InstanceStatus.SUCCEEDED, models.InstanceStatus.FAILED)
    warning = next((e for e in reversed(events) if e.type is models.EventType.WARNING), None)
    subnets = props.get("subnetIds") or []
    cpu = sum(
        float(((c.get("properties") or {}).get("resources") or {}).get("requests", {}).get("cpu") or 0)
        for c in props.get("containers") or ()
    )
    memory = sum(
        float(((c.get("properties") or {}).get("resources") or {}).get("requests", {}).get("memoryInGB") or 0)
        for c in props.get("containers") or ()
    )
    sku, gpus = _gpus(props)
    spot = props.get("priority") == "Spot"
    return models.InstanceState(
        id=str(group.get("name", "")),
        status=status,
        tags=mapping.decode_tags(group.get("tags") or {}),
        containers=tuple(containers),
        ip=str((props.get("ipAddress") or {}).get("ip") or ""),
        zone=_shared(",".join(group.get("zones") or ())),
        vswitch=_shared(subnets[0].get("name") or str(subnets[0].get("id", "")).rsplit("/", 1)[-1]) if subnets else "",
        started_at=min(starts) if starts else None,
        finished_at=max(ends) if terminal and ends else None,
        reason=warning.reason if status is models.InstanceStatus.FAILED and warning else "",
        message=warning.message if status is models.InstanceStatus.FAILED and warning else "",
        events=tuple(events),
        cpu=cpu,
        memory_gib=memory,
        instance_type=sku,
        gpus=gpus,
        interruptible=spot,
        hourly_price=profile.PROFILE.price(cpu, memory) * 3600 * (1.0 - profile.SPOT_DISCOUNT) if spot else 0.0,
        annotations=_annotations(props.get("ipAddress") or {}),
    )


def _annotations(address: Mapping[str, Any]) -> dict[str, str]:
    """What the pod is given once its group has a public IP: the address and, with a DNS name
    label, its name (both at once, so the pod is annotated in one write)."""
    if address.get("type") != "Public" or not address.get("ip"):
        return {}
    if address.get("dnsNameLabel") and not address.get("fqdn"):
        return {}
    written = {mapping.PUBLIC_IP: address.get("ip"), mapping.FQDN: address.get("fqdn")}
    return {key: str(value) for key, value in written.items() if value}
