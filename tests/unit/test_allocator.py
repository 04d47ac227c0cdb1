"""The daemon hands the C allocator's free pages back to the kernel: its RSS follows its load.

A burst (a relist, a full listing of the cloud) leaves freed chunks in the middle of glibc's
heap; without a trim the process keeps them resident for its life.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.waiting import until
from vnode import allocator

BURST = """
import os
from vnode import allocator

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))

burst = [bytes(2000) + os.urandom(8) for _ in range(100_000)]  # 200 MB in chunks glibc's malloc serves
kept = burst[::50]  # what outlives the burst, scattered over its heap
del burst
before = rss_mb()
trimmed = allocator.trim()
print(before, rss_mb(), trimmed)
"""


def test_a_trim_gives_a_bursts_free_pages_back_to_the_kernel() -> None:
    done = subprocess.run([sys.executable, "-c", BURST], capture_output=True, text=True, timeout=120, check=True)
    before, after, trimmed = done.stdout.split()
    if trimmed != "True":
        pytest.skip("this C library has no malloc_trim")
    assert int(after) < int(before) / 2, f"RSS {before} MB after the burst, {after} MB after the trim"


async def test_the_daemon_trims_periodically(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(allocator, "_malloc_trim", lambda: calls.append)
    task = asyncio.create_task(allocator.trim_periodically(interval=0.01))
    try:
        await until(lambda: len(calls) >= 3, within=10, what="three trims", interval=0.01)
    finally:
        task.cancel()
    assert calls[:3] == [0, 0, 0]


async def test_without_malloc_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_malloc_trim", lambda: None)
    assert allocator.trim() is False
    async with asyncio.timeout(10):
        await allocator.trim_periodically(interval=0.01)  # returns at once
