"""Port-forward over the WebSocket channel protocol (``v4.channel.k8s.io`` and its base64 variant).

The API server forwards WebSockets to nodes declaring ``ExtendWebSocketsToKubelet`` unchanged,
so this older protocol (``pkg/kubelet/cri/streaming/portforward/websocket.go``), which some client
libraries use instead of kubectl's SPDY, reaches vnode too. The ports come in the ``port`` query,
and there is one forward per port for the life of the WebSocket: channel ``2i`` carries port
``i``'s bytes both ways, channel ``2i+1`` its error; each channel first says its port (2 bytes,
little-endian). v4 has no half-close: a forward ends when the instance closes its side (the
WebSocket closes once every forward has ended) or when the client closes the WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from vnode import errors
from vnode.provider import streams

__all__ = ["PROTOCOLS", "parse_ports", "serve"]

log = logging.getLogger(__name__)

PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")

#: A provider's ``open_port`` for one instance (``streams.SupportsPortForward``).
_OpenPort = Callable[[int], Awaitable[streams.PortStream]]


def parse_ports(values: Sequence[str]) -> list[int]:
    """The ``port`` query of a channel-protocol request (repeated and/or comma-separated), as the kubelet reads it."""
    if not values:
        raise web.HTTPBadRequest(text='query parameter "port" is required\n')
    ports = []
    for raw in values:
        if not raw:
            raise web.HTTPBadRequest(text='query parameter "port" cannot be empty\n')
        for item in raw.split(","):
            if not (item.isascii() and item.isdigit()) or not 0 < int(item) < 65536:
                raise web.HTTPBadRequest(text=f"unable to parse {raw!r} as a port\n")
            ports.append(int(item))
    return ports


async def serve(
    ws: web.WebSocketResponse,
    ports: Sequence[int],
    open_port: _OpenPort,
    *,
    target: str,
    name: str,
) -> None:
    """Forward ``ports`` over the prepared WebSocket ``ws`` until every forward ends or the client
    leaves; then close it. ``target`` names the pod in error messages, ``name`` the forward in logs."""
    await _Session(ws, ports, open_port, target=target, name=name).run()


class _Session:
    """One WebSocket's forwards: the client's bytes queued per port, and one lock for sending."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        ports: Sequence[int],
        open_port: _OpenPort,
        *,
        target: str,
        name: str,
    ) -> None:
        self.ws = ws
        self.ports = ports
        self.open_port = open_port
        self.target = target
        self.name = name
        self.text = ws.ws_protocol == PROTOCOLS[1]
        self._lock = asyncio.Lock()
        self._inputs: list[asyncio.Queue[bytes]] = [asyncio.Queue(maxsize=16) for _ in ports]  # full: stop reading

    async def run(self) -> None:
        for index, port in enumerate(self.ports):
            for channel in (2 * index, 2 * index + 1):
                await self.send(channel, port.to_bytes(2, "little"))
        reader = asyncio.ensure_future(self._read())
        forwards = asyncio.ensure_future(asyncio.gather(*(self._forward(i, p) for i, p in enumerate(self.ports))))
        either: set[asyncio.Future[Any]] = {reader, forwards}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, forwards):
                task.cancel()
            await asyncio.gather(reader, forwards, return_exceptions=True)
            await self.ws.close()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._lock:
            if self.text:
                await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
            else:
                await self.ws.send_bytes(bytes([channel]) + data)

    async def _forward(self, index: int, port: int) -> None:
        target: streams.PortStream | None = None
        try:
            target = await self.open_port(port)
            await self._copy(index, target)
        except Exception as exc:
            if self.ws.closed:
                return  # the client left: nobody to tell
            message = f"error forwarding port {port} to pod {self.target}: {self._problem(exc, port)}"
            log.info("port-forward %s: %s", self.name, message)
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await self.send(2 * index + 1, message.encode())
        finally:
            if target is not None:
                with contextlib.suppress(Exception):
                    await target.close()

    async def _copy(self, index: int, target: streams.PortStream) -> None:
        """Copy both ways until the instance closes its side (or a copy fails)."""

        async def upstream() -> None:  # until the WebSocket closes: v4 has no half-close
            while True:
                await target.write(await self._inputs[index].get())

        up = asyncio.ensure_future(upstream())
        try:
            while chunk := await target.read():
                await self.send(2 * index, chunk)
        finally:
            up.cancel()
            await asyncio.gather(up, return_exceptions=True)

    def _problem(self, exc: Exception, port: int) -> str:
        """What the error channel says about ``exc`` (called while handling it)."""
        if isinstance(exc, errors.ApiError):
            return exc.message
        if isinstance(exc, OSError):
            return f"the connection to the port failed: {exc}"
        # a provider's bug: still say so on the error channel
        log.exception("port-forward %s: port %d failed", self.name, port)
        return f"the provider failed: {exc!r}"

    async def _read(self) -> None:
        """The client's messages, to the ports' queues."""
        async for message in self.ws:
            raw = self._decode(message)
            if raw is None:
                continue
            channel = raw[0] if raw else 1
            if channel % 2 == 0 and channel // 2 < len(self.ports) and len(raw) > 1:
                await self._inputs[channel // 2].put(raw[1:])

    def _decode(self, message: aiohttp.WSMessage) -> bytes | None:
        """A message's channel byte and data; ``None`` for one to drop."""
        if message.type == web.WSMsgType.BINARY:
            raw: bytes = message.data
            return raw
        if message.type == web.WSMsgType.TEXT and self.text and message.data:
            try:
                return bytes([ord(message.data[0]) - ord("0")]) + base64.b64decode(message.data[1:])
            except (ValueError, TypeError):
                return None  # a malformed message is dropped, as wsstream does
        return None
