"""Test providers for the kubelet API: "containers" are local processes and in-memory logs.

``LocalProvider`` has every ability: logs with runs (for ``--previous``), streaming exec that
runs argv as a local process (so ``sh -c 'echo "a b"'`` behaves as in a container), attach,
and stats. It records every exec's argv and every terminal resize. ``ExecOnlyProvider`` has
only the request/response ``SupportsExec``, to check the fallback and the 501 answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Mapping, Sequence

from vnode import errors, models
from vnode.provider import base, streams


def _stamp(moment: datetime.datetime) -> bytes:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z").encode()


class _Core:
    """The five core coroutines; the kubelet API never calls them."""

    name = "local-test"
    container_id_scheme = "local"

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        raise errors.InvalidSpec("the test provider creates nothing")

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        return None

    async def get(self, instance_id: str) -> models.InstanceState:
        raise errors.NotFound(instance_id)

    async def list(self, tags: Mapping[str, str]) -> Sequence[models.InstanceState]:
        return []

    async def changes(self, tags: Mapping[str, str], cursor: base.Cursor | None) -> base.Changes:
        return base.Changes.listing([])

    async def quota(self) -> models.Quota:
        return models.Quota()

    async def close(self) -> None:
        return None


@dataclasses.dataclass
class Usage:
    cpu_nanocores: float = 250_000_000.0  # a quarter of a core
    memory_working_set_bytes: float = 64 * 1024 * 1024


class LocalProvider(_Core):
    def __init__(self) -> None:
        # (instance, container) -> runs, oldest first; each run is a list of (time, line).
        self.runs: dict[tuple[str, str], list[list[tuple[datetime.datetime, bytes]]]] = {}
        self.usage: dict[str, Usage] = {}
        self.stats_calls: list[list[str]] = []  # the instance ids of each stats call
        self.started = datetime.datetime.now(datetime.UTC)
        self.argv: list[list[str]] = []
        self.resizes: list[streams.TerminalSize] = []
        self.following = 0  # log streams open right now
        self._changed = asyncio.Condition()

    # -- logs (call from the server's loop) --------------------------------------------------

    async def append(self, instance_id: str, container: str, line: str, *, at: datetime.datetime | None = None) -> None:
        runs = self.runs.setdefault((instance_id, container), [[]])
        runs[-1].append((at or datetime.datetime.now(datetime.UTC), line.encode() + b"\n"))
        async with self._changed:
            self._changed.notify_all()

    async def restart(self, instance_id: str, container: str) -> None:
        self.runs.setdefault((instance_id, container), []).append([])

    async def logs(self, instance_id: str, container: str, options: base.LogOptions) -> AsyncIterator[bytes]:
        runs = self.runs.get((instance_id, container))
        if runs is None:
            raise errors.NotFound(f"container {container} of {instance_id} is unknown")
        if options.previous:
            if len(runs) < 2:
                raise errors.InvalidSpec(f'previous terminated container "{container}" not found')
            run = runs[-2]
        else:
            run = runs[-1]

        def render(entries: list[tuple[datetime.datetime, bytes]]) -> bytes:
            if options.since is not None:
                entries = [e for e in entries if e[0] >= options.since]
            return b"".join((_stamp(t) + b" " + line) if options.timestamps else line for t, line in entries)

        entries = list(run)
        if options.tail_lines is not None:
            entries = entries[len(entries) - options.tail_lines :] if options.tail_lines else []
        if entries:  # like ECI's provider: nothing at all for an empty log, not an empty chunk
            yield render(entries)
        seen = len(run)
        self.following += 1
        try:
            while options.follow and not options.previous:
                async with self._changed:
                    await self._changed.wait_for(lambda seen=seen: len(run) > seen)  # type: ignore[misc]
                fresh, seen = run[seen:], len(run)
                yield render(fresh)
        finally:
            self.following -= 1

    # -- exec and attach ---------------------------------------------------------------------

    async def exec_stream(
        self, instance_id: str, container: str, command: Sequence[str], session: streams.Streams, *, tty: bool
    ) -> int:
        self.argv.append(list(command))
        stdin = session.stdin
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

        async def feed() -> None:
            assert process.stdin is not None
            if stdin is not None:
                async for chunk in stdin:
                    process.stdin.write(chunk)
                    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                        await process.stdin.drain()
            process.stdin.close()

        async def copy(reader: asyncio.StreamReader | None, write: object) -> None:
            assert reader is not None
            while chunk := await reader.read(4096):
                await write(chunk)  # type: ignore[operator]

        async def watch_resizes() -> None:
            if session.resizes is not None:
                async for size in session.resizes:
                    self.resizes.append(size)

        helpers = [asyncio.create_task(watch_resizes())]
        if stdin is not None:
            helpers.append(asyncio.create_task(feed()))
        try:
            await asyncio.gather(copy(process.stdout, session.write_stdout), copy(process.stderr, session.write_stderr))
            return await process.wait()
        finally:
            for task in helpers:
                task.cancel()
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def attach(self, instance_id: str, container: str, session: streams.Streams, *, tty: bool) -> int | None:
        await session.write_stdout(b"attached to " + container.encode() + b"\n")
        if session.stdin is not None:
            async for chunk in session.stdin:
                await session.write_stdout(chunk.upper())
        return None

    # -- stats -------------------------------------------------------------------------------

    async def stats(self, instance_ids: Sequence[str]) -> Mapping[str, Mapping[str, Mapping[str, float]]]:
        self.stats_calls.append(list(instance_ids))
        elapsed = (datetime.datetime.now(datetime.UTC) - self.started).total_seconds()
        answer = {}
        for instance_id in instance_ids:
            usage = self.usage.get(instance_id, Usage())
            answer[instance_id] = {
                "app": {
                    "cpu_nanocores": usage.cpu_nanocores,
                    "cpu_usage_core_nanoseconds": usage.cpu_nanocores * elapsed,
                    "memory_working_set_bytes": usage.memory_working_set_bytes,
                }
            }
        return answer


@dataclasses.dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: bytes
    stderr: bytes


class ExecOnlyProvider(_Core):
    """Only ``base.SupportsExec``: what a cloud with a one-shot exec call offers."""

    name = "exec-only"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bytes]] = []

    async def exec(
        self, instance_id: str, container: str, command: Sequence[str], *, stdin: bytes = b"", tty: bool = False
    ) -> Result:
        self.calls.append((list(command), stdin))
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate(stdin)
        return Result(process.returncode or 0, out, err)
