"""``kubectl logs -f`` for clouds whose log API has no follow: poll it and yield what was appended.

ECI's DescribeContainerLog and ACI's logs call both return the whole (or tailed) log per call;
both providers follow it the same way, so the loop lives here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["follow_log"]


async def follow_log(
    read: Callable[[bool], Awaitable[bytes]], *, follow: bool, interval: float
) -> AsyncIterator[bytes]:
    """Yield ``read(tail=True)``, then, with ``follow``, each later growth of ``read(tail=False)``.

    The baseline is read before the first chunk is handed out: what the log gains while the
    caller holds that chunk is yielded next.
    """
    first = await read(True)
    seen = len(await read(False)) if follow else 0
    if first:
        yield first
    if not follow:
        return
    while True:
        await asyncio.sleep(interval)
        content = await read(False)
        if len(content) > seen:
            yield content[seen:]
        seen = max(seen, len(content))
