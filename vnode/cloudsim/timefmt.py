"""How the simulated cloud writes times: RFC 3339 in UTC, to the second, millisecond or nanosecond.

Renderers ask for the same few seconds over and over (every instance of a listing was made
within a few seconds of the others), so the formatting of a whole second is cached; it is
several times quicker than ``datetime`` or ``strftime`` on this hot path.
"""

from __future__ import annotations

import functools
import time


@functools.lru_cache(maxsize=4096)  # renderers ask for the same few seconds over and over
def _second(at: int) -> str:
    t = time.gmtime(at)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def rfc3339_exact(at: float, *, nanos: bool = False) -> str:
    """``2026-11-28T12:00:00Z`` (``nanos``: ``…00.123456789Z``), 0 included."""
    stamp = _second(int(at))
    if nanos:
        return f"{stamp}.{int((at % 1) * 1e9):09d}Z"
    return f"{stamp}Z"


def rfc3339_millis(at: float) -> str:
    """``2026-11-28T12:00:00.123Z``: ARM's spelling of a time."""
    whole = int(at)
    micros = round((at - whole) * 1e6)  # as datetime.fromtimestamp rounds
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    return f"{_second(whole)}.{micros // 1000:03d}Z"


def rfc3339(at: float) -> str:
    """``2026-11-28T12:00:00Z``: how the cloud writes times ("" for 0: not happened)."""
    return rfc3339_exact(at) if at else ""
