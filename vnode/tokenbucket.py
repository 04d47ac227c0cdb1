"""A token bucket: ``burst`` tokens at most, refilled at ``rate`` per second.

The one bucket behind every rate limit in vnode: the simulated cloud's throttling per API
action (burst 100, refill 20/s for create and delete, as ECI does), a provider's client-side
limit on its own creates and deletes, and the pacing of Kubernetes Events. Time is passed in
(any clock: the simulator's, ``time.monotonic``), so a paused clock never refills and tests
are exact; ``now=None`` reads ``time.monotonic``.

Three ways to take a token, one per kind of caller:

* ``take(now) -> bool``: take one if there is one (a server deciding to throttle);
* ``reserve(now) -> float``: take one on credit and say how long to wait for it (a pacer
  that sends everything, spaced out); ``rate <= 0`` means unpaced there;
* ``Turns.take(key, action)``: a client that must not exceed the server's limit and cannot
  wait in place (a work queue's keys): go ahead, or ``errors.ClientThrottled`` with a ticket
  kept for ``key``; turns come first come first served, at the bucket's rate.

A client-side bucket can be adaptive (``ceiling``): additive increase on each call the server
accepts, multiplicative decrease (``slow_down``) on each it throttles, as TCP and the adaptive
retry mode of cloud SDKs do, so that the replicas sharing one account converge on their share.

A leaf module: it imports nothing of vnode but ``vnode/errors.py``.
"""

from __future__ import annotations

import dataclasses
import time

from vnode import errors


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

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def refill(self, now: float | None = None) -> float:
        """Count the tokens added since the last call (never more than ``burst``); returns ``now``."""
        now = time.monotonic() if now is None else now
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
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

    def slow_down(self, now: float | None = None) -> None:
        """The server throttled a call this bucket let through: halve the rate (down to a twentieth of
        ``ceiling``) and empty the bucket, so the clients sharing the limit back off together instead
        of retrying in step. Nothing for a bucket that is not adaptive."""
        if not self.ceiling:
            return
        self.refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.rate = max(self.ceiling / 20, self.rate / 2)

    def speed_up(self) -> None:
        """A call went through: climb back towards ``ceiling`` by a hundredth of it per call."""
        if self.ceiling and self.rate < self.ceiling:
            self.rate = min(self.ceiling, self.rate + self.ceiling / 100)

    def reserve(self, now: float | None = None) -> float:
        """Take a token, on credit if need be: 0 if one was there, else how long to wait for it."""
        if self.rate <= 0:
            return 0.0
        self.refill(now)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclasses.dataclass
class Turns:
    """First come, first served on a bucket's rate, for callers that cannot wait in place (a work
    queue's keys: a worker must not sleep on a token while other pods wait for it).

    Each caller held back is given a *ticket*, numbered in order, and an ``errors.ClientThrottled``
    saying when its turn should come; a ticket's turn has come once the bucket has made that many
    tokens. The count of tokens made follows the bucket's rate *now*, so when an adaptive bucket
    climbs back after a slow-down, every waiting turn comes sooner (a time fixed at the slow rate
    would not). So a burst of 5,000 deletes is served in the order it came, each caller throttled
    about once, instead of each retrying at random into an empty bucket with a backoff growing with
    its bad luck. When nobody waits, at most ``burst`` tokens are in hand.
    """

    bucket: TokenBucket  # its burst and its rate (adaptive with a ceiling); its own tokens are not used
    forget_after: float = 600.0  # a ticket nobody came back for (its pod is gone) is dropped this late
    made: float = -1.0  # tokens made since the start (< 0: not started; it starts with ``burst``)
    issued: int = 0  # tickets handed out, numbered from 1
    updated: float | None = None
    waiting: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)  # key -> (ticket, issued at)

    def __post_init__(self) -> None:
        if self.made < 0:
            self.made = self.bucket.burst

    def take(self, key: str, action: str, *, now: float | None = None) -> None:
        """Go ahead (a token is taken for ``key``), or ``ClientThrottled`` with the wait for its turn."""
        now = self._advance(now)
        if self.bucket.rate <= 0:
            return  # unpaced
        held = self.waiting.get(key)
        if held is None:
            self.issued += 1
            ticket = self.issued
            if ticket <= self.made:
                return
            self.waiting[key] = (ticket, now)
        else:
            ticket = held[0]
            if ticket <= self.made:
                del self.waiting[key]
                return
        wait = (ticket - self.made) / self.bucket.rate
        raise errors.ClientThrottled(f"{action}: client-side rate limit, turn in {wait:.2f}s",
                                     code="Throttling.Client", retry_after=wait)  # fmt: skip

    def slow_down(self, now: float | None = None) -> None:
        """The server throttled a call let through: the bucket's rate halves, and no token is left in hand."""
        now = self._advance(now)
        self.bucket.slow_down(now)
        self.made = min(self.made, float(self.issued))

    def speed_up(self) -> None:
        self.bucket.speed_up()

    def _advance(self, now: float | None) -> float:
        now = time.monotonic() if now is None else now
        if self.updated is not None and now > self.updated:
            self.made = min(self.made + (now - self.updated) * self.bucket.rate, self.issued + self.bucket.burst)
        self.updated = now if self.updated is None else max(now, self.updated)
        # Tickets are issued in time order: the forgotten ones are at the front.
        while self.waiting:
            key, (_, since) = next(iter(self.waiting.items()))
            if now - since <= self.forget_after:
                break
            del self.waiting[key]
        return now
