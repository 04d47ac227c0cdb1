"""ECI's spot annotations, as the pod carries them, into CreateContainerGroup's Spot* parameters.

``k8s.aliyun.com/eci-spot-strategy`` (``SpotAsPriceGo``, or ``SpotWithPriceLimit`` with
``k8s.aliyun.com/eci-spot-price-limit``, an hourly price up to 3 decimals),
``k8s.aliyun.com/eci-spot-duration`` (the protection period in hours: 1 by default, 0 for none)
and ``k8s.aliyun.com/eci-spot-fallback`` (pay-as-you-go when spot stock is out). Bad values are
refused with ``InvalidSpec`` naming the annotation, so the pod fails fast with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vnode import errors

__all__ = ["DURATION", "FALLBACK", "PRICE_LIMIT", "STRATEGIES", "STRATEGY", "params", "wants_fallback"]

STRATEGY = "k8s.aliyun.com/eci-spot-strategy"
PRICE_LIMIT = "k8s.aliyun.com/eci-spot-price-limit"
DURATION = "k8s.aliyun.com/eci-spot-duration"
FALLBACK = "k8s.aliyun.com/eci-spot-fallback"
STRATEGIES = ("SpotAsPriceGo", "SpotWithPriceLimit")
RELEASED_REASON = "BidFailed"  # the pod's reason once ECI has reclaimed its spot instance
_PRICE = re.compile(r"\d+(\.\d{1,3})?")


def params(annotations: Mapping[str, str]) -> dict[str, str]:
    """The Spot* parameters the pod's annotations ask for (none for an on-demand pod)."""
    strategy = annotations.get(STRATEGY, "").strip()
    if not strategy:
        for other in (PRICE_LIMIT, DURATION, FALLBACK):
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
    return out


def wants_fallback(annotations: Mapping[str, str]) -> bool:
    """Whether the pod asks for pay-as-you-go when spot stock is out (default no)."""
    value = annotations.get(FALLBACK, "false").strip().lower()
    if value not in ("true", "false"):
        raise errors.InvalidSpec(f"annotation {FALLBACK}: {value!r} is not true or false")
    return value == "true"
