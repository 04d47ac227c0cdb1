"""The suite's polling helper: returns the first truthy answer, fails naming what it waited for."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests import waiting


def test_wait_for_returns_the_first_truthy_answer() -> None:
    answers = iter([None, 0, "", "here"])
    assert waiting.wait_for(lambda: next(answers), timeout=5, what="an answer", interval=0) == "here"


def test_wait_for_fails_naming_what_and_the_last_error() -> None:
    def check() -> None:
        raise ValueError("not yet")

    with pytest.raises(pytest.fail.Exception, match=r"waiting for the thing \(last error: not yet\)"):
        waiting.wait_for(check, timeout=0, what="the thing")


async def test_until_takes_sync_and_async_checks() -> None:
    calls = itertools.count()

    async def third_time() -> int | None:
        n = next(calls)
        return n if n == 2 else None

    assert await waiting.until(third_time, within=5, what="the third call", interval=0) == 2
    assert await waiting.until(lambda: "sync", within=5, what="a sync answer") == "sync"


async def test_until_fails_with_a_description_made_at_failure_time() -> None:
    seen: list[int] = []

    def check() -> bool:
        seen.append(len(seen))
        return False

    with pytest.raises(pytest.fail.Exception, match=r"waiting for a state; last seen \d+"):
        await waiting.until(check, within=0, what=lambda: f"a state; last seen {seen[-1]}")


async def test_until_does_not_wait_past_its_deadline_for_a_check_that_hangs() -> None:
    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    with pytest.raises(pytest.fail.Exception, match="waiting for an answer"):
        await waiting.until(hangs, within=0.2, what="an answer")
