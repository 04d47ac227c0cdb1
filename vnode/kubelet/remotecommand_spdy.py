"""exec and attach over SPDY/3.1, as client-go's SPDY executor speaks them (kubectl before 1.30, and
after it with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``; many tools built on client-go).

The API server upgrades the request to SPDY/3.1 and the client opens one stream per channel, each
named by its ``streamtype`` header: ``error``, ``stdin``, ``stdout``, ``stderr`` and, with a
terminal, ``resize`` (``k8s.io/streaming/pkg/httpstream/remotecommand``, kubelet side
``pkg/kubelet/cri/streaming/remotecommand/httpstream.go``, 1.37):

* the kubelet waits (at most ``STREAM_WAIT`` s) until every stream the query asked for is there,
  then runs the command; stdin ends with the stream's FIN; a resize stream carries one JSON
  ``{"Width":..,"Height":..}`` per change;
* ``v4.channel.k8s.io`` (and ``v5``, which adds nothing over SPDY): the end is one
  ``metav1.Status`` JSON on the error stream (Success, or NonZeroExitCode with the code as a
  cause), then every stream is finished and the connection closed. Older protocols (v1 to v3,
  which report errors as text) are not offered: a client negotiates v4 since Kubernetes 1.4.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from vnode.kubelet import remotecommand, spdy
from vnode.provider import streams

__all__ = ["PROTOCOLS", "STREAM_WAIT", "Session"]

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STREAM_WAIT = 30.0  # seconds for the client to open its streams (the kubelet's streamCreationTimeout)
_KINDS = ("error", "stdin", "stdout", "stderr", "resize")


class Session:
    """One exec/attach SPDY connection's streams, offered to a provider as :class:`streams.Streams`."""

    def __init__(self, options: remotecommand.Options) -> None:
        self.options = options
        self.streams: dict[str, spdy.Stream] = {}
        self.ready = asyncio.Event()  # every stream the query asked for is open
        asked = (
            ("stdin", options.stdin),
            ("stdout", options.stdout),
            ("stderr", options.stderr),
            ("resize", options.tty),
        )
        self.wanted = {"error"} | {kind for kind, on in asked if on}

    def on_stream(self, stream: spdy.Stream) -> str | None:
        """``spdy.Connection``'s callback: keep each stream by its type; refuse an unknown or second one."""
        kind = stream.header("streamtype")
        if kind not in _KINDS:
            return f"invalid stream type {kind!r}" if kind else 'the "streamtype" header is required'
        if kind in self.streams:
            return f"a second {kind} stream"
        self.streams[kind] = stream
        if self.wanted <= self.streams.keys():
            self.ready.set()
        return None

    @property
    def stdin(self) -> AsyncIterator[bytes] | None:
        return self._read("stdin") if "stdin" in self.wanted else None

    @property
    def resizes(self) -> AsyncIterator[streams.TerminalSize] | None:
        return self._sizes() if "resize" in self.wanted else None

    async def _read(self, kind: str) -> AsyncIterator[bytes]:
        stream = self.streams.get(kind)
        while stream is not None and (chunk := await stream.read()):
            yield chunk

    async def _sizes(self) -> AsyncIterator[streams.TerminalSize]:
        decoder, text = json.JSONDecoder(), ""
        async for chunk in self._read("resize"):
            text += chunk.decode(errors="replace")
            while text.strip():
                try:
                    size, end = decoder.raw_decode(text.lstrip())
                except ValueError:
                    break  # an object cut in two: wait for the rest
                text = text.lstrip()[end:]
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    yield streams.TerminalSize(int(size["Width"]), int(size["Height"]))

    async def read_stdin(self) -> bytes:
        """All of stdin, up to the client's FIN (for providers without live streams)."""
        return b"".join([chunk async for chunk in self._read("stdin")]) if "stdin" in self.wanted else b""

    async def write_stdout(self, data: bytes) -> None:
        if "stdout" in self.streams and data:
            await self.streams["stdout"].write(data)

    async def write_stderr(self, data: bytes) -> None:
        if "stderr" in self.streams and data:
            await self.streams["stderr"].write(data)
        elif self.options.tty:
            await self.write_stdout(data)

    async def finish(self, status: Mapping[str, Any]) -> None:
        """The Status on the error stream, then every stream finished."""
        with contextlib.suppress(ConnectionResetError):
            if "error" in self.streams:
                await self.streams["error"].write(json.dumps(status).encode())
        for stream in self.streams.values():
            await stream.close()
