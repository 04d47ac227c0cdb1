"""A pod's maximum Pending time, where its provider has one (ECI's ``k8s.aliyun.com/eci-max-pending-minute``).

An instance that cannot start (an image that will not pull, a volume that will not mount) waits
Pending, and the cloud bills it while it waits. ECI stops such an instance after 4 hours, or after
the pod's annotation's minutes (10 to 1440), ack-virtual-node's way; ECI's API takes no such
parameter, so the virtual node keeps it. vnode does it for any provider whose profile names the
annotation (``Profile.max_pending_annotation``), as ECI documents it:

- the time counted is the instance's time Pending, from its creation (which includes the few
  seconds it was Scheduling) while its status is still Pending; an instance whose init
  container is running is not held to it;
- once over, the pod gets a Warning event (reason ``PendingTimeout``) and its instance is deleted:
  it costs nothing more. Its phase follows its ``restartPolicy``, as ECI's pods do: ``Never``
  ends ``Failed``; ``Always`` and ``OnFailure`` stay ``Pending``, with the reason on the Ready
  condition, until the pod is deleted; no new instance is made for it.

A bad value refuses the pod at create, naming the annotation and the range (:func:`limit`). The
time is a due-time, as for ``activeDeadlineSeconds``: a pending pod's reconcile asks to be
looked at again when its limit falls (:func:`remaining`), so no pod is polled for it. Pure.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from vnode import errors, models
from vnode.kube import objects
from vnode.provider import profile

__all__ = ["REASON", "Rule", "limit", "message", "over", "remaining", "rule", "shown"]

REASON = "PendingTimeout"  # the simulator's name for ECI's event, whose reason ECI does not document


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """The provider's annotation, and the minutes it may say (ECI: 10 to 1440)."""

    annotation: str = ""
    low: int = 10
    high: int = 1440


def rule(of: profile.Profile) -> Rule:
    """The provider profile's rule (no annotation: none)."""
    low, high = of.max_pending_minutes
    return Rule(of.max_pending_annotation, low, high)


def limit(annotations: Mapping[str, str], rule: Rule) -> float | None:
    """The pod's maximum Pending time in seconds; None without the annotation; ``InvalidSpec`` for a bad one."""
    if not rule.annotation or rule.annotation not in annotations:
        return None
    text = annotations[rule.annotation].strip()
    if not text.isdigit() or not rule.low <= int(text) <= rule.high:
        raise errors.InvalidSpec(
            f"annotation {rule.annotation}: {text!r} is not a whole number of minutes from {rule.low} to {rule.high}"
        )
    return int(text) * 60.0


def message(pod: objects.Pod, rule: Rule) -> str:
    minutes = pod.metadata.annotations.get(rule.annotation, "").strip()
    return (
        f"the instance was Pending longer than {minutes} minutes ({rule.annotation}): it is stopped, "
        "so that it costs nothing more"
    )


def remaining(pod: objects.Pod, state: models.InstanceState | None, now: datetime.datetime, rule: Rule) -> float | None:
    """Seconds until the pod's instance is over its Pending time (0 or less: over); None if not held to one."""
    if state is None or state.status is not models.InstanceStatus.PENDING or state.created_at is None:
        return None
    if any(c.state is models.ContainerState.RUNNING for c in state.init_containers):
        return None
    try:
        seconds = limit(pod.metadata.annotations, rule)
    except errors.InvalidSpec:
        return None  # changed since the create, which checked it: the create's word stands
    if seconds is None:
        return None
    return seconds - (now - state.created_at).total_seconds()


def shown(pod: objects.Pod, written: Mapping[str, Any] | None) -> bool:
    """Whether the pod shows (or vnode last wrote) that its instance was stopped for its Pending time."""
    if written is not None:
        return written.get("reason") == REASON or any(
            c.get("type") == "Ready" and c.get("reason") == REASON for c in written.get("conditions") or ()
        )
    return pod.status.reason == REASON or any(c.type == "Ready" and c.reason == REASON for c in pod.status.conditions)


def over(pod: objects.Pod, state: models.InstanceState | None, written: Mapping[str, Any] | None,
         now: datetime.datetime, rule: Rule) -> bool:  # fmt: skip
    """Whether the pod's instance is over its Pending time, or was stopped for it already (a stage's
    condition, asked of every pod at every look: a pod without the annotation costs one lookup)."""
    if not rule.annotation or rule.annotation not in pod.metadata.annotations:
        return False
    if shown(pod, written):
        return True
    left = remaining(pod, state, now, rule)
    return left is not None and left <= 0
