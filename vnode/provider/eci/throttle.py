"""A client-side token bucket: the cloud's create/delete limits, kept so vnode waits instead of
collecting ``Throttling.User`` answers."""

from __future__ import annotations

import dataclasses
import time

from vnode import errors

__all__ = ["TokenBucket"]


@dataclasses.dataclass
class TokenBucket:
    """A client-side token bucket (the cloud's create/delete limits) on the monotonic clock."""

    burst: float
    rate: float
    tokens: float = -1.0
    updated: float = dataclasses.field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, action: str) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            wait = (1.0 - self.tokens) / self.rate if self.rate else 1.0
            raise errors.Throttled(f"ECI {action}: client-side rate limit", code="Throttling.Client", retry_after=wait)
        self.tokens -= 1.0
