"""ECI's spot annotations, as the pod carries them, into CreateContainerGroup's Spot* parameters.

``k8s.aliyun.com/eci-spot-strategy`` (``SpotAsPriceGo``, or ``SpotWithPriceLimit`` with
``k8s.aliyun.com/eci-spot-price-limit``, an hourly price up to 3 decimals),
``k8s.aliyun.com/eci-spot-duration`` (the protection period in hours: 1 by default, 0 for none)
and ``k8s.aliyun.com/eci-spot-fallback`` (pay-as-you-go when spot stock is out). Bad values are
refused with ``InvalidSpec`` naming the annotation, so the pod fails fast with the reason.

``k8s.aliyun.com/eci-spot-release-strategy: api-evict`` is not a parameter of the cloud's: ACK
users write it and no public page says what it does, so vnode reads it as its name says (the
profile's ``reclaim_eviction``): at the reclamation notice the pod is evicted through the Eviction
API, its PodDisruptionBudgets honoured. Any other value is refused.

:class:`Prices` tells what a spot instance is billed, for the node's cost and what spot saved.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from vnode import errors, models

__all__ = [
    "API_EVICT",
    "DURATION",
    "FALLBACK",
    "PRICE_LIMIT",
    "RELEASE_STRATEGIES",
    "RELEASE_STRATEGY",
    "STRATEGIES",
    "STRATEGY",
    "Prices",
    "params",
    "wants_fallback",
]

log = logging.getLogger(__name__)

STRATEGY = "k8s.aliyun.com/eci-spot-strategy"
PRICE_LIMIT = "k8s.aliyun.com/eci-spot-price-limit"
DURATION = "k8s.aliyun.com/eci-spot-duration"
FALLBACK = "k8s.aliyun.com/eci-spot-fallback"
RELEASE_STRATEGY = "k8s.aliyun.com/eci-spot-release-strategy"
API_EVICT = "api-evict"  # the one value of RELEASE_STRATEGY: evicted through the API at the notice
RELEASE_STRATEGIES = (API_EVICT,)
STRATEGIES = ("SpotAsPriceGo", "SpotWithPriceLimit")
RELEASED_REASON = "BidFailed"  # the pod's reason once ECI has reclaimed its spot instance
_PRICE = re.compile(r"\d+(\.\d{1,3})?")


def params(annotations: Mapping[str, str]) -> dict[str, str]:
    """The Spot* parameters the pod's annotations ask for (none for an on-demand pod)."""
    strategy = annotations.get(STRATEGY, "").strip()
    if not strategy:
        for other in (PRICE_LIMIT, DURATION, FALLBACK, RELEASE_STRATEGY):
            if other in annotations:
                raise errors.InvalidSpec(f"annotation {other} needs {STRATEGY} (one of {', '.join(STRATEGIES)})")
        return {}
    if strategy not in STRATEGIES:
        raise errors.InvalidSpec(f"annotation {STRATEGY}: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    out = {"SpotStrategy": strategy}
    limit = annotations.get(PRICE_LIMIT, "").strip()
    if strategy == "SpotWithPriceLimit":
        if not limit:
            raise errors.InvalidSpec(f"annotation {PRICE_LIMIT} is required with {STRATEGY}=SpotWithPriceLimit")
        if not _PRICE.fullmatch(limit) or float(limit) <= 0:
            raise errors.InvalidSpec(
                f"annotation {PRICE_LIMIT}: {limit!r} is not a positive hourly price with up to 3 decimals"
            )
        out["SpotPriceLimit"] = limit
    elif limit:
        raise errors.InvalidSpec(f"annotation {PRICE_LIMIT} is used only with {STRATEGY}=SpotWithPriceLimit")
    duration = annotations.get(DURATION, "").strip()
    if duration:
        if not duration.isdigit():
            raise errors.InvalidSpec(f"annotation {DURATION}: {duration!r} is not a whole number of hours (0: none)")
        out["SpotDuration"] = str(int(duration))
    wants_fallback(annotations)
    release = annotations.get(RELEASE_STRATEGY)
    if release is not None and release.strip() not in RELEASE_STRATEGIES:
        raise errors.InvalidSpec(
            f"annotation {RELEASE_STRATEGY}: {release!r} is not one of {', '.join(RELEASE_STRATEGIES)}"
        )
    return out


def wants_fallback(annotations: Mapping[str, str]) -> bool:
    """Whether the pod asks for pay-as-you-go when spot stock is out (default no)."""
    value = annotations.get(FALLBACK, "false").strip().lower()
    if value not in ("true", "false"):
        raise errors.InvalidSpec(f"annotation {FALLBACK}: {value!r} is not true or false")
    return value == "true"


class Prices:
    """What each spot instance is billed per hour, as near as ECI's price API tells.

    ECI bills a spot instance at the market price of its size in its zone when it was bought, and
    says so nowhere in its description. So the first time an instance is seen, the market price of
    its size and zone is asked (DescribeContainerGroupPrice with ``SpotAsPriceGo``; one call per size
    and zone every ``ttl`` seconds, whatever the number of instances) and kept for the instance's
    life. An instance first seen long after it was bought gets the price of that moment: an estimate.
    If the price API fails, the instance is priced at the list price until a later step asks again.
    """

    def __init__(self, call: Callable[[str, dict[str, str]], Awaitable[dict[str, Any]]], *, ttl: float = 600.0):
        self._call = call
        self._ttl = ttl
        self._market: dict[tuple[float, float, str], tuple[float, float]] = {}  # (cpu, GiB, zone) -> (USD/h, at)
        self._bought: dict[str, float] = {}  # instance id -> USD per hour

    async def fill(self, described: dict[str, models.InstanceState]) -> None:
        """Give each spot instance of ``described`` its hourly price (in place)."""
        for instance_id, state in described.items():
            if not state.interruptible or not state.zone or not state.cpu:
                continue
            price = self._bought.get(instance_id)
            if price is None:
                price = await self._market_price(state)
                if price is None:
                    continue
                self._bought[instance_id] = price
            described[instance_id] = dataclasses.replace(state, hourly_price=price)

    def forget(self, gone: Iterable[str]) -> None:
        for instance_id in gone:
            self._bought.pop(instance_id, None)

    async def _market_price(self, state: models.InstanceState) -> float | None:
        key = (state.cpu, state.memory_gib, state.zone)
        now = time.monotonic()
        known = self._market.get(key)
        if known is not None and now - known[1] < self._ttl:
            return known[0]
        params = {"Cpu": f"{state.cpu:g}", "Memory": f"{state.memory_gib:g}", "ZoneId": state.zone,
                  "SpotStrategy": "SpotAsPriceGo"}  # fmt: skip
        try:
            body = await self._call("DescribeContainerGroupPrice", params)
        except errors.ApiError as exc:
            log.info("spot price of %g vCPU / %g GiB in %s not known yet: %s", *key, exc)
            return None
        market = ((body.get("PriceInfo") or {}).get("SpotPrices") or {}).get("SpotPrice") or ()
        price = next(
            (float(p["SpotPrice"]) for p in market if p.get("ZoneId") == state.zone and p.get("SpotPrice")), None
        )
        if price is not None:
            self._market[key] = (price, now)
        return price
