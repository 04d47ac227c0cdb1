"""A loop waiting on an event with a time limit ends when cancelled, even as the event is set (vnode/waits.py)."""

from __future__ import annotations

import asyncio
import pathlib
import re

from vnode import waits

VNODE = pathlib.Path(__file__).resolve().parents[2] / "vnode"


async def test_a_cancel_in_the_turn_the_event_is_set_ends_the_loop() -> None:
    """On Python 3.11, ``asyncio.wait_for(event.wait(), t)`` returned here instead of raising, and the loop
    waited again for good (a daemon's token renewer kept the daemon from stopping)."""
    flag = asyncio.Event()
    woken = 0

    async def loop() -> None:
        nonlocal woken
        while True:
            if await waits.event(flag, 30):
                woken += 1
            flag.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)  # one turn: the loop is now waiting
    flag.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, "the loop went on waiting after its cancel"
    assert task.cancelled()


async def test_the_time_limit_and_the_event() -> None:
    flag = asyncio.Event()
    assert not await waits.event(flag, 0.01)
    flag.set()
    assert await waits.event(flag, 0.01)
    assert await waits.event(flag, None)


def test_no_module_waits_on_an_event_through_wait_for() -> None:
    pattern = re.compile(r"wait_for\([^()]*\.wait\(\)")
    found = [f"{path.relative_to(VNODE.parent)}:{n}" for path in sorted(VNODE.rglob("*.py")) if path.name != "waits.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]  # fmt: skip
    assert not found, f"use vnode.waits.event (wait_for loses a cancellation on Python 3.11): {found}"
