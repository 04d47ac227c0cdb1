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
    # Its pid comes back through a file, not a pipe: a pipe's transport outlives `wait()` until its
    # EOF is read, and one still open when the event loop closes is a leaked file descriptor.
    pid_file = directory / "runner.pid"
    script = 'setsid "$@" </dev/null >>"$LOG" 2>&1 & echo $! >"$PID_FILE"'
    env = {
        "PATH": path,
        "LOG": str(directory / "runner.log"),
        "PID_FILE": str(pid_file),
        "PYTHONPATH": workspace.pythonpath(),
    }
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        script,
        "sh",
        python,
        "-m",
        "vnode.provider.process",
        str(directory),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    await proc.wait()
    out = pid_file.read_text() if pid_file.exists() else ""
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
