"""Token buckets, one per API action: how ECI throttles (create/delete burst 100, refill 20/s).

Time is passed in (the simulated clock), so a paused clock never refills and tests are exact.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TokenBucket:
    """``burst`` tokens at most, ``rate`` added per second; each call takes one."""

    burst: float
    rate: float
    tokens: float = -1.0
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float) -> bool:
        """Take a token at time ``now``; False (and nothing taken) when the bucket is empty."""
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now if self.updated is None else max(now, self.updated)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


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
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, action: str, now: float) -> bool:
        limit = self.limits.get(action)
        if limit is None:
            return True
        bucket = self._buckets.get(action)
        if bucket is None:
            bucket = self._buckets[action] = TokenBucket(limit.burst, limit.rate)
        return bucket.take(now)

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
