"""``activeDeadlineSeconds`` with the kubelet's semantics, for every provider.

Once ``now - status.startTime`` reaches the pod's ``activeDeadlineSeconds``, the kubelet fails
the pod (reason ``DeadlineExceeded``, its fixed message) and kills its containers; vnode does the
same and deletes the instance. A pod that finished before its deadline is left alone. The time
is a due-time: a running pod's reconcile asks to be looked at again when its deadline falls
(:func:`remaining`), so no pod is polled for it.

Pure: the caller passes the time and what vnode last wrote (the pod may not show it yet).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from vnode.kube import objects

__all__ = ["MESSAGE", "REASON", "exceeded", "remaining"]

REASON = "DeadlineExceeded"
MESSAGE = "Pod was active on the node longer than the specified deadline"
_FINAL = ("Succeeded", "Failed")


def _start(pod: objects.Pod, written: Mapping[str, Any] | None) -> datetime.datetime | None:
    text = pod.status.start_time or (written or {}).get("startTime")
    if not text:
        return None
    return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def remaining(pod: objects.Pod, written: Mapping[str, Any] | None, now: datetime.datetime) -> float | None:
    """Seconds until the pod's deadline (0 or less: reached); None without a deadline or a start time."""
    seconds = pod.spec.active_deadline_seconds
    start = _start(pod, written)
    if seconds is None or start is None:
        return None
    return seconds - (now - start).total_seconds()


def exceeded(pod: objects.Pod, written: Mapping[str, Any] | None, now: datetime.datetime) -> bool:
    """Whether the pod is (or was already made) Failed by its deadline: reached while it had not finished."""
    phase, reason = pod.status.phase, pod.status.reason
    if written is not None:
        phase, reason = written.get("phase", phase), written.get("reason", reason)
    if phase in _FINAL and reason != REASON:
        return False
    left = remaining(pod, written, now)
    return left is not None and left <= 0
