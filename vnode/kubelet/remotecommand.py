"""The WebSocket remote-command protocol of exec and attach (``v5.channel.k8s.io``, ``v4.channel.k8s.io``).

Since Kubernetes 1.36 the API server forwards a client's exec/attach WebSocket unchanged to a
kubelet whose node declares ``ExtendWebSocketsToKubelet``; a SPDY client (or an older control
plane) reaches ``remotecommand_spdy`` instead. It follows ``k8s.io/streaming/pkg/httpstream/wsstream`` and the API
server's own WebSocket end (``apiserver/pkg/util/proxy/websocket.go``) of 1.37:

* every binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error
  (one ``metav1.Status`` JSON when the command ends), 4 resize (``{"Width":..,"Height":..}``);
* v5 adds ``[255, channel]`` from the client: that channel is closed (stdin EOF);
* right after the handshake the server sends an empty message on the lowest channel it will
  write (stdout, else stderr, else error), which tells the client the session is up;
* a non-zero exit is ``Status{status: Failure, reason: NonZeroExitCode, details.causes:
  [{reason: ExitCode, message: "<code>"}]}``; success is ``Status{status: Success}``; then the
  server closes the WebSocket normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from vnode.provider import streams

__all__ = ["PROTOCOLS", "Options", "Session", "exit_status", "failure_status"]

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255
_CHUNK = 32 * 1024  # one frame at most; client-go reads whole messages into memory


def _flag(query: Mapping[str, str], *names: str) -> bool:
    return any(query.get(name, "").lower() in ("1", "true") for name in names)


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Which streams the client asked for (query ``input``/``output``/``error``/``tty``, as the
    API server sends them; ``stdin``/``stdout``/``stderr`` are accepted too)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Options:
        tty = _flag(query, "tty")
        return cls(
            stdin=_flag(query, "input", "stdin"),
            stdout=_flag(query, "output", "stdout"),
            stderr=_flag(query, "error", "stderr") and not tty,  # a terminal has one output stream
            tty=tty,
        )


def exit_status(code: int) -> dict[str, Any]:
    """The Status the client turns into its own exit code."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    if code < 0:  # killed by a signal, as a shell reports it
        code = 128 - code
    code %= 256
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def failure_status(message: str, *, reason: str = "InternalError", code: int = 500) -> dict[str, Any]:
    """A failure that is not the command's exit code (the client prints ``message``)."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


async def _drain(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    while (item := await queue.get()) is not None:
        yield item


class Session:
    """One exec/attach WebSocket, offered to a provider as :class:`vnode.provider.streams.Streams`."""

    def __init__(self, ws: web.WebSocketResponse, options: Options) -> None:
        self.ws = ws
        self.options = options
        self.v5 = ws.ws_protocol == PROTOCOLS[0]
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._resizes: asyncio.Queue[streams.TerminalSize | None] = asyncio.Queue()
        self._stdin_closed = False
        self._send_lock = asyncio.Lock()

    @property
    def stdin(self) -> AsyncIterator[bytes] | None:
        return _drain(self._stdin) if self.options.stdin else None

    @property
    def resizes(self) -> AsyncIterator[streams.TerminalSize] | None:
        return _drain(self._resizes) if self.options.tty else None

    async def read_stdin(self) -> bytes:
        """All of stdin, up to the client's EOF (for providers without live streams)."""
        if not self.options.stdin:
            return b""
        chunks = []
        while (chunk := await self._stdin.get()) is not None:
            chunks.append(chunk)
        return b"".join(chunks)

    async def write_stdout(self, data: bytes) -> None:
        if self.options.stdout:
            await self._send(STDOUT, data)

    async def write_stderr(self, data: bytes) -> None:
        if self.options.stderr:
            await self._send(STDERR, data)
        elif self.options.tty:
            await self.write_stdout(data)

    async def _send(self, channel: int, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("the exec client went away")
        async with self._send_lock:
            for start in range(0, max(len(data), 1), _CHUNK):
                await self.ws.send_bytes(bytes([channel]) + data[start : start + _CHUNK])

    async def start(self) -> None:
        """Tell the client the session is up: an empty message on the lowest channel we write."""
        channel = STDOUT if self.options.stdout else STDERR if self.options.stderr else ERROR
        await self._send(channel, b"")

    async def finish(self, status: Mapping[str, Any]) -> None:
        """Send the final Status on the error channel and close the WebSocket normally."""
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientError, RuntimeError):
            await self._send(ERROR, json.dumps(status).encode())
        await self.ws.close()

    def _close_stdin(self) -> None:
        if not self._stdin_closed:
            self._stdin_closed = True
            self._stdin.put_nowait(None)

    async def pump(self) -> None:
        """Read the client's frames until it closes the WebSocket; then stdin and resizes end."""
        decoder = json.JSONDecoder()
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.BINARY or not message.data:
                    continue
                data: bytes = message.data
                if self.v5 and data[0] == CLOSE:
                    if len(data) == 2 and data[1] == STDIN:
                        self._close_stdin()
                    continue
                channel, payload = data[0], data[1:]
                if channel == STDIN and self.options.stdin and not self._stdin_closed and payload:
                    self._stdin.put_nowait(payload)
                elif channel == RESIZE and self.options.tty:
                    text, at = payload.decode(errors="replace"), 0
                    while at < len(text):
                        try:
                            size, at = decoder.raw_decode(text, at)
                            self._resizes.put_nowait(streams.TerminalSize(int(size["Width"]), int(size["Height"])))
                        except (ValueError, KeyError, TypeError):
                            break  # a malformed resize is dropped, as the kubelet does
                        while at < len(text) and text[at].isspace():
                            at += 1
        finally:
            self._close_stdin()
            self._resizes.put_nowait(None)
