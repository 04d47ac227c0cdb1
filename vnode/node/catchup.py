"""The node's wait for the API server to catch up with new pods, before their first TokenRequest.

A TokenRequest made as ``system:node:<n>`` is checked by NodeRestriction and the Node authorizer
against the API server's *own* watch of pods, which lags the daemon's watch: by milliseconds on a
quiet API server, by seconds in a burst. Until it has caught up with a pod, the request is refused
(``404 pod "x" not found``, or ``no relationship found between node``). Asking again for each pod
on its own (in place after 30 and 100 ms, then with the queue's backoff) cost 1.88 TokenRequests
per pod in a 10,000-pod burst.

So the node keeps one estimate of that lag, as TCP keeps one of its round trip, and holds each
new pod until the estimate has passed since its first ask:

* while no refusal comes the estimate is 0 and every pod asks at once (a quiet API server: one
  request per token, no wait);
* a refusal raises it (to :data:`FIRST` at first, then by :data:`START_GROW` until an answer
  comes, as TCP's slow start, then by :data:`GROW`), once per refusal of a request sent *after*
  the last raise: the requests in flight when the lag grew are refused together, and each of
  them raising it sent it to its ceiling at once;
* each answer lowers it a little (:data:`SHRINK`), down to 0 below :data:`FLOOR`;
* a held pod is told when to look again (``PodNotYetKnown`` with that wait; the pod queue takes it
  as a turn: its worker goes on with other pods, no backoff is counted); it looks again against
  the estimate *then*, so a raise holds the pods already waiting too.

While a steady lag lasts the refusals are about one per raise, not one or more per pod, and a
pod waits about the lag, which it would have waited anyway. When the API server stalls (it drops
and resumes its watches in a burst) the requests already sent are refused together: 1.30
TokenRequests per pod at 10,000 pods, against 1.88 (docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vnode import errors

__all__ = ["FIRST", "FLOOR", "GROW", "MAX_LAG", "NOT_YET_KNOWN", "SHRINK", "START_GROW", "Gate", "not_yet"]

NOT_YET_KNOWN = "PodNotYetKnown"  # the code of a hold: the pod queue waits for its turn, no backoff
FIRST = 0.03  # seconds: the estimate after a first refusal (a quiet API server lags by milliseconds)
GROW = 1.25  # the estimate's factor at a refusal of a request sent after the last raise
START_GROW = 1.5  # the same until the first answer since the estimate left 0 (from 30 ms to 1 s in 9)
SHRINK = 0.99  # its factor at each answer: halved in 69 answers
FLOOR = 0.01  # seconds: an estimate below this is 0 (every pod asks at once again)
MAX_LAG = 30.0  # seconds: the estimate's ceiling (an API server that lags longer is not catching up)
PRUNE_EVERY = 4096  # first asks recorded between two prunings of the ones never answered (pods gone)


class Gate:
    """How long a node's new pods wait before their first TokenRequest (see the module)."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self.lag = 0.0  # seconds: the estimate
        self._first: dict[str, float] = {}  # pod uid -> when it first asked (until it is answered)
        self._raised_at = float("-inf")  # when the estimate was last raised
        self._starting = False  # no answer yet since the estimate left 0: it grows by START_GROW
        self._recorded = 0  # first asks recorded since the last pruning

    @property
    def footprint(self) -> int:
        """Pods remembered (for tests that nothing leaks)."""
        return len(self._first)

    def enter(self, uid: str) -> float:
        """Before a pod's TokenRequest: the time it is sent (to pass back), or the hold, raised
        (``errors.Unavailable``, ``PodNotYetKnown``) with the seconds to wait."""
        now = self.monotonic()
        first = self._first.get(uid)
        if first is None:
            if self.lag <= 0:
                return now  # the usual case: nothing to remember unless it is refused
            first = self._remember(uid, now)
        wait = first + self.lag - now
        if wait > 0:
            raise not_yet(f"its first TokenRequest waits {wait:.2f}s more, the node's estimate of the lag", wait)
        return now

    def answered(self, uid: str) -> None:
        """The pod's TokenRequest was answered: the API server knows it."""
        self._first.pop(uid, None)
        if self.lag > 0:
            self._starting = False
            self.lag *= SHRINK
            if self.lag < FLOOR:
                self.lag = 0.0
                self._first.clear()  # pods that asked and were never answered: gone, or asking at once now

    def refused(self, uid: str, sent: float, refusal: errors.ApiError) -> errors.Unavailable:
        """The TokenRequest sent at ``sent`` was refused for the API server's lag: the hold to raise."""
        now = self.monotonic()
        first = self._first.get(uid)
        if first is None:
            first = self._remember(uid, sent)
        if sent >= self._raised_at:
            if self.lag < FIRST:
                self.lag, self._starting = FIRST, True
            else:
                self.lag = min(MAX_LAG, self.lag * (START_GROW if self._starting else GROW))
            self._raised_at = now
        return not_yet(refusal.message, max(first + self.lag - now, self.lag / 2, FIRST))

    def left(self, uid: str) -> None:
        """The pod's TokenRequest failed otherwise: it no longer waits here."""
        self._first.pop(uid, None)

    def _remember(self, uid: str, now: float) -> float:
        self._first[uid] = now
        self._recorded += 1
        if self._recorded >= PRUNE_EVERY:
            self._recorded = 0
            stale = now - 2 * MAX_LAG
            self._first = {u: t for u, t in self._first.items() if t >= stale}
        return now


def not_yet(why: str, wait: float | None) -> errors.Unavailable:
    """The error of a pod held (or refused) while the API server catches up: retried in ``wait`` seconds."""
    return errors.Unavailable(
        f"{why} (the API server has not caught up with the new pod yet)", code=NOT_YET_KNOWN, retry_after=wait
    )
