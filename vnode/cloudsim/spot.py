"""ECI's spot (preemptible) instances in the simulated cloud: the market, the bid, the reclamation.

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
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from vnode.cloudsim import catalog, model

__all__ = [
    "CHECK_EVERY",
    "STRATEGIES",
    "announce",
    "bid",
    "check",
    "first_check",
    "hourly",
    "is_spot",
    "summary",
    "usd_per_second",
]

STRATEGIES = ("NoSpot", "SpotAsPriceGo", "SpotWithPriceLimit")
CHECK_EVERY = 300.0  # ECI checks price and stock of a spot instance every 5 minutes after protection
WAVE = 6 * 3600.0
OUTBID = "The current price of recommend instanceTypes above user max price"


def is_spot(spec: model.InstanceSpec) -> bool:
    return spec.spot_strategy not in ("", "NoSpot")


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
    pending on a price limit below it, with ECI's event, and bid again in 5 minutes (False)."""
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


def check(inst: model.Instance, t: float, notice: float, *, no_stock: bool = False) -> None:
    """The 5-minute check after the protection period: announce the reclamation (the market passed
    the limit, or the zone has ``no_stock`` of the size left), or check again later."""
    if no_stock or _outbid(inst, t):
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
