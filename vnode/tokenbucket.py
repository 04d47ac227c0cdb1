"""A token bucket: ``burst`` tokens at most, refilled at ``rate`` per second.

The one bucket behind every rate limit in vnode: the simulated cloud's throttling per API
action (burst 100, refill 20/s for create and delete, as ECI does), a provider's client-side
limit on its own creates and deletes, and the pacing of Kubernetes Events. Time is passed in
(any clock: the simulator's, ``time.monotonic``), so a paused clock never refills and tests
are exact; ``now=None`` reads ``time.monotonic``.

Three ways to take a token, one per kind of caller:

* ``take(now) -> bool``: take one if there is one (a server deciding to throttle);
* ``await acquire(action)``: wait for one, in the order asked (a client that must not exceed
  the server's limit). Waiting, not failing, is the point: a client bucket that answered
  "throttled, the next token is in 50 ms" to each of 1,800 callers at once sent every one of
  them into its own exponential backoff, and the unlucky waited minutes (the soak: creates 4
  minutes at the ramp, deletes 3.5 minutes at the teardown) while tokens went unused;
* ``reserve(now) -> float``: take one on credit and say how long to wait for it (a pacer
  that sends everything, spaced out; ``acquire`` is built on it); ``rate <= 0`` means unpaced.

A client-side bucket can be adaptive (``ceiling``): additive increase with time while the server
accepts its calls, multiplicative decrease (``slow_down``) when it throttles them, at most once a
second, as TCP does per round trip, so that the replicas sharing one account converge on their share.

A leaf module: it imports nothing of vnode but ``vnode/errors.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Iterator

from vnode import errors

#: Set (``waiting_for_turns``) by code whose calls may wait in place for their token (a drain's deletes,
#: the orphan collection); elsewhere (the pod queue's workers) ``take_turn`` answers at once.
_WAITING: contextvars.ContextVar[bool] = contextvars.ContextVar("vnode_waiting_for_turns", default=False)


@contextlib.contextmanager
def waiting_for_turns() -> Iterator[None]:
    """Within it (and the tasks started from it), ``take_turn`` waits for the caller's token in place."""
    token = _WAITING.set(True)
    try:
        yield
    finally:
        _WAITING.reset(token)


CLIENT_THROTTLED = "Throttling.Client"  # the code of a client-side bucket's Throttled: its hint is the caller's turn
SLOW_DOWN_EVERY = 1.0  # seconds: an adaptive bucket halves its rate at most this often
CLIMB = 0.05  # of the ceiling per second: the climb back after a halving (from the floor to the ceiling in 19 s)


@dataclasses.dataclass
class TokenBucket:
    """``burst`` tokens at most, ``rate`` added per second; it starts full (``tokens < 0``: full)."""

    burst: float
    rate: float
    tokens: float = -1.0
    updated: float | None = None  # when the tokens were last counted; None: not yet
    # Adaptive (AIMD) when > 0: the rate a client-side bucket climbs back to after the server refused
    # calls it let through (several clients share one account's limit; none knows the others' rate).
    ceiling: float = 0.0
    # Callers told to come back later (``take_or_queue``) and not yet due: paid off at ``rate``.
    promised: float = 0.0
    # When ``slow_down`` last halved the rate: it halves at most once per ``SLOW_DOWN_EVERY`` seconds.
    slowed_at: float | None = None
    changed_at: float | None = None  # when the rate last changed or was confirmed (``speed_up`` climbs from it)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def refill(self, now: float | None = None) -> float:
        """Count the tokens added since the last call (never more than ``burst``); returns ``now``."""
        now = time.monotonic() if now is None else now
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.promised = max(0.0, self.promised - (now - self.updated) * self.rate)
        self.updated = now if self.updated is None else max(now, self.updated)
        return now

    def take(self, now: float | None = None) -> bool:
        """Take a token at time ``now``; False (and nothing taken) when the bucket is empty."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until a token is there (0 if one is); 1 s for a bucket that never refills."""
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate else 1.0

    def take_or_queue(self, action: str, now: float | None = None) -> None:
        """Take a token, or raise ``errors.Throttled`` (``Throttling.Client``) with the time of the caller's
        turn: each caller told to come back is counted (``promised``, paid off at the bucket's rate), so
        the n-th is told n tokens later, and they come back spread at the rate, each about when a token is
        there. The caller holds nothing while it waits (a worker of the pod queue is free for other pods'
        work meanwhile; one that never comes back leaves its token to the next). Where ``acquire`` would
        make a worker sleep on its turn, every worker slept on creates while the pods already made waited
        minutes for their status (the soak: 3,805 pods shown Pending long after their instance ran)."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return
        if self.rate <= 0:
            raise errors.Throttled(f"{action}: client-side rate limit", code=CLIENT_THROTTLED, retry_after=1.0)
        self.promised += 1.0
        turn = (self.promised - self.tokens) / self.rate
        raise errors.Throttled(f"{action}: client-side rate limit", code=CLIENT_THROTTLED, retry_after=turn)

    async def take_turn(self, action: str) -> None:
        """A client's way to its token: ``acquire`` (wait in place) within ``waiting_for_turns``, else
        ``take_or_queue`` (the turn's time in ``Throttled``)."""
        if _WAITING.get():
            await self.acquire(action)
        else:
            self.take_or_queue(action)

    async def acquire(self, action: str, *, max_wait: float = 60.0) -> float:
        """Wait for a token, in the order asked (each caller reserves the next one on credit); returns the
        seconds waited. A wait beyond ``max_wait`` (a bucket the server slowed to a crawl, a rate of 0)
        takes nothing and raises ``errors.Throttled`` (``Throttling.Client``) with the wait as its hint;
        a caller cancelled while waiting hands its token back."""
        if self.rate <= 0:  # never refills: what the burst holds, then nothing
            if self.take():
                return 0.0
            raise errors.Throttled(f"{action}: client-side rate limit", code=CLIENT_THROTTLED, retry_after=max_wait)
        wait = self.reserve()
        if wait > max_wait:
            self.tokens += 1.0
            raise errors.Throttled(f"{action}: client-side rate limit", code=CLIENT_THROTTLED, retry_after=wait)
        if wait:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                self.tokens += 1.0
                raise
        return wait

    def slow_down(self, now: float | None = None) -> None:
        """The server throttled a call this bucket let through: halve the rate (down to a twentieth of
        ``ceiling``) and empty the bucket, so the clients sharing the limit back off together instead
        of retrying in step; at most once per ``SLOW_DOWN_EVERY`` seconds, as TCP halves its window
        once per round trip, not once per lost packet: the calls in flight when the server began to
        refuse are refused together, and halving for each sent the rate to its floor at once (the
        soak: a replica's deletes at 1/s, their turns minutes away). Nothing for a bucket that is
        not adaptive."""
        if not self.ceiling:
            return
        now = self.refill(now)
        if self.slowed_at is not None and now - self.slowed_at < SLOW_DOWN_EVERY:
            return
        self.slowed_at = self.changed_at = now
        self.tokens = min(self.tokens, 0.0)
        self.rate = max(self.ceiling / 20, self.rate / 2)

    def speed_up(self, now: float | None = None) -> None:
        """A call went through: climb back towards ``ceiling`` by ``CLIMB`` of it per second since the
        last change, by time and not by calls: a climb per call that went through let the busiest
        replica win every race for the account's tokens and climb, while a quieter one, refused
        more, sat at its floor (the soak: a draining replica at 1 delete/s for ten minutes while its
        peer took the whole account). With both climbing alike and halving alike, they share it."""
        if not self.ceiling:
            return
        now = time.monotonic() if now is None else now
        if self.rate < self.ceiling and self.changed_at is not None and now > self.changed_at:
            self.rate = min(self.ceiling, self.rate + self.ceiling * CLIMB * (now - self.changed_at))
        self.changed_at = now

    def reserve(self, now: float | None = None) -> float:
        """Take a token, on credit if need be: 0 if one was there, else how long to wait for it."""
        if self.rate <= 0:
            return 0.0
        self.refill(now)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
