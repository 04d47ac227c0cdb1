"""Start, find and stop the local world's background processes, and never touch anyone else's.

The control plane, the simulated cloud, the webhook and the playground's daemons are all
long-running children. Each is recorded in a JSON file by pid *and* kernel start time
(``vnode/procinfo.py``), so a later command (``down`` from another shell, ``up`` after a
crash) can tell its own live processes from stale records and from strangers that reused a pid.

Two ways to own a process: detached (its own session; it outlives the command that started
it) or attached (also ``PR_SET_PDEATHSIG``: it dies with the process that started it, even
on SIGKILL; the test suite uses this).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from typing import Any

from vnode import procinfo


def die_with_parent() -> None:
    """For ``preexec_fn``: ask the kernel to SIGKILL this child when its parent dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _reap(pid: int) -> bool:
    """True once ``pid`` is gone (reaping it if it is our child)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    return procinfo.start_time(pid) is None


class Supervisor:
    """The processes recorded under ``record_path['processes']``; other keys of the record are the caller's."""

    def __init__(self, record_path: pathlib.Path, log_dir: pathlib.Path, *, attach: bool = False) -> None:
        self.record_path = record_path
        self.log_dir = log_dir
        self.attach = attach
        # Our own children, kept so that they are reaped (not left as zombies) once they stop.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        #: The names ``stop`` had to SIGKILL (they outlived their SIGTERM by its ``timeout``), all calls together.
        self.killed: list[str] = []

    def read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def write(self, record: Mapping[str, Any]) -> None:
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(self.record_path)

    def live(self, record: Mapping[str, Any] | None = None) -> dict[str, int]:
        """The recorded processes that are still the very processes that were started."""
        record = self.read() if record is None else record
        return {
            name: proc["pid"]
            for name, proc in record.get("processes", {}).items()
            if procinfo.start_time(proc["pid"]) == proc["start_time"]
        }

    def spawn(
        self,
        name: str,
        cmd: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: pathlib.Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` with its output in ``<log_dir>/<name>.log`` and record it before returning."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if self.attach else None,  # prctl only: safe between fork and exec
                close_fds=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        self._children[proc.pid] = proc
        started = None
        deadline = time.monotonic() + 5
        while started is None and time.monotonic() < deadline:
            started = procinfo.start_time(proc.pid)
        record = self.read()
        record.setdefault("processes", {})[name] = {"pid": proc.pid, "start_time": started, "cmd": cmd[0]}
        self.write(record)
        return proc

    def stop(self, names: Iterable[str] | None = None, *, timeout: float = 15.0) -> list[str]:
        """SIGTERM the live recorded processes (all, or ``names`` in that order), SIGKILL after ``timeout``.

        Returns the names that were running. Their records are removed.
        """
        record = self.read()
        live = self.live(record)
        order = [name for name in (names if names is not None else live) if name in live]
        for name in order:
            with contextlib.suppress(ProcessLookupError):
                os.kill(live[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        pending = {live[name] for name in order}
        while pending and time.monotonic() < deadline:
            pending = {pid for pid in pending if not _reap(pid)}
            time.sleep(0.05)
        self.killed += [name for name in order if live[name] in pending]
        for pid in pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pending:
            end = time.monotonic() + 5
            while not _reap(pid) and time.monotonic() < end:
                time.sleep(0.05)
        for name in order:
            if child := self._children.pop(live[name], None):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=1)
        for pid, child in list(self._children.items()):
            if child.poll() is not None:  # died on its own (a crash, kill -9): reap it too
                del self._children[pid]
        if record:
            processes = record.get("processes", {})
            for name in order:
                processes.pop(name, None)
            self.write(record)
        return order
