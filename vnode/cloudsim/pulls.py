"""A failed image pull, as each cloud handles it.

ACI fails the container group's provisioning at once (ARM's ``InaccessibleImage``). ECI keeps the
instance Pending, and billed, and pulls again with the kubelet's back-off: the container waits in
``ErrImagePull``, then ``ImagePullBackOff``, until the pull works (a passing registry fault) or the
instance has been Pending for its maximum pending time (4 hours; ECI's API takes no parameter
for it, ack-virtual-node's ``k8s.aliyun.com/eci-max-pending-minute`` is kept by the virtual
node), then stops it: Failed. ``InstanceSpec.max_pending_seconds`` says which: 0 is ACI's way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from vnode.cloudsim import model, workloads

__all__ = ["ECI_MAX_PENDING_SECONDS", "PENDING_TIMEOUT", "attempt"]

ECI_MAX_PENDING_SECONDS = 4 * 3600.0
#: The reason of the event the cloud records when it stops an instance Pending too long. The name is
#: the simulator's: ECI documents that it reports an event, not the event's reason.
PENDING_TIMEOUT = "PendingTimeout"


def attempt(
    inst: model.Instance, t: float, *, forced: bool, any_image: bool, backoff: tuple[float, float]
) -> Literal["pulled", "again", "failed"]:
    """Pull the instance's images at ``t``: all pulled; not, and ``inst.next_at`` is the next try;
    or not, and the instance fails now (ACI, or Pending too long on ECI)."""
    if _timed_out(inst, t):
        return "failed"
    servers = (login.server for login in inst.spec.registry_credentials)
    index = _first_unpullable(inst.spec.containers, servers, forced=forced, any_image=any_image)
    if index is None:
        return "pulled"
    again = _failed(inst, index, t, backoff_base=backoff[0], backoff_max=backoff[1])
    if again is None:
        return "failed"
    inst.next_at = again
    return "again"


def _first_unpullable(
    containers: Iterable[model.ContainerSpec], servers: Iterable[str], *, forced: bool, any_image: bool
) -> int | None:
    """The index of the first container whose image the registry will not give this instance."""
    logins = list(servers)
    for index, spec in enumerate(containers):
        if forced or not workloads.pullable(spec.image, logins, any_image=any_image):
            return index
    return None


def _failed(inst: model.Instance, index: int, t: float, *, backoff_base: float, backoff_max: float) -> float | None:
    """Record the failed pull of container ``index``; when it is pulled again (``None``: never, the
    instance fails now)."""
    image = inst.spec.containers[index].image
    detail = f'Failed to pull image "{image}": repository does not exist or may require authorization'
    backoff = f'Back-off pulling image "{image}"'
    _count(inst, t, "Failed", detail)
    _count(inst, t, "BackOff", backoff)
    inst.pull_failures += 1
    container = inst.containers[index]
    if not inst.spec.max_pending_seconds:
        container.current = model.Run(reason="ErrImagePull", message=detail)
        return None
    if inst.pull_failures == 1:
        container.current = model.Run(reason="ErrImagePull", message=detail)
    else:
        container.current = model.Run(reason="ImagePullBackOff", message=f"{backoff}: ErrImagePull: {detail}")
    delay = min(backoff_max, backoff_base * 2.0 ** min(inst.pull_failures - 1, 32))  # no float overflow
    return min(t + delay, inst.status_at + inst.spec.max_pending_seconds)


def _timed_out(inst: model.Instance, t: float) -> bool:
    """Whether a Pending instance whose pull keeps failing has reached its maximum pending time; if
    so, say so in an event (the caller fails it)."""
    limit = inst.spec.max_pending_seconds
    if not limit or not inst.pull_failures or t < inst.status_at + limit:
        return False
    minutes = limit / 60
    message = (
        f"the instance was Pending for longer than its maximum of {minutes:g} minutes (the image pull kept failing)"
    )
    inst.record(t, "Warning", PENDING_TIMEOUT, message)
    return True


def _count(inst: model.Instance, t: float, reason: str, message: str) -> None:
    """A Warning counted up on the instance's one event of that reason and message, moved last (as
    the kubelet's event correlator does), or recorded."""
    same = next((e for e in inst.events if (e.reason, e.message) == (reason, message)), None)
    if same is None:
        inst.record(t, "Warning", reason, message)
        return
    inst.events.remove(same)
    same.count, same.at = same.count + 1, t
    inst.events.append(same)
