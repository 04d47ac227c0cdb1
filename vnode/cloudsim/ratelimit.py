"""Token buckets, one per API action: how ECI throttles (create/delete burst 100, refill 20/s).

The buckets are ``vnode/tokenbucket.py``'s. Time is passed in (the simulated clock), so a paused
clock never refills and tests are exact.
"""

from __future__ import annotations

import collections
import dataclasses

from vnode import tokenbucket


@dataclasses.dataclass(frozen=True)
class Limit:
    burst: float
    rate: float


# Actions not listed here are not throttled. Names are dialect-neutral operations.
DEFAULT_LIMITS: dict[str, Limit] = {
    "create": Limit(burst=100, rate=20),
    "delete": Limit(burst=100, rate=20),
    "restart": Limit(burst=100, rate=20),
    "describe": Limit(burst=1000, rate=500),
    "status": Limit(burst=1000, rate=500),
}


class Limiter:
    """A bucket per action, built from ``limits``; replaceable at run time (admin API)."""

    def __init__(self, limits: dict[str, Limit] | None = None) -> None:
        self.limits: dict[str, Limit] = dict(DEFAULT_LIMITS if limits is None else limits)
        self._buckets: dict[str, tokenbucket.TokenBucket] = {}
        # Calls that reached the limiter, and those it refused, by action, since the start (a checker
        # reads them from /admin/totals: how close clients keep to the limits, storms included).
        self.calls: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()

    def allow(self, action: str, now: float) -> bool:
        self.calls[action] += 1
        limit = self.limits.get(action)
        if limit is None:
            return True
        bucket = self._buckets.get(action)
        if bucket is None:
            bucket = self._buckets[action] = tokenbucket.TokenBucket(limit.burst, limit.rate)
        if bucket.take(now):
            return True
        self.refused[action] += 1
        return False

    def set(self, action: str, limit: Limit | None) -> None:
        """Change one action's limit (None: unlimited); its bucket starts full."""
        if limit is None:
            self.limits.pop(action, None)
        else:
            self.limits[action] = limit
        self._buckets.pop(action, None)

    def reset(self) -> None:
        self.limits = dict(DEFAULT_LIMITS)
        self._buckets.clear()
