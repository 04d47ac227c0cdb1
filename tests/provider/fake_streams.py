"""A client's side of an exec session, for the providers' interactive exec tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from vnode import models
from vnode.provider import base, streams

if TYPE_CHECKING:
    from tests.cloudsim.conftest import Sim


class FakeStreams:
    """A client session: ``chunks`` typed after ``sizes`` were sent; what came back in ``out``."""

    def __init__(
        self, chunks: Sequence[bytes], sizes: Sequence[streams.TerminalSize] = (), *, stdin: bool = True
    ) -> None:
        self.chunks, self.sizes, self.has_stdin = list(chunks), list(sizes), stdin
        self.out = bytearray()
        self.err = bytearray()
        self._sized = asyncio.Event()
        if not self.sizes:
            self._sized.set()

    @property
    def stdin(self) -> AsyncIterator[bytes] | None:
        return self._stdin() if self.has_stdin else None

    @property
    def resizes(self) -> AsyncIterator[streams.TerminalSize] | None:
        return self._resizes() if self.sizes else None

    async def _stdin(self) -> AsyncIterator[bytes]:
        await self._sized.wait()
        for chunk in self.chunks:
            yield chunk

    async def _resizes(self) -> AsyncIterator[streams.TerminalSize]:
        try:
            for size in self.sizes:
                yield size
        finally:
            self._sized.set()  # the sizes went out (or the reader wanted no more) before any typing

    async def write_stdout(self, data: bytes) -> None:
        self.out += data

    async def write_stderr(self, data: bytes) -> None:
        self.err += data


async def started(sim: Sim, provider: base.Provider, spec: models.InstanceSpec) -> str:
    """Create an instance and move the simulator's clock until it runs; its id."""
    made = await provider.create(spec)
    sim.advance(5)
    return made.id
