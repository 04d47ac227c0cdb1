"""A keyed work queue: one task at a time per key, retries with exponential backoff and jitter.

Why keys and not events (kopf's ``queueing.py`` makes the same case): a pod may change ten
times while its instance is being created; the worker must not run ten creates, nor run two
at once. So the queue holds *keys*. A key added while it is being processed is marked dirty
and handed out again once the worker is done, and the worker always re-reads the latest state.
A key that failed is retried after ``base * 2**failures`` seconds (capped, with full jitter
from a seeded ``random.Random``), or after the remote's retry hint if that is longer.
"""

from __future__ import annotations

import asyncio
import random

__all__ = ["Backoff", "WorkQueue"]


class Backoff:
    """Delays for the n-th consecutive failure: exponential, capped, jittered, never below a hint."""

    def __init__(self, *, base: float = 0.2, cap: float = 60.0, rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self.rng = rng or random.Random()

    def delay(self, failures: int, hint: float | None = None) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** max(0, failures - 1))
        jittered = ceiling / 2 + self.rng.random() * ceiling / 2
        # A server's retry hint is when the *first* retry may come; jittered over half of it again, so
        # that the keys (and the replicas) it answered at once do not all retry in the same instant.
        hinted = (hint or 0.0) * (1.0 + self.rng.random() / 2)
        return float(max(jittered, hinted))


class WorkQueue:
    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._queued) + len(self._processing) + len(self._timers)

    def add(self, key: str) -> None:
        """Process ``key`` soon (now, or right after the task already processing it)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        """Process ``key`` in ``delay`` seconds, unless something sooner is already planned."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        existing = self._timers.get(key)
        if key in self._queued or (existing is not None and existing[0] <= when):
            return
        if existing is not None:
            existing[1].cancel()
        self._timers[key] = (when, loop.call_at(when, self._fire, key))

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: str, hint: float | None = None) -> float:
        """``key`` failed again: schedule it after the backoff delay, which is returned."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = self.backoff.delay(failures, hint)
        self.add_after(key, delay)
        return delay

    def turn(self, key: str, when: float) -> float:
        """``key`` was told its turn for a rate-limited call comes in ``when`` seconds: process it then
        (a tenth later at most, so that keys told the same moment spread), with no failure counted
        and no backoff: the wait is the rate's, not the key's. The delay is returned."""
        delay = when * (1.0 + self.backoff.rng.random() / 10)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """``key`` succeeded: its next failure starts the backoff from the beginning."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        """The next key to process; the caller must call ``done(key)`` afterwards."""
        key = await self._ready.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
