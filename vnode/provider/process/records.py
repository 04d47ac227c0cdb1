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
from collections.abc import Mapping
from typing import Any

from vnode import procinfo

__all__ = ["alive", "now", "parse_time", "read_json", "retire", "signal_group", "start_time", "write_json"]


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
    (``<state dir>-logs/<instance id>/``); the last run of each instance id is kept."""
    kept = directory.parent.with_name(directory.parent.name + "-logs") / directory.name
    with contextlib.suppress(OSError):
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        for name in ("logs", "state.json", "status.json"):
            if (directory / name).exists():
                shutil.move(str(directory / name), str(kept / name))
    shutil.rmtree(directory, ignore_errors=True)
