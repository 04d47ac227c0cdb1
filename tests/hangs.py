"""What a hung test was waiting for: the stacks of the event loop's tasks, printed before pytest-timeout ends it.

A test stuck on an ``await`` shows nothing useful in pytest-timeout's thread dump (the main thread
sits in the selector). Here ``SIGUSR1`` prints every task of the running loop with its stack to
stderr, and a watchdog sends it once a test has run ``DUMP_BEFORE`` seconds short of the timeout.
By hand: ``kill -USR1 <pytest pid>``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import types

DUMP_BEFORE = 60.0  # seconds before pytest-timeout's end


def dump_tasks(signum: int = 0, frame: types.FrameType | None = None) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        print("hangs: no event loop is running in the main thread", file=sys.stderr)
        return
    tasks = asyncio.all_tasks(loop)
    print(f"hangs: {len(tasks)} tasks of the running loop", file=sys.stderr)
    for task in tasks:
        task.print_stack(limit=12, file=sys.stderr)
    sys.stderr.flush()


def install() -> None:
    signal.signal(signal.SIGUSR1, dump_tasks)


def watchdog(timeout: float) -> threading.Timer | None:
    """A timer that dumps the tasks ``DUMP_BEFORE`` seconds before ``timeout``; the caller cancels it."""
    if timeout <= DUMP_BEFORE:
        return None
    timer = threading.Timer(timeout - DUMP_BEFORE, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.daemon = True
    timer.start()
    return timer
