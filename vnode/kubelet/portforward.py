"""``kubectl port-forward``: the ``portforward.k8s.io`` protocol on SPDY/3.1, served from a provider's ports.

How a forward reaches a kubelet (Kubernetes 1.37, ``pkg/registry/core/pod/rest/subresources.go``
and ``pkg/kubelet/server/server.go``): kubectl opens a WebSocket to the API server with the
subprotocol ``SPDY/3.1+portforward.k8s.io`` and speaks SPDY/3.1 inside its binary messages. To a
node declaring ``ExtendWebSocketsToKubelet`` the API server forwards that WebSocket unchanged;
to any other node (or when kubectl falls back to SPDY) it sends a plain ``Upgrade: SPDY/3.1``
request. vnode's nodes declare the feature, so the tunnel is what arrives, but both are served
with the same :class:`Forwarder`; only the byte channel under :class:`spdy.Connection` differs.

The protocol on the connection (``pkg/kubelet/cri/streaming/portforward/httpstream.go``): for each
client connection to a local port, kubectl opens two streams with headers ``streamtype``
(``error``, then ``data``), ``port`` and ``requestid``. Once both are there, the kubelet connects
to the port and copies bytes both ways on the data stream; a half-close is passed on as one. If
the port cannot be reached, or the connection to it fails, the kubelet writes a message on the
error stream (kubectl prints it and gives up the whole forward, as with a real kubelet) and
resets the data stream. Either way it then finishes the error stream, which kubectl waits for.
A pair not complete within ``creation_timeout`` (30 s, the kubelet's) gets an error too.

The API server forwards other WebSockets to such nodes unchanged too, so the older channel
protocol (``v4.channel.k8s.io``, or its base64 variant), which some client libraries use, is
served as well (``portforward_channels``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from vnode import errors
from vnode.kubelet import portforward_channels, spdy, spdy_upgrade
from vnode.provider import streams

__all__ = ["PROTOCOL", "TUNNEL_PROTOCOL", "Forwarder", "serve"]

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+" + PROTOCOL
STREAM_CREATION_TIMEOUT = 30.0

OpenPort = Callable[[int], Awaitable[streams.PortStream]]


@dataclasses.dataclass
class _Pair:
    request_id: str
    error: spdy.Stream | None = None
    data: spdy.Stream | None = None
    timer: asyncio.TimerHandle | None = None


class Forwarder:
    """The ``portforward.k8s.io`` streams of one connection: pairs them and runs one forward per pair.

    ``target`` names the pod in error messages (``ns/name, uid ...``); ``open_port`` connects to a
    port of its instance (the provider's ``SupportsPortForward.open_port``).
    """

    def __init__(
        self, open_port: OpenPort, target: str, *, creation_timeout: float = STREAM_CREATION_TIMEOUT, name: str = ""
    ) -> None:
        self.open_port = open_port
        self.target = target
        self.creation_timeout = creation_timeout
        self.name = name
        self._pairs: dict[str, _Pair] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, channel: spdy.Channel) -> None:
        """Run the SPDY connection on ``channel`` until the client leaves; then stop every forward."""
        connection = spdy.Connection(channel, self.on_stream, name=self.name)
        try:
            await connection.run()
        finally:
            for pair in self._pairs.values():
                if pair.timer is not None:
                    pair.timer.cancel()
            self._pairs.clear()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def on_stream(self, stream: spdy.Stream) -> str | None:
        port, kind = stream.header("port"), stream.header("streamtype")
        if not port:
            return 'the "port" header is required'
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            return f"unable to parse {port!r} as a port"
        if kind not in ("error", "data"):
            return f"invalid stream type {kind!r}" if kind else 'the "streamtype" header is required'
        request_id = stream.header("requestid")
        if not request_id:  # clients before requestid: the error stream's id names the pair
            request_id = str(stream.id if kind == "error" else stream.id - 2)
        pair = self._pairs.get(request_id)
        if pair is None:
            pair = self._pairs[request_id] = _Pair(request_id)
            loop = asyncio.get_running_loop()
            pair.timer = loop.call_later(self.creation_timeout, self._expire, pair)
        if getattr(pair, kind) is not None:
            message = f"error processing stream for request {request_id}: {kind} stream already assigned"
            self._spawn(self._complain(pair, message))
            return f"a second {kind} stream for request {request_id}"
        setattr(pair, kind, stream)
        if pair.error is not None and pair.data is not None:
            if pair.timer is not None:
                pair.timer.cancel()
            del self._pairs[request_id]
            self._spawn(self._forward(pair.error, pair.data))
        return None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _expire(self, pair: _Pair) -> None:
        if self._pairs.get(pair.request_id) is pair:
            del self._pairs[pair.request_id]
            self._spawn(self._complain(pair, f"request {pair.request_id}: timed out waiting for streams", end=True))

    async def _complain(self, pair: _Pair, message: str, *, end: bool = False) -> None:
        log.warning("port-forward %s: %s", self.name, message)
        if pair.error is not None:
            with contextlib.suppress(ConnectionResetError):
                await pair.error.write(message.encode())
            if end:
                await pair.error.close()
        if end and pair.data is not None:
            await pair.data.reset()

    async def _forward(self, error: spdy.Stream, data: spdy.Stream) -> None:
        port = int(data.header("port"))
        target: streams.PortStream | None = None
        problem = ""
        try:
            try:
                target = await self.open_port(port)
            except errors.ApiError as exc:
                problem = exc.message
            except Exception as exc:  # a provider's bug must still end both streams and say so
                log.exception("port-forward %s: open_port(%d) failed", self.name, port)
                problem = f"the provider failed: {exc!r}"
            else:
                problem = await _pump(data, target)
            if problem:
                message = f"error forwarding port {port} to pod {self.target}: {problem}"
                log.info("port-forward %s: %s", self.name, message)
                with contextlib.suppress(ConnectionResetError):
                    await error.write(message.encode())
                await data.reset()
        finally:
            if target is not None:
                with contextlib.suppress(Exception):
                    await target.close()
            data.discard()
            await data.close()
            await error.close()


async def _pump(data: spdy.Stream, target: streams.PortStream) -> str:
    """Copy both ways until both are done or the client resets the stream; ``""``, or what failed."""

    async def upstream() -> None:  # client -> instance
        while chunk := await data.read():
            await target.write(chunk)
        if not data.was_reset:
            await target.close_write()

    async def downstream() -> None:  # instance -> client
        while chunk := await target.read():
            await data.write(chunk)
        await data.close()

    up, down = asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())
    reset = asyncio.ensure_future(data.reset_seen.wait())
    problem = ""
    try:
        while not (up.done() and down.done()):
            await asyncio.wait({t for t in (up, down, reset) if not t.done()}, return_when=asyncio.FIRST_COMPLETED)
            if reset.done():
                break  # the client gave up this connection (or left): stop both ways
            failed = [t for t in (up, down) if t.done() and t.exception() is not None]
            if failed:
                exc = failed[0].exception()
                if not isinstance(exc, spdy.StreamReset):
                    problem = f"the connection to the port failed: {exc or type(exc).__name__}"
                break
    finally:
        for task in (up, down, reset):
            task.cancel()
        await asyncio.gather(up, down, reset, return_exceptions=True)
    return problem


# --- the channels under a SPDY connection ---


class _WebSocketChannel:
    """SPDY bytes in WebSocket binary messages (``SPDY/3.1+portforward.k8s.io``), as client-go's
    ``TunnelingConnection``: message boundaries mean nothing, a normal close is the end."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            message = await self.ws.receive()
            if message.type == web.WSMsgType.BINARY:
                if message.data:
                    return cast(bytes, message.data)
                continue
            if message.type == web.WSMsgType.TEXT:
                log.warning("port-forward tunnel: a text message; closing")
            return b""

    async def write(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("the port-forward client went away")
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()


# --- the HTTP side ---


async def serve(request: web.Request, forwarder: Forwarder) -> web.StreamResponse:
    """Upgrade ``request`` (SPDY/3.1, or a WebSocket tunnelling it) and run ``forwarder`` on it."""
    upgrade = request.headers.get("Upgrade", "").strip().lower()
    if upgrade == "websocket":
        offered = spdy_upgrade.values(request, "Sec-WebSocket-Protocol")
        if TUNNEL_PROTOCOL not in offered:
            if offered and not set(offered) & set(portforward_channels.PROTOCOLS):
                supported = [TUNNEL_PROTOCOL, *portforward_channels.PROTOCOLS]
                raise web.HTTPBadRequest(
                    text=f"requested protocol(s) {offered} are not supported; supports {supported}\n"
                )
            ports = portforward_channels.parse_ports(request.query.getall("port", []))
            channels = web.WebSocketResponse(protocols=portforward_channels.PROTOCOLS, max_msg_size=32 * 1024 * 1024)
            await channels.prepare(request)
            log.info("port-forward %s: WebSocket channels, ports %s", forwarder.name, ports)
            await portforward_channels.serve(
                channels, ports, forwarder.open_port, target=forwarder.target, name=forwarder.name
            )
            return channels
        ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=32 * 1024 * 1024, autoping=True)
        await ws.prepare(request)
        log.info("port-forward %s: SPDY/3.1 in a WebSocket", forwarder.name)
        await forwarder.serve(_WebSocketChannel(ws))
        return ws
    channel, response = await spdy_upgrade.upgrade(request, (PROTOCOL,))
    log.info("port-forward %s: SPDY/3.1", forwarder.name)
    await forwarder.serve(channel)
    return response
