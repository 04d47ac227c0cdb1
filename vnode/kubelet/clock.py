"""Time as the kubelet API sees it, passed in so tests can drive review caches and ``sinceSeconds``."""

from __future__ import annotations

import datetime
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime.datetime:
        """Wall-clock time, timezone-aware UTC (log ``sinceSeconds``, stats timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (cache expiry)."""
        ...


class SystemClock:
    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    def monotonic(self) -> float:
        return time.monotonic()
