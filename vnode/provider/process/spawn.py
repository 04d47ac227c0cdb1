"""Starting an instance's runner: detached from the daemon, so that it outlives a daemon restart."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import time
from typing import Any

from vnode import errors
from vnode.provider.process import records, workspace

__all__ = ["runner"]


async def runner(directory: pathlib.Path, *, python: str, path: str) -> dict[str, Any]:
    """Start the runner detached (its own session, re-parented away from us) and record it."""
    # `sh -c '... &'` forks it away from this process, so it is never our child (no zombie,
    # no Popen left running when the daemon stops) and it outlives a daemon restart.
    script = 'setsid "$@" </dev/null >>"$LOG" 2>&1 & echo $!'
    env = {"PATH": path, "LOG": str(directory / "runner.log"), "PYTHONPATH": workspace.pythonpath()}
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        script,
        "sh",
        python,
        "-m",
        "vnode.provider.process",
        str(directory),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    # One line, not communicate(): on uvloop the runner inherits the pipe, whose EOF comes when it exits.
    assert proc.stdout is not None
    out = await proc.stdout.readline()
    await proc.wait()
    try:
        pid = int(out.strip())
    except ValueError as exc:
        raise errors.Unavailable(f"process provider: could not start the runner: {out!r}") from exc
    started = records.start_time(pid)
    deadline = time.monotonic() + 5
    while started is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        started = records.start_time(pid)
    return {"pid": pid, "start_time": started}
