"""The keyed work queue: one task per key, dirty keys come back, delays coalesce, backoff grows with jitter."""

from __future__ import annotations

import asyncio
import random

import pytest

from vnode.node import queue


async def test_a_key_is_handed_out_once_even_if_added_many_times() -> None:
    q = queue.WorkQueue()
    for _ in range(3):
        q.add("a")
    q.add("b")
    assert await q.get() == "a"
    assert await q.get() == "b"
    assert len(q) == 2  # both processing, nothing queued twice


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    q = queue.WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed meanwhile: must not run concurrently
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.05)
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_add_after_keeps_the_sooner_time_and_add_cancels_the_timer() -> None:
    q = queue.WorkQueue()
    q.add_after("a", 10)
    q.add_after("a", 0.01)
    assert await asyncio.wait_for(q.get(), 1) == "a"
    q.done("a")
    q.add_after("b", 10)
    q.add("b")
    assert await asyncio.wait_for(q.get(), 1) == "b"
    q.done("b")
    assert len(q) == 0


def test_backoff_grows_exponentially_is_capped_jittered_and_honours_hints() -> None:
    backoff = queue.Backoff(base=1, cap=8, rng=random.Random(1))
    delays = [backoff.delay(n) for n in range(1, 7)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    hinted = [backoff.delay(1, hint=30) for _ in range(50)]
    assert all(30 <= d <= 45 for d in hinted), "never before the hint, at most half of it later"
    assert len(set(hinted)) > 40, "jittered: the keys one answer throttled do not all retry at once"


async def test_retry_counts_failures_and_forget_resets_them() -> None:
    q = queue.WorkQueue(queue.Backoff(base=0.01, cap=0.02, rng=random.Random(0)))
    q.retry("a")
    q.retry("a")
    assert q.failures("a") == 2
    assert await asyncio.wait_for(q.get(), 1) == "a"
    q.forget("a")
    assert q.failures("a") == 0
    q.done("a")
    q.close()
