"""What the kernel says about a process: its start time, which tells a live process from a reused pid.

A pid alone is not an identity: once a process ends, the kernel may give its pid to a
stranger. A pid together with the start time read here (clock ticks since boot, field 22 of
``/proc/<pid>/stat``) is. A leaf module: it imports nothing of vnode.
"""

from __future__ import annotations

import pathlib


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot); None if it is gone or a zombie."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    if fields[0] == "Z":
        return None
    return int(fields[19])
