"""Bookkeeping shared by the process provider and its runner: processes by pid *and* kernel start
time (``vnode/procinfo.py``, so a stranger that reused a pid is never signalled), and
the instance's JSON files written atomically. Standard library and leaf modules only: the runner starts fast.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
import shutil
import signal
from collections.abc import Callable, Mapping
from typing import Any

from vnode import procinfo

__all__ = [
    "alive",
    "container_records",
    "kill_containers",
    "kill_strays",
    "now",
    "parse_time",
    "read_json",
    "retire",
    "signal_group",
    "start_time",
    "strays",
    "write_json",
]

POD_ROOT_ENV = b"VNODE_POD_ROOT="  # every container process (and what it starts) carries it
RUNNER_MODULE = b"vnode.provider.process"


start_time = procinfo.start_time


def alive(record: Mapping[str, Any] | None) -> bool:
    return bool(record) and record is not None and start_time(int(record["pid"])) == record.get("start_time")


def signal_group(record: Mapping[str, Any] | None, sig: int) -> None:
    """Signal the process group led by the recorded process, if it is still that process."""
    if record and alive(record):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(record["pid"]), sig)


def read_json(path: pathlib.Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def write_json(path: pathlib.Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def parse_time(value: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(value) if value else None


def retire(directory: pathlib.Path) -> None:
    """Remove a deleted instance, keeping its logs and state beside the state directory for debugging
    (``<state dir>-logs/<instance id>/``): its containers' logs, its state and status, and what its
    runner said (why a container was not restarted); the last run of each instance id is kept."""
    kept = directory.parent.with_name(directory.parent.name + "-logs") / directory.name
    with contextlib.suppress(OSError):
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        for name in ("logs", "state.json", "status.json", "runner.log"):
            if (directory / name).exists():
                shutil.move(str(directory / name), str(kept / name))
    shutil.rmtree(directory, ignore_errors=True)


def _belongs(pid: int, prefix: bytes) -> bytes | None:
    """The path under ``prefix`` that ``pid`` belongs to, if any: a runner names its instance directory
    in its command line, and a container (and what it starts) names its pod root in its environment.
    The marks a process keeps even when no record of it survived."""
    try:
        argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    if RUNNER_MODULE in argv:
        for arg in argv:
            if arg == prefix or arg.startswith(prefix + b"/"):
                return arg
    for variable in environ:
        if variable == POD_ROOT_ENV + prefix or variable.startswith(POD_ROOT_ENV + prefix + b"/"):
            return variable[len(POD_ROOT_ENV) :]
    return None


def strays(prefix: pathlib.Path) -> list[dict[str, Any]]:
    """Every live process that belongs to an instance under ``prefix`` (a state dir or one instance's
    directory), found by scanning ``/proc``: records with pid, start time and ``path`` (the instance
    directory or pod root it names). The reaper's eyes: a container whose runner died before it, or
    that its runner never got to record, is still found."""
    own, prefix_bytes = os.getpid(), os.fsencode(str(prefix)).rstrip(b"/")
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        pid = int(entry.name)
        path = _belongs(pid, prefix_bytes)
        started = start_time(pid) if path is not None else None
        if path is not None and started is not None:
            found.append({"pid": pid, "start_time": started, "path": pathlib.Path(os.fsdecode(path))})
    return found


def kill_strays(prefix: pathlib.Path, *, keep: Callable[[pathlib.Path], bool] = lambda path: False) -> list[int]:
    """SIGKILL every process :func:`strays` finds under ``prefix`` but those whose path ``keep`` accepts;
    returns their pids."""
    killed = []
    for record in strays(prefix):
        if keep(record["path"]) or not alive(record):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(record["pid"], signal.SIGKILL)
            killed.append(record["pid"])
    return killed


def container_records(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The process records of an instance's containers (init containers first) in its status.json."""
    return [
        e["process"] for e in (*status.get("init_containers", []), *status.get("containers", [])) if e.get("process")
    ]


def kill_containers(status: Mapping[str, Any]) -> None:
    """SIGKILL every container process group an instance's status.json records."""
    for record in container_records(status):
        signal_group(record, signal.SIGKILL)
