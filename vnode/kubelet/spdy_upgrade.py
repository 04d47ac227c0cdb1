"""The HTTP side of SPDY/3.1: an ``Upgrade: SPDY/3.1`` request turned into the connection's bytes.

The API server sends a kubelet ``Upgrade: SPDY/3.1`` with the protocols its client offers in
``X-Stream-Protocol-Version`` (``portforward.k8s.io``; ``v5.channel.k8s.io`` ... for exec and
attach, the client's preference first). The kubelet answers 101 naming the one it chose, or 403
with ``X-Accepted-Stream-Protocol-Versions`` when it accepts none of them (``k8s.io/streaming/
pkg/httpstream/spdy/upgrade.go`` and ``httpstream.Handshake``). After the 101 every byte of the
connection belongs to the SPDY connection (:class:`SocketChannel`).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, cast

from aiohttp import web

__all__ = ["SocketChannel", "upgrade", "values"]


def values(request: web.Request, name: str) -> list[str]:
    """A header's comma-separated values, over all its lines."""
    return [v.strip() for raw in request.headers.getall(name, []) for v in raw.split(",") if v.strip()]


async def upgrade(request: web.Request, accepted: Sequence[str]) -> tuple[SocketChannel, web.StreamResponse]:
    """Answer 101 with the first protocol the client offers that is ``accepted`` (its name is the
    response's ``X-Stream-Protocol-Version``, and ``channel.protocol``); the connection's channel."""
    offered = values(request, "X-Stream-Protocol-Version")
    if not offered:
        raise web.HTTPBadRequest(text="unable to upgrade: header X-Stream-Protocol-Version does not exist in request\n")
    chosen = next((p for p in offered if p in accepted), None)
    if chosen is None:
        raise web.HTTPForbidden(
            text=(
                f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                f"server accepts {list(accepted)}\n"
            ),
            headers={"X-Accepted-Stream-Protocol-Versions": ", ".join(accepted)},
        )
    connection_tokens = [v.lower() for v in values(request, "Connection")]
    if "upgrade" not in connection_tokens or "spdy/3.1" not in request.headers.get("Upgrade", "").strip().lower():
        raise web.HTTPBadRequest(text="unable to upgrade: missing upgrade headers in request\n")
    response = _Upgraded(
        status=101, headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": chosen}
    )
    response.force_close()
    # From here on aiohttp gives every byte of the connection to the channel (as to a WebSocket's
    # reader): set before the 101 leaves, so that no early frame reaches aiohttp's HTTP parser.
    channel = SocketChannel(request, chosen)
    cast(Any, request.protocol).set_parser(channel)
    channel.writer = await response.prepare(request)
    return channel, response


class _Upgraded(web.StreamResponse):
    """A 101 whose connection now belongs to the handler: aiohttp must write nothing more on it."""

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class SocketChannel:
    """The request's own TLS connection after a 101. aiohttp's parser knows only WebSocket
    upgrades, so this object takes its place (``set_parser``) and gets every later byte; reading
    pauses while more than ``LIMIT`` bytes wait for the SPDY connection."""

    LIMIT = 1 << 20

    def __init__(self, request: web.Request, protocol: str) -> None:
        self.protocol = protocol  # the one the 101 named
        self._transport = request.transport
        self.writer: Any = None  # the response's payload writer, for drain()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._arrived = asyncio.Event()

    # the parser's side, called by aiohttp's protocol
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)
            self._arrived.set()
            if self._size > self.LIMIT and not self._paused and self._transport is not None:
                self._paused = True
                self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._arrived.set()

    # spdy.Channel
    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            self._arrived.clear()
            await self._arrived.wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size < self.LIMIT // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    async def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the SPDY client went away")
        transport.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
