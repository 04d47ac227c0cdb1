"""Run a process's main coroutine on its event loop: uvloop's (a dependency) by default, asyncio's otherwise.

Each pod costs the daemon a watch event, a work-queue turn, a few cloud calls and a status write,
all of it small socket work on one thread, where the loop's own overhead weighs: uvloop (libuv
behind asyncio's interface) took less of the daemon's CPU per pod than the standard loop in the
same benchmark runs (10,000 pods over 4 nodes, 2026-12-07: 7.7 ms against 8.1 ms a pod, peak RSS
153 MB against 167 MB, p99 5.6 s against 9.5 s; a 2,000-pod run the day before: 6.5 against 7.5 ms,
98 against 113 MB; docs/benchmarks.md, the `vnode-asyncio` rows). ``VNODE_EVENT_LOOP=asyncio``
chooses the standard loop anyway, to measure one against the other or to rule uvloop out of a
problem; ``uvloop`` insists on it (an error if it is not installed, as on Windows, where it is not
a dependency).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from vnode import errors

__all__ = ["CHOICES", "ENV", "factory", "run"]

T = TypeVar("T")

ENV = "VNODE_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


def factory(environ: Mapping[str, str] = os.environ) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory ``VNODE_EVENT_LOOP`` asks for; None means asyncio's own."""
    choice = environ.get(ENV, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise errors.ConfigError(f"{ENV}={environ[ENV]!r}: choose one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        if choice == "uvloop":
            raise errors.ConfigError(f"{ENV}=uvloop, but uvloop is not installed (pip install uvloop)") from exc
        return None
    new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new_loop


def run(main: Coroutine[Any, Any, T], *, environ: Mapping[str, str] = os.environ) -> T:
    """``asyncio.run(main)`` on the chosen loop (``ConfigError`` for a choice that cannot be had)."""
    try:
        loop_factory = factory(environ)
    except errors.ConfigError:
        main.close()  # never awaited: close it, so no "coroutine was never awaited" warning hides the error
        raise
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)
