"""Hand the C allocator's free pages back to the kernel, so that a daemon's RSS follows its load.

CPython keeps its small objects in arenas it unmaps once they are empty; everything larger
(response bodies, a listing's decoded answer, a relist's buffers, the sockets' read buffers)
comes from glibc's malloc, which keeps freed chunks in the middle of its heap resident. After
each burst (a relist of thousands of pods, a full listing of the cloud, a drain) the process
kept the burst's pages: in the soak a daemon's RSS grew 15-18 % between two moments of equal
load while the memory Python held (traced by bench/memdump) stayed flat. ``malloc_trim(0)``
returns every free page of every arena to the kernel. Elsewhere than glibc, nothing is done.
A leaf module: it imports nothing of vnode.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import time
from collections.abc import Callable

__all__ = ["TRIM_INTERVAL", "trim", "trim_periodically"]

log = logging.getLogger(__name__)

TRIM_INTERVAL = 30.0  # seconds; a trim takes about 10 ms per 100 MB of freed heap


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim  # the process's own C library: glibc has it, musl does not
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


def trim() -> bool:
    """Return the allocator's free pages to the kernel; False where the C library cannot."""
    function = _malloc_trim()
    if function is None:
        return False
    function(0)
    return True


async def trim_periodically(interval: float = TRIM_INTERVAL) -> None:
    """Trim every ``interval`` seconds, for the life of the process."""
    if _malloc_trim() is None:
        log.debug("no malloc_trim in this C library: the allocator keeps its free pages")
        return
    while True:
        await asyncio.sleep(interval)
        began = time.perf_counter()
        trim()
        log.debug("allocator trimmed in %.1f ms", (time.perf_counter() - began) * 1000)
