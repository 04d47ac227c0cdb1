"""``kubectl exec`` (and so ``kubectl cp``) on the process provider: the command runs on the host.

The command runs as a new process with the container's environment and working directory (as
``spec.json`` records them), stdin, stdout and stderr joined to the client's streams. With a
terminal it gets a pseudo-terminal of its own: stdout and stderr are the one terminal, the
client's resizes set its size (``TIOCSWINSZ``), so ``stty size`` and full-screen programs see
them. No isolation, as with everything the process provider runs: paths are the host's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import struct
import termios
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from vnode import errors
from vnode.provider import streams


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by a signal, as a shell reports it


async def _spawn(command: Sequence[str], container: Mapping[str, Any], **pipes: Any) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *command, env=dict(container["env"]), cwd=container["cwd"], start_new_session=True, **pipes
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise errors.InvalidSpec(f"exec: {command[0]}: {exc.strerror}") from exc


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def run(container: Mapping[str, Any], command: Sequence[str], session: streams.Streams, *, tty: bool) -> int:
    """Run ``command`` in ``container`` (its ``spec.json`` entry) joined to ``session``; its exit code."""
    if not command:
        raise errors.InvalidSpec("exec: no command")
    if tty:
        return await _run_tty(container, command, session)
    stdin = session.stdin
    process = await _spawn(
        command,
        container,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def feed() -> None:
        assert process.stdin is not None
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            if stdin is not None:
                async for chunk in stdin:
                    process.stdin.write(chunk)
                    await process.stdin.drain()
        process.stdin.close()

    async def copy(reader: asyncio.StreamReader | None, write: Callable[[bytes], Awaitable[None]]) -> None:
        assert reader is not None
        while chunk := await reader.read(32 * 1024):
            await write(chunk)

    feeder = asyncio.create_task(feed()) if stdin is not None else None
    try:
        await asyncio.gather(copy(process.stdout, session.write_stdout), copy(process.stderr, session.write_stderr))
        return _exit_code(await process.wait())
    finally:
        if feeder is not None:
            feeder.cancel()
        await _stop(process)


def _set_size(fd: int, size: streams.TerminalSize) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


async def _run_tty(container: Mapping[str, Any], command: Sequence[str], session: streams.Streams) -> int:
    master, slave = pty.openpty()
    try:
        process = await _spawn(command, container, stdin=slave, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 32 * 1024)
        except OSError:  # EIO: every holder of the terminal's other side is gone
            data = b""
        if not data:
            loop.remove_reader(master)
        output.put_nowait(data)

    async def feed() -> None:
        if session.stdin is not None:
            async for chunk in session.stdin:
                with contextlib.suppress(OSError):
                    os.write(master, chunk)

    async def resize() -> None:
        if session.resizes is not None:
            async for size in session.resizes:
                with contextlib.suppress(OSError):
                    _set_size(master, size)

    loop.add_reader(master, readable)
    helpers = [asyncio.create_task(feed()), asyncio.create_task(resize())]
    try:
        while data := await output.get():
            await session.write_stdout(data)
        return _exit_code(await process.wait())
    finally:
        loop.remove_reader(master)
        for task in helpers:
            task.cancel()
        await _stop(process)
        os.close(master)
