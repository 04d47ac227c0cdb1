"""SIGTERM that arrives before the daemon can act on it is kept, not fatal.

Python's default SIGTERM action kills the process at once. ``vnode run`` spends its first
second or two importing (more on a loaded machine), and a StatefulSet scale-in can deliver
SIGTERM in that window, for example right after a replica restarted: the replica would die
without draining its node. :func:`capture` (called by the command line before any heavy
import) records the signal instead; ``vnode run`` hands :func:`pending` to the daemon
(``Daemon.terminate()``) once its own handlers are installed. Only SIGTERM: Ctrl-C (SIGINT) keeps interrupting at once.
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["capture", "pending"]

_received: list[signal.Signals] = []


def _record(signum: int, frame: FrameType | None) -> None:
    _received.append(signal.Signals(signum))


def capture() -> None:
    """Keep SIGTERM for later instead of dying of it."""
    signal.signal(signal.SIGTERM, _record)


def pending() -> list[signal.Signals]:
    """The signals captured so far (each once), oldest first; clears the record."""
    found = list(dict.fromkeys(_received))
    _received.clear()
    return found
