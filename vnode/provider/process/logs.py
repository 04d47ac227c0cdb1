"""A process container's log, as ``kubectl logs`` reads it: each line stored with its time
(``<RFC 3339 time> <text>``), read with ``tail``, ``since``, ``limitBytes``, ``timestamps``,
``previous`` and ``follow``."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
from collections.abc import AsyncIterator, Callable

from vnode.provider import base

__all__ = ["stream"]


async def stream(
    path: pathlib.Path, options: base.LogOptions, running: Callable[[], bool], poll_interval: float
) -> AsyncIterator[bytes]:
    """The lines of a container's log file as kubectl asks for them; with ``follow``, what the
    container writes next, until it stopped (``running()`` false) and all it wrote was read."""
    data = await asyncio.to_thread(read_bytes, path)
    offset = len(data)
    first_inode = inode(path)
    lines = [line for line in data.splitlines(keepends=True) if line.endswith(b"\n")]
    offset -= len(data) - sum(len(line) for line in lines)  # an unfinished last line waits for follow
    if options.since is not None:
        lines = [line for line in lines if line_time(line) >= options.since]
    if options.tail_lines is not None:
        lines = lines[-options.tail_lines :] if options.tail_lines > 0 else []
    budget = options.limit_bytes
    for line in lines:
        chunk = render(line, options.timestamps)
        if budget is not None:
            chunk, budget = chunk[:budget], budget - len(chunk)
        if chunk:
            yield chunk
        if budget is not None and budget <= 0:
            return
    if not options.follow or options.previous:
        return
    pending = b""
    stopped = False
    while True:
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                more = handle.read()
        except FileNotFoundError:
            more = b""
        if more:
            offset += len(more)
            pending += more
            *complete, pending = pending.split(b"\n")
            for line in complete:
                chunk = render(line + b"\n", options.timestamps)
                if budget is not None:
                    chunk, budget = chunk[:budget], budget - len(chunk)
                if chunk:
                    yield chunk
                if budget is not None and budget <= 0:
                    return
            continue
        if stopped:
            if pending:  # the container's last words, without a final newline
                chunk = render(pending, options.timestamps)
                yield chunk if budget is None else chunk[:budget]
            return
        if inode(path) != first_inode:
            return
        if not running():
            # What it wrote between the last read and its exit is still to be read: once more.
            stopped = True
            continue
        await asyncio.sleep(poll_interval)


def read_bytes(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def inode(path: pathlib.Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def line_time(line: bytes) -> datetime.datetime:
    stamp = line.split(b" ", 1)[0].decode(errors="replace")
    try:
        return datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)


def render(line: bytes, timestamps: bool) -> bytes:
    """A stored line (``<RFC 3339 time> <text>``) as kubectl shows it."""
    stamp, _, text = line.partition(b" ")
    return stamp + b" " + text if timestamps else text
