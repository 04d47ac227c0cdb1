"""Waiting on conditions with a deadline: the suite never sleeps a fixed time.

The suite's one polling helper, in two colours: :func:`wait_for` for sync tests (and threads),
:func:`until` on an event loop, where a blocking wait would stall the very tasks that make the
condition come true. Both call ``check`` until it returns something truthy, return that, and
fail naming ``what`` (and the last error ``check`` raised) when the deadline passes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import pytest

T = TypeVar("T")

# What was waited for: a text, or a function giving one at failure time (to show the last state seen).
What = str | Callable[[], str]


def wait_for(check: Callable[[], T | None], *, timeout: float, what: What, interval: float = 0.1) -> T:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
        except Exception as exc:
            result, last_error = None, exc
        if result:
            return result
        if time.monotonic() > deadline:
            _fail(what, timeout, last_error)
        time.sleep(interval)


async def until(
    check: Callable[[], T | Awaitable[T | None] | None], *, within: float, what: What, interval: float = 0.1
) -> T:
    """Await ``check()`` (sync or async) until it returns something truthy; fail naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):  # bounded too: a check that hangs must not outlive the deadline
                async with asyncio.timeout(max(deadline - time.monotonic(), interval)):
                    result = await result
        except Exception as exc:
            result, last_error = None, exc
        if result:
            return result  # type: ignore[return-value]  # awaited above when it was an awaitable
        if time.monotonic() > deadline:
            _fail(what, within, last_error)
        await asyncio.sleep(interval)


def _fail(what: What, seconds: float, last_error: Exception | None) -> NoReturn:
    detail = f" (last error: {last_error})" if last_error else ""
    pytest.fail(f"timed out after {seconds:.0f}s waiting for {what if isinstance(what, str) else what()}{detail}")


def open_transports(loop: asyncio.AbstractEventLoop) -> list[asyncio.BaseTransport]:
    """The transports of ``loop`` whose socket is still open, for ``until(lambda: not open_transports(loop))``.

    A closed TLS transport finishes its shutdown over the next turns of its loop; a loop stopped
    before that leaves sockets for the garbage collector to complain about in a later test.
    (``_transports`` is the selector loop's own registry of its transports.)
    """
    transports: dict[int, asyncio.BaseTransport] = getattr(loop, "_transports", {})
    return [t for t in list(transports.values()) if getattr(t, "_sock", None) is not None]
