"""SPDY/3.1, the server end that ``kubectl port-forward`` needs: the connection and its streams.

Why vnode speaks SPDY at all: the API server hands ``kubectl port-forward`` to a kubelet as
SPDY/3.1, either as a plain ``Upgrade: SPDY/3.1`` or (to nodes declaring
``ExtendWebSocketsToKubelet``) as the same bytes tunnelled in WebSocket binary messages
(``SPDY/3.1+portforward.k8s.io``). The peer is always moby/spdystream inside client-go, so this is
SPDY/3.1 as spdystream speaks it; the frames and their header compression are ``spdy_frames``'s:

* **Flow control** as spdystream does it, which is none of SPDY/3.1's: spdystream never sends
  WINDOW_UPDATE and ignores windows; its backpressure is TCP's (a slow stream reader stops the
  connection's reader). So here: a stream buffers at most :data:`STREAM_BUFFER` bytes and the read
  loop waits while one is full; WINDOW_UPDATE and SETTINGS are accepted and ignored, and writes
  never wait for a window (a client that sends no WINDOW_UPDATE would stall them at 64 KiB).
* **Streams** are opened by the client only. Each gets a SYN_REPLY without headers, as
  ``k8s.io/streaming/pkg/httpstream/spdy`` sends; a stream the application refuses gets a
  SYN_REPLY with FIN, as there. Client PINGs (odd ids) are echoed.
* **A malformed frame** (:class:`spdy_frames.ProtocolError`) ends the connection: it answers
  GOAWAY (protocol error) and closes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from vnode.kubelet import spdy_frames

__all__ = ["Channel", "Connection", "Stream", "StreamReset"]

log = logging.getLogger(__name__)

#: Bytes a stream holds for its reader before the connection stops reading.
STREAM_BUFFER = 256 * 1024
#: Largest DATA payload written in one frame (client-go copies in 32 KiB pieces too).
WRITE_CHUNK = 32 * 1024


class StreamReset(ConnectionResetError):
    """The stream was reset (by either end) or its connection ended; nothing more can be written."""


class Channel(Protocol):
    """The bytes under a connection: the upgraded HTTPS socket, or a WebSocket tunnel."""

    async def read(self) -> bytes:
        """The next bytes from the client; ``b""`` once it is gone."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data``; waits while the client is slow; ``ConnectionResetError`` once it is gone."""
        ...

    async def close(self) -> None: ...


class Stream:
    """One client-opened stream: ``read`` what the client sends, ``write`` back, ``close`` (FIN)
    or ``reset``. Made by :class:`Connection` only."""

    def __init__(
        self, connection: Connection, stream_id: int, headers: spdy_frames.Headers, *, remote_done: bool
    ) -> None:
        self.connection = connection
        self.id = stream_id
        self.headers = headers
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._changed = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.remote_done = remote_done  # FIN received (or reset, or the connection ended)
        self.local_done = False  # FIN sent
        self.was_reset = False  # RST_STREAM sent or received, or the connection ended
        #: set when the stream is reset, by either end, or its connection ends
        self.reset_seen = asyncio.Event()
        self._discard = False

    def header(self, name: str) -> str:
        return spdy_frames.header(self.headers, name)

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return self._buffered

    async def read(self) -> bytes:
        """The client's next bytes; ``b""`` once it finished (FIN), reset the stream or left."""
        while not self._chunks:
            if self.remote_done:
                return b""
            self._changed.clear()
            await self._changed.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < STREAM_BUFFER:
            self._room.set()
        return chunk

    async def write(self, data: bytes) -> None:
        """Send ``data`` as DATA frames; :class:`StreamReset` if the stream or connection is gone."""
        for start in range(0, len(data), WRITE_CHUNK):
            if self.was_reset or self.local_done:
                raise StreamReset(f"stream {self.id} is closed")
            await self.connection.send(spdy_frames.Data(self.id, data[start : start + WRITE_CHUNK]))

    async def close(self) -> None:
        """Half-close: a DATA frame with FIN; nothing more will be written. Safe to repeat."""
        if self.local_done or self.was_reset:
            return
        self.local_done = True
        with contextlib.suppress(ConnectionResetError):
            await self.connection.send(spdy_frames.Data(self.id, b"", spdy_frames.FLAG_FIN))
        self.connection._settle(self)

    async def reset(self, status: int = spdy_frames.CANCEL) -> None:
        """Abort the stream both ways (RST_STREAM); buffered input is dropped. Safe to repeat."""
        if self.was_reset:
            return
        self._end(reset=True)
        with contextlib.suppress(ConnectionResetError):
            await self.connection.send(spdy_frames.RstStream(self.id, status))
        self.connection._settle(self)

    def discard(self) -> None:
        """Drop what the client sends from now on (nobody will read it)."""
        self._discard = True
        self._chunks.clear()
        self._buffered = 0
        self._room.set()

    # -- for the connection --

    async def _feed(self, data: bytes) -> None:
        if self._discard or self.remote_done or not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._changed.set()
        if self._buffered >= STREAM_BUFFER:  # backpressure: the connection stops reading
            self._room.clear()
            await self._room.wait()

    def _end(self, *, reset: bool) -> None:
        self.remote_done = True
        if reset:
            self.was_reset = True
            self.reset_seen.set()
            self.discard()
        self._changed.set()
        self._room.set()


class Connection:
    """The server end of one SPDY/3.1 connection over ``channel``.

    ``run()`` reads frames until the client leaves (or breaks the protocol, which ends it with
    GOAWAY) and gives each new stream to ``on_stream``, synchronously and in order of arrival.
    ``on_stream`` returns ``None`` to accept the stream or a reason to refuse it. When ``run()``
    returns, every stream reads ``b""`` and refuses writes; the channel is closed.
    """

    def __init__(self, channel: Channel, on_stream: Callable[[Stream], str | None], *, name: str = "") -> None:
        self.channel = channel
        self.on_stream = on_stream
        self.name = name
        self.streams: dict[int, Stream] = {}
        self._decoder = spdy_frames.Decoder()
        self._encoder = spdy_frames.Encoder()
        self._send_lock = asyncio.Lock()
        self._last_id = 0
        self._going_away = False
        self._closed = False

    async def send(self, frame: spdy_frames.Frame) -> None:
        """Encode and write one frame; :class:`StreamReset` once the client is gone."""
        if self._closed:
            raise StreamReset("the SPDY connection is closed")
        async with self._send_lock:  # frames leave in the order their headers were compressed
            try:
                await self.channel.write(self._encoder.encode(frame))
            except (ConnectionError, OSError) as exc:
                self._closed = True  # the compression context is now out of step anyway
                raise StreamReset(f"the SPDY connection is gone: {exc}") from exc

    async def run(self) -> None:
        try:
            while True:
                try:
                    data = await self.channel.read()
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    return
                try:
                    frames = self._decoder.feed(data)
                except spdy_frames.ProtocolError as exc:
                    log.warning("port-forward connection %s: %s; closing it", self.name, exc)
                    with contextlib.suppress(ConnectionResetError, OSError):
                        await self.send(spdy_frames.GoAway(self._last_id, spdy_frames.GOAWAY_PROTOCOL_ERROR))
                    return
                try:
                    for frame in frames:
                        await self._handle(frame)
                except StreamReset:  # a reply could not be written: the client is gone
                    return
        finally:
            self._closed = True
            for stream in list(self.streams.values()):
                stream._end(reset=True)
            self.streams.clear()
            with contextlib.suppress(Exception):
                await self.channel.close()

    async def _handle(self, frame: spdy_frames.Frame) -> None:
        match frame:
            case spdy_frames.Data(stream_id, data, flags):
                stream = self.streams.get(stream_id)
                if stream is None:
                    return  # a stream already reset or finished: late data is dropped (as spdystream does)
                await stream._feed(data)
                if flags & spdy_frames.FLAG_FIN:
                    stream._end(reset=False)
                    self._settle(stream)
            case spdy_frames.SynStream():
                await self._open(frame)
            case spdy_frames.RstStream(stream_id, _):
                stream = self.streams.pop(stream_id, None)
                if stream is not None:
                    stream._end(reset=True)
            case spdy_frames.HeadersFrame(stream_id, _, flags):
                stream = self.streams.get(stream_id)
                if stream is not None and flags & spdy_frames.FLAG_FIN:
                    stream._end(reset=False)
                    self._settle(stream)
            case spdy_frames.Ping(ping_id):
                if ping_id & 1:  # the client's own ping (ours would be even): answer it
                    await self.send(frame)
            case spdy_frames.GoAway():
                self._going_away = True
            case spdy_frames.Settings() | spdy_frames.WindowUpdate() | spdy_frames.SynReply():
                pass  # no flow control (see the module's docstring); the server opens no streams

    async def _open(self, frame: spdy_frames.SynStream) -> None:
        stream_id = frame.stream_id
        if self._going_away:
            await self.send(spdy_frames.RstStream(stream_id, spdy_frames.REFUSED_STREAM))
            return
        if stream_id % 2 == 0 or stream_id <= self._last_id:
            # as spdystream: a stream id out of sequence resets that stream, not the connection
            log.warning("port-forward connection %s: stream id %d out of sequence", self.name, stream_id)
            await self.send(spdy_frames.RstStream(stream_id, spdy_frames.PROTOCOL_ERROR))
            return
        self._last_id = stream_id
        stream = Stream(self, stream_id, frame.headers, remote_done=bool(frame.flags & spdy_frames.FLAG_FIN))
        if frame.flags & spdy_frames.FLAG_UNIDIRECTIONAL:
            stream.local_done = True
        self.streams[stream_id] = stream
        refusal = self.on_stream(stream)
        if refusal is not None:
            log.warning("port-forward connection %s: stream %d refused: %s", self.name, stream_id, refusal)
            del self.streams[stream_id]  # what the client still sends on it is dropped
            stream.local_done = True
            stream._end(reset=False)
            await self.send(spdy_frames.SynReply(stream_id, (), spdy_frames.FLAG_FIN))
            return
        await self.send(spdy_frames.SynReply(stream_id, ()))

    def _settle(self, stream: Stream) -> None:
        """Forget a stream once both ends finished it (or it was reset)."""
        finished = stream.was_reset or (stream.local_done and stream.remote_done)
        if finished and self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
