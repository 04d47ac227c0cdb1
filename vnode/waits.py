"""Waiting for an event with a time limit, without losing a cancellation.

``asyncio.wait_for(event.wait(), timeout)`` on Python 3.11 swallows a cancellation that arrives in the
same turn as the event is set: the inner wait is done by the time the cancellation is handled, so
``wait_for`` returns its result instead of raising. A loop around it then waits again, its task marked
as cancelling but never cancelled again, and whatever awaits the task (a ``TaskGroup`` stopping a
daemon) waits for good. Found by tests/node/test_restart.py hanging in the full suite: a daemon's token
renewer, woken as the daemon was cancelled, kept the daemon from stopping. ``asyncio.timeout`` counts
cancellations (``Task.uncancel``) and lets the outside one through.
"""

from __future__ import annotations

import asyncio

__all__ = ["event"]


async def event(flag: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``flag`` is set or ``seconds`` have passed (None: no limit); whether it is set."""
    if flag.is_set():
        return True
    if seconds is None:
        await flag.wait()
        return True
    try:
        async with asyncio.timeout(seconds):
            await flag.wait()
    except TimeoutError:
        return False
    return True
