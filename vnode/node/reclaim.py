"""The lifecycle's stages for an instance the cloud takes back (a spot instance reclaimed).

The cloud announces the reclamation a few minutes ahead (a :class:`models.Notice` ``RECLAIM``
event, mapped by the provider from its own: ECI's ``SpotToBeReleased``), then ends the instance
(``Expired``). The cloud alone would leave the pod to fail then (ECI: ``Failed``, reason
``BidFailed``) and its controller to replace it only after the work is gone. vnode does better,
on the notice:

- the pod gets the ``DisruptionTarget`` condition, as Kubernetes marks a pod about to be
  disrupted, with reason ``TerminationByKubelet`` (the reason the kubelet gives when it must end
  pods because its node goes away, graceful node shutdown: the closest of the documented reasons,
  since vnode is the pod's kubelet and the "node" under it is going) and a Warning event;
- a pod whose controller replaces it (a ReplicaSet's, a StatefulSet's) is deleted with its grace
  period, so the replacement is created now and starts while the old instance still runs out
  its notice; any other pod runs on and ends ``Failed`` like ECI's;
- a pod carrying the provider's eviction annotation (``Profile.reclaim_eviction``; ECI:
  ``k8s.aliyun.com/eci-spot-release-strategy: api-evict``) is evicted through the Eviction API
  instead, whatever its controller, as a drain evicts: its PodDisruptionBudgets are honoured, and
  while one refuses, the eviction is asked again every :data:`EVICTION_RETRY` seconds until the pod
  goes or the instance is taken.

A pod failed by a reclamation always shows ``DisruptionTarget`` (added when it fails if the
notice was missed: vnode was down, or the cloud gave it only at the release), so a Job's
``podFailurePolicy`` can tell a reclamation from a failure of its own.

:func:`noticed` and :func:`reclaimed` are conditions of :data:`lifecycle.STAGES`, :func:`plan`
(with :func:`mark` and :func:`on_release`) what their stage does; all pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vnode import models
from vnode.kube import objects
from vnode.node import events, status
from vnode.node.decision import Action

if TYPE_CHECKING:
    from vnode.node import lifecycle

__all__ = [
    "CONDITION",
    "REASON",
    "REPLACING_KINDS",
    "by_eviction",
    "mark",
    "marked",
    "notice",
    "noticed",
    "on_release",
    "plan",
    "reclaimed",
    "replaceable",
]

CONDITION = "DisruptionTarget"
REASON = "TerminationByKubelet"
REPLACING_KINDS = ("ReplicaSet", "StatefulSet")  # controllers that create a replacement for a deleted pod
EVICTION_RETRY = 5.0  # seconds between evictions a PodDisruptionBudget refuses


def notice(state: models.InstanceState | None) -> models.InstanceEvent | None:
    """The instance's reclaim notice, if the cloud gave one."""
    if state is None:
        return None
    return next((e for e in state.events if e.notice is models.Notice.RECLAIM), None)


def marked(pod: objects.Pod, written: Mapping[str, Any] | None) -> bool:
    """Whether the pod shows (or vnode last wrote) the DisruptionTarget condition."""
    if any(c.type == CONDITION and c.status == "True" for c in pod.status.conditions):
        return True
    return written is not None and any(c.get("type") == CONDITION for c in written.get("conditions") or ())


def noticed(f: lifecycle.Facts, c: lifecycle.Config) -> bool:
    """The listed instance is to be reclaimed, still runs, and the pod is not marked yet (or, to be
    evicted, is marked and not evicted yet: a PodDisruptionBudget refused)."""
    if f.answer is not None or f.pod is None or not _noticed(f.pod, f.state):
        return False
    return not marked(f.pod, f.memory.written) or by_eviction(f.pod, c)


def by_eviction(pod: objects.Pod, c: lifecycle.Config) -> bool:
    """Whether the pod asks to be evicted through the API ahead of its instance's reclamation."""
    return _asks(pod, c.reclaim_eviction)


def _asks(pod: objects.Pod, eviction: tuple[str, ...]) -> bool:
    """Whether the pod carries the ``eviction`` annotation (key and value; () for none)."""
    if not eviction:
        return False
    key, value = eviction
    return pod.metadata.annotations.get(key, "").strip() == value


def reclaimed(f: lifecycle.Facts, c: lifecycle.Config) -> bool:
    """The cloud took the listed instance back after its notice and the pod does not show it yet."""
    return f.answer is None and f.pod is not None and _reclaimed(f.pod, f.state)


def _noticed(pod: objects.Pod, state: models.InstanceState | None) -> bool:
    return (
        notice(state) is not None
        and state is not None
        and state.status is not models.InstanceStatus.EXPIRED
        and pod.phase not in ("Succeeded", "Failed")
    )


def _reclaimed(pod: objects.Pod, state: models.InstanceState | None) -> bool:
    return (
        state is not None
        and state.status is models.InstanceStatus.EXPIRED
        and notice(state) is not None
        and pod.phase != "Failed"
    )


def replaceable(pod: objects.Pod) -> bool:
    """Whether a controller creates a new pod when this one is deleted."""
    return pod.metadata.controlled_by(*REPLACING_KINDS) is not None


def plan(
    f: lifecycle.Facts, c: lifecycle.Config, wanted: Mapping[str, Any] | None, written: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, tuple[events.Event, ...], Action | None]:
    """The status to write, the events to post and how to remove the pod now (None: not now), from
    the status following the instance (``wanted``; None when vnode wrote it already) and vnode's
    last write."""
    pod, state, now = f.pod, f.state, status.rfc3339(f.now) or ""
    assert pod is not None
    assert state is not None
    if state.status is models.InstanceStatus.EXPIRED:  # taken: fail the pod (marked) as the cloud says
        return (None if wanted is None else on_release(pod, state, wanted, written, now)), (), None
    if marked(pod, written):  # marked at the notice; its eviction was refused: ask again
        return (None if wanted is None else dict(wanted)), (), Action.EVICTION
    marked_status, warning, how = mark(pod, state, wanted or written or {}, now, c.reclaim_eviction)
    return marked_status, (warning,), how


def mark(
    pod: objects.Pod, state: models.InstanceState | None, wanted: Mapping[str, Any], now: str,
    eviction: tuple[str, ...] = (),
) -> tuple[dict[str, Any], events.Event, Action | None]:  # fmt: skip
    """``wanted`` (the status following the instance) with the DisruptionTarget condition, the
    warning, and how to remove the pod now: evicted (it carries the ``eviction`` annotation, key
    and value), deleted (its controller replaces it) or not (None)."""
    event = notice(state)
    assert state is not None
    assert event is not None
    soon = f"the cloud reclaims instance {state.id} soon" + (f" ({event.message})" if event.message else "")
    grace = pod.spec.termination_grace_period_seconds
    how: Action | None = None
    if _asks(pod, eviction):
        how = Action.EVICTION
        message = f"{soon}: the pod is evicted, its PodDisruptionBudgets honoured, as {eviction[0]} asks"
    elif replaceable(pod):
        how = Action.EVICT
        message = (
            f"{soon}: the pod is deleted with its grace period ({30 if grace is None else grace}s) "
            "so that its controller starts a replacement now"
        )
    else:
        message = f"{soon}: the pod fails when it is gone"
    return _with_condition(wanted, message, now), events.Event("Reclaiming", message, type="Warning"), how


def on_release(
    pod: objects.Pod, state: models.InstanceState | None, wanted: Mapping[str, Any], written: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:  # fmt: skip
    """``wanted`` (the pod failed as the cloud says) with the DisruptionTarget condition, unless
    the pod has it already (from the notice)."""
    if marked(pod, written):
        return dict(wanted)
    event = notice(state)
    assert state is not None
    when = f" ({event.message})" if event is not None and event.message else ""
    return _with_condition(wanted, f"the cloud reclaimed instance {state.id}{when}", now)


def _with_condition(wanted: Mapping[str, Any], message: str, now: str) -> dict[str, Any]:
    condition = {"type": CONDITION, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
    condition |= {"reason": REASON, "message": message}
    return {**wanted, "conditions": [*(wanted.get("conditions") or ()), condition]}
