"""Spot instances in the simulated cloud: ECI's market, bid and reclamation; ACI's discount and eviction.

- The market price of a size in a zone moves over simulated time: a fifth to a third of the
  pay-as-you-go price, on a six-hour wave whose phase depends on the size and the zone, so zones
  differ and a price limit can be outbid later. :func:`hourly` is what DescribeContainerGroupPrice
  answers and what an instance bought at that moment is billed (:func:`usd_per_second`).
- ``SpotWithPriceLimit`` below the market: the instance stays Scheduling with ECI's event
  ("The current price of recommend instanceTypes above user max price") and bids again every
  5 minutes (:data:`CHECK_EVERY`).
- The protection period (``SpotDuration`` hours from the purchase, default 1, 0 for none): not
  reclaimed. After it, every 5 minutes: a price-limited instance whose limit the market passed is
  reclaimed, and so is any spot instance whose zone has run out of stock of its size
  (``POST /admin/stock`` with ``available: 0``). A reclamation (also forced by
  ``POST /admin/instances/{id}/reclaim``) is announced by a Warning ``SpotToBeReleased`` ("Spot
  ECI will be released in 3 minutes"; the notice is the profile's ``spot_notice``, 180 s by
  default) and carried out after it: the instance ``Expired``, billing stopped, its record kept.

ACI's Spot priority (``properties.priority: Spot``; ``InstanceSpec.priority``) is another kind. ACI
says Spot containers "cost up to 70% less" and publishes no price list, so the simulator bills a
Spot group :data:`ACI_DISCOUNT` off its regular price, fixed (:func:`aci_hourly`). ACI evicts Spot
groups when it needs the capacity and restarts them itself; when, and with what notice, it does not
say, so the simulator evicts only when asked (``POST /admin/instances/{id}/reclaim``): after the
``notice`` asked for (none by default; a Warning :data:`EVICTION_NOTICE` announces one), every
running container is killed (exit 137, ``detailStatus`` :data:`EVICTION`) and started again at once,
its restart count one up, and the group records a Warning :data:`EVICTION`. A Regular group is never
evicted: asking is refused. The names, the exit code and the notice are the simulator's choices.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from vnode.cloudsim import catalog, errors, model

__all__ = [
    "ACI_DISCOUNT",
    "CHECK_EVERY",
    "EVICTED_EXIT_CODE",
    "EVICTION",
    "EVICTION_NOTICE",
    "STRATEGIES",
    "aci_hourly",
    "announce",
    "bid",
    "check",
    "evicts_in_place",
    "first_check",
    "hourly",
    "is_spot",
    "reclaim",
    "summary",
    "usd_per_second",
]

STRATEGIES = ("NoSpot", "SpotAsPriceGo", "SpotWithPriceLimit")
CHECK_EVERY = 300.0  # ECI checks price and stock of a spot instance every 5 minutes after protection
WAVE = 6 * 3600.0
OUTBID = "The current price of recommend instanceTypes above user max price"
ACI_DISCOUNT = 0.70  # off the regular price: ACI's "up to 70% less", taken as exactly that (the simulator's)
EVICTION = "SpotEviction"  # the Warning of an ACI Spot eviction and its containers' detailStatus (the simulator's)
EVICTION_NOTICE = "SpotEvictionNotice"  # the Warning announcing one, when asked with a notice (the simulator's)
EVICTED_EXIT_CODE = 137  # a container killed by the eviction exits as one killed by SIGKILL


def evicts_in_place(spec: model.InstanceSpec) -> bool:
    """An ACI Spot group: billed at a fixed discount, and restarted in place when evicted."""
    return spec.priority == "Spot"


def is_spot(spec: model.InstanceSpec) -> bool:
    return evicts_in_place(spec) or spec.spot_strategy not in ("", "NoSpot")


def aci_hourly(inst: model.Instance) -> float:
    """What an ACI Spot group is billed, USD per hour: its regular price less :data:`ACI_DISCOUNT`
    (a Spot group has no GPUs: ACI refuses them)."""
    regular = catalog.usd_per_second(inst.cpu, inst.memory, inst.spec.instance_type) * 3600
    return round(regular * (1.0 - ACI_DISCOUNT), 6)


def hourly(spec: catalog.Spec, zone: str, t: float) -> float:
    """The market price, USD per hour, of ``spec`` in ``zone`` at simulated time ``t``."""
    digest = hashlib.blake2b(f"{spec.key}/{zone}".encode(), digest_size=2).digest()
    phase = 2 * math.pi * int.from_bytes(digest, "big") / 65536
    ratio = 0.27 + 0.07 * math.sin(2 * math.pi * t / WAVE + phase)
    return round(spec.usd_per_second() * 3600 * ratio, 6)


def usd_per_second(inst: model.Instance) -> float:
    """What a second of ``inst`` costs: its spot price if bought as spot, else pay-as-you-go."""
    if inst.spot_hourly:
        return inst.spot_hourly / 3600
    gpus = sum(c.gpu for c in inst.spec.containers)
    return catalog.usd_per_second(inst.cpu, inst.memory, inst.spec.instance_type, gpus)


def _market(inst: model.Instance, t: float) -> float:
    return hourly(catalog.Spec(inst.cpu, inst.memory), inst.zone, t)


def _outbid(inst: model.Instance, t: float) -> bool:
    spec = inst.spec
    return spec.spot_strategy == "SpotWithPriceLimit" and spec.spot_price_limit < _market(inst, t)


def bid(inst: model.Instance, t: float) -> bool:
    """At scheduling: buy at the market price (True; the protection period starts), or stay
    pending on a price limit below it, with ECI's event, and bid again in 5 minutes (False). An ACI
    Spot group is bought at its fixed price; placed anew (a start after a stop), no eviction is pending."""
    if evicts_in_place(inst.spec):
        inst.spot_hourly = aci_hourly(inst)
        inst.spot_check_at = inst.noticed_at = None
        return True
    if not is_spot(inst.spec):
        return True
    if _outbid(inst, t):
        last = inst.events[-1] if inst.events else None
        if last is not None and last.reason == "SpotPriceTooLow":
            last.count, last.at = last.count + 1, t
        else:
            inst.events.append(model.Event(at=t, type="Warning", reason="SpotPriceTooLow", message=OUTBID))
        inst.next_at = t + CHECK_EVERY
        return False
    inst.spot_hourly = _market(inst, t)
    inst.spot_check_at = first_check(inst, t)
    return True


def first_check(inst: model.Instance, t: float) -> float:
    """When the first reclamation check of a spot instance bought at ``t`` is due."""
    return t + (inst.spec.spot_duration * 3600.0 if inst.spec.spot_duration else CHECK_EVERY)


def announce(inst: model.Instance, t: float, notice: float) -> None:
    """The reclamation of ``inst`` is decided at ``t``: the notice now, the release ``notice`` seconds later."""
    minutes = max(1, round(notice / 60))
    inst.events.append(
        model.Event(
            at=t, type="Warning", reason="SpotToBeReleased", message=f"Spot ECI will be released in {minutes} minutes"
        )
    )
    inst.spot_check_at = None
    inst.noticed_at = t
    inst.expire_at = t + notice


def reclaim(inst: model.Instance, t: float, notice: float | None, *, default_notice: float) -> None:
    """A reclamation asked at ``t`` (admin): of an ACI Spot group, its eviction after ``notice`` (none by
    default), carried out by :func:`check`; of a Regular one, refused; of any other, ECI's (:func:`announce`,
    the notice ``default_notice`` unless given)."""
    if inst.spec.priority == "Regular":
        raise errors.Conflict(
            f"The container group {inst.spec.name} has Regular priority: only a Spot container group is evicted."
        )
    if not evicts_in_place(inst.spec):
        announce(inst, t, default_notice if notice is None else notice)
        return
    inst.noticed_at, inst.spot_check_at = t, t + (notice or 0.0)
    if notice:
        message = f"The Spot container group will be evicted in {notice:g} seconds."
        inst.record(t, "Warning", EVICTION_NOTICE, message)


def _evict(inst: model.Instance, t: float) -> None:
    """ACI's eviction of a Spot group, now: its running containers killed and due to start again at once."""
    inst.record(t, "Warning", EVICTION, "The Spot container group was evicted; its containers are restarted.")
    for container in inst.containers:
        run = container.current
        if run.state != "Running":
            continue
        container.previous = model.Run(
            state="Terminated", reason=EVICTION, started_at=run.started_at or t, finished_at=t,
            exit_code=EVICTED_EXIT_CODE,
        )  # fmt: skip
        container.current = model.Run(reason="ContainerCreating")
        container.ready, container.killed = False, False
        container.ends_at, container.restart_at = None, t  # the lifecycle starts it again (restart count + 1)
    inst.spot_check_at = inst.noticed_at = None


def check(inst: model.Instance, t: float, notice: float, *, no_stock: bool = False) -> None:
    """The 5-minute check after the protection period: announce the reclamation (the market passed
    the limit, or the zone has ``no_stock`` of the size left), or check again later. For an ACI Spot
    group, the time of the eviction asked (:func:`reclaim`): carry it out."""
    if evicts_in_place(inst.spec):
        _evict(inst, t)
    elif no_stock or _outbid(inst, t):
        announce(inst, t, notice)
    else:
        inst.spot_check_at = t + CHECK_EVERY


def summary(instances: Iterable[model.Instance], now: float) -> dict[str, float]:
    """The live spot instances, what they cost so far and what pay-as-you-go would have cost more."""
    count, cost, saved = 0, 0.0, 0.0
    for inst in instances:
        if inst.spot_hourly:
            seconds = inst.billable_seconds(now)
            count += 1
            cost += usd_per_second(inst) * seconds
            saved += (catalog.Spec(inst.cpu, inst.memory).usd_per_second() - usd_per_second(inst)) * seconds
    return {"live": count, "cost_usd": cost, "saved_usd": saved}
