"""Starting a runner leaves no file descriptor open in the daemon, on either event loop."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from vnode.provider.process import spawn


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def run_on_asyncio(main: Coroutine[Any, Any, None]) -> None:
    asyncio.run(main)


LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {"asyncio": run_on_asyncio, "uvloop": uvloop.run}


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_starting_a_runner_keeps_no_descriptor_open_while_it_runs(loop: str, tmp_path: pathlib.Path) -> None:
    # The runner stands in for `python -m vnode.provider.process`: it runs on until killed. On uvloop
    # the runner used to inherit the pipe its pid came back on: one descriptor held per instance.
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexec sleep 60\n")
    python.chmod(0o755)
    started: dict[str, Any] = {}

    async def main() -> None:
        before = open_fds()
        started.update(await spawn.runner(tmp_path, python=str(python), path=os.environ["PATH"]))
        leaked = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in open_fds() - before}
        assert leaked == {}

    try:
        LOOPS[loop](main())
    finally:
        if "pid" in started:
            os.kill(started["pid"], signal.SIGKILL)
    assert started["start_time"] is not None
