"""A token bucket: ``burst`` tokens at most, refilled at ``rate`` per second.

The one bucket behind every rate limit in vnode: the simulated cloud's throttling per API
action (burst 100, refill 20/s for create and delete, as ECI does), a provider's client-side
limit on its own creates and deletes, and the pacing of Kubernetes Events. Time is passed in
(any clock: the simulator's, ``time.monotonic``), so a paused clock never refills and tests
are exact; ``now=None`` reads ``time.monotonic``.

Three ways to take a token, one per kind of caller:

* ``take(now) -> bool``: take one if there is one (a server deciding to throttle);
* ``take_turn(action)`` in a pod worker (``turns_for(key, wake)``): take one, or join the bucket's
  line and be woken (``wake(key)``) with a token set aside once one is there, at whatever rate
  the bucket has by then;
* ``await acquire(action)``: wait for one in the same line, in the order asked (a client that
  must not exceed the server's limit: a drain, the orphan collection). Waiting, not failing, is
  the point: a client bucket that answered "throttled, the next token is in 50 ms" to each of
  1,800 callers at once sent every one of them into its own exponential backoff, and the unlucky
  waited minutes (the soak: creates 4 minutes at the ramp, deletes 3.5 minutes at the teardown)
  while tokens went unused;
* ``reserve(now) -> float``: take one on credit and say how long to wait for it (a pacer
  that sends everything, spaced out: the Event recorder); ``rate <= 0`` means unpaced.

A client-side bucket can be adaptive (``ceiling``): additive increase with time while the server
accepts its calls, multiplicative decrease (``slow_down``) when it throttles them, at most once a
second, as TCP does per round trip, so that the replicas sharing one account converge on their share.

A leaf module: it imports nothing of vnode but ``vnode/errors.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping

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


#: Set (``turns_for``) by a pod worker around one key's work: a refused caller joins the line under
#: its key and ``wake(key)`` is called when its token is set aside (``take_or_queue``).
_CALLER: contextvars.ContextVar[tuple[str, Callable[[str], None]] | None] = contextvars.ContextVar(
    "vnode_turn_caller", default=None
)


@contextlib.contextmanager
def turns_for(key: str, wake: Callable[[str], None]) -> Iterator[None]:
    """Within it, a refused ``take_turn`` puts ``key`` in the bucket's line; ``wake(key)`` comes with its token."""
    token = _CALLER.set((key, wake))
    try:
        yield
    finally:
        _CALLER.reset(token)


CLIENT_THROTTLED = "Throttling.Client"  # the code of a client-side bucket's Throttled: its hint is the caller's turn
SLOW_DOWN_EVERY = 1.0  # seconds: an adaptive bucket halves its rate at most this often
CLIMB = 0.05  # of the ceiling per second: the climb back after a halving (from the floor to the ceiling in 19 s)
TICKET_SECONDS = 30.0  # a token set aside for a woken caller that has not come for it is given up after this
DISPENSE_EVERY = 0.5  # seconds at most between two looks of the line's dispenser (the rate may have climbed)


def _refused(action: str, wait: float) -> errors.Throttled:
    """A client-side refusal of ``action``: its hint is the caller's wait (or a fallback for it)."""
    return errors.Throttled(f"{action}: client-side rate limit", code=CLIENT_THROTTLED, retry_after=wait)


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
    # Named callers refused a token (``turns_for``), first come first served: key -> how to wake it.
    line: collections.OrderedDict[str, Callable[[str], None]] = dataclasses.field(
        default_factory=collections.OrderedDict, repr=False
    )
    # Keys woken with a token set aside for them -> when; the token is theirs until TICKET_SECONDS pass.
    tickets: collections.OrderedDict[str, float] = dataclasses.field(
        default_factory=collections.OrderedDict, repr=False
    )
    _dispenser: asyncio.Task[None] | None = dataclasses.field(default=None, repr=False)

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
        """Take a token, or raise ``errors.Throttled`` (``Throttling.Client``) saying about when the caller's
        turn comes. The caller holds nothing while it waits (a worker of the pod queue is free for other
        pods' work meanwhile); where ``acquire`` made a worker sleep on its turn, every worker slept on
        creates while the pods already made waited minutes for their status (the soak: 3,805 pods shown
        Pending long after their instance ran).

        A named caller (``turns_for``) joins the line, keeping its place if it is in it already, and is
        woken when a token is set aside for it (``dispense``), at the rate the bucket has *then*: a turn
        fixed when the caller was refused was one of the rate of that moment, and the soak's teardown
        came right after the replicas' buckets had halved to their floor on the cloud's throttling:
        pods were told turns six minutes away, kept them while the rate climbed back in seconds, and
        the tokens went unused (551 pods stuck Terminating, 30 instances leaked). The hint it gets is a
        fallback only, long enough never to come first at the present rate.

        An anonymous caller is told the time of its turn at the present rate, counted (``promised``,
        paid off at the rate) so that the n-th is told n tokens later."""
        now = self.refill(now)
        caller = _CALLER.get()
        if caller is not None:
            key, wake = caller
            if self.tickets.pop(key, None) is not None:
                return  # woken: its token was set aside for it
            if not self.line and self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            self.line.setdefault(key, wake)
            self._start_dispenser()
            ahead = len(self.line) + max(0.0, -self.tokens)
            hint = 2 * ahead / self.rate + 5.0 if self.rate > 0 else 60.0
            raise _refused(action, hint)
        if self.tokens >= 1.0 and not self.line:
            self.tokens -= 1.0
            return
        if self.rate <= 0:
            raise _refused(action, 1.0)
        self.promised += 1.0
        turn = (self.promised + len(self.line) - self.tokens) / self.rate
        raise _refused(action, turn)

    def dispense(self, now: float | None = None) -> float:
        """Set a token aside for each caller at the head of the line while there are tokens, and wake
        it; give up tickets older than ``TICKET_SECONDS`` (a woken key whose work no longer needs the
        call). Returns the seconds until the next token (0: the line is empty)."""
        now = self.refill(now)
        while self.tickets:
            key, since = next(iter(self.tickets.items()))
            if now - since < TICKET_SECONDS:
                break
            del self.tickets[key]
        while self.line and self.tokens >= 1.0:
            key, wake = self.line.popitem(last=False)
            self.tokens -= 1.0
            self.tickets[key] = now
            wake(key)
        return self.wait_time() if self.line else 0.0

    def _start_dispenser(self) -> None:
        """Start serving the line, unless it is served already or no event loop runs (a test calls ``dispense``)."""
        if self._dispenser is not None and not self._dispenser.done():
            return
        try:
            self._dispenser = asyncio.get_running_loop().create_task(self._dispense())
        except RuntimeError:
            self._dispenser = None

    async def _dispense(self) -> None:
        """Serve the line until it is empty, looking again at least every ``DISPENSE_EVERY`` seconds:
        the rate climbs while it waits, and a wait reckoned at the floor's rate would be too long."""
        while True:
            wait = self.dispense()
            if not self.line:
                return
            await asyncio.sleep(min(DISPENSE_EVERY, max(wait, 0.001)))

    async def take_turn(self, action: str) -> None:
        """A client's way to its token: ``acquire`` (wait in place) within ``waiting_for_turns``, else
        ``take_or_queue`` (the turn's time in ``Throttled``)."""
        if _WAITING.get():
            await self.acquire(action)
        else:
            self.take_or_queue(action)

    async def acquire(self, action: str, *, max_wait: float = 60.0) -> float:
        """Wait for a token, in the order asked: in the same line as the pod workers' calls, served at the
        rate the bucket has when each token comes (a wait reckoned when it began, at the floor's rate
        after the cloud's throttling, overslept while the rate climbed back). Returns the seconds
        waited. A wait beyond ``max_wait`` at the present rate (a bucket the server slowed to a crawl,
        a rate of 0) takes nothing and raises ``errors.Throttled`` (``Throttling.Client``) with the wait
        as its hint; a caller cancelled while waiting leaves the line, or hands its token back."""
        now = self.refill()
        if not self.line and self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        wait = (len(self.line) + 1.0 - self.tokens) / self.rate if self.rate > 0 else max_wait + 1.0
        if wait > max_wait:
            raise _refused(action, wait)
        served: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = f"\0acquire-{id(served)}"  # no pod key looks like this

        def wake(_key: str) -> None:
            if not served.done():
                served.set_result(None)

        self.line[key] = wake
        self._start_dispenser()
        try:
            await served
        except asyncio.CancelledError:
            if self.line.pop(key, None) is None and self.tickets.pop(key, None) is not None:
                self.tokens += 1.0  # woken as it was cancelled: the token goes back
            raise
        self.tickets.pop(key, None)
        return max(0.0, time.monotonic() - now)

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


def waiting(buckets: Mapping[str, TokenBucket]) -> dict[str, int]:
    """Per bucket, the callers in its line now (a provider's ``turns_waiting``)."""
    return {action: len(bucket.line) for action, bucket in buckets.items()}
