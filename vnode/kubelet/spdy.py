"""SPDY/3.1, the server end that ``kubectl port-forward`` needs: frames, header compression, streams.

Why vnode speaks SPDY at all: the API server hands ``kubectl port-forward`` to a kubelet as
SPDY/3.1, either as a plain ``Upgrade: SPDY/3.1`` or (to nodes declaring
``ExtendWebSocketsToKubelet``) as the same bytes tunnelled in WebSocket binary messages
(``SPDY/3.1+portforward.k8s.io``). The peer is always moby/spdystream inside client-go, so this is
SPDY/3.1 as spdystream speaks it (draft-mbelshe-httpbis-spdy-00 and the 3.1 amendments), not the
whole draft:

* **Frames**: SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE and
  DATA. An unknown control frame type is skipped, as the draft asks. A malformed frame is a
  :class:`ProtocolError`: the connection answers GOAWAY (protocol error) and closes.
* **Header blocks** are zlib-compressed with SPDY/3's dictionary: one compression context per
  direction for the whole connection, each block ended by a sync flush.
* **Flow control** as spdystream does it, which is none of SPDY/3.1's: spdystream never sends
  WINDOW_UPDATE and ignores windows; its backpressure is TCP's (a slow stream reader stops the
  connection's reader). So here: a stream buffers at most :data:`STREAM_BUFFER` bytes and the read
  loop waits while one is full; WINDOW_UPDATE and SETTINGS are accepted and ignored, and writes
  never wait for a window (a client that sends no WINDOW_UPDATE would stall them at 64 KiB).
* **Streams** are opened by the client only. Each gets a SYN_REPLY without headers, as
  ``k8s.io/streaming/pkg/httpstream/spdy`` sends; a stream the application refuses gets a
  SYN_REPLY with FIN, as there. Client PINGs (odd ids) are echoed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import struct
import zlib
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "Channel",
    "Connection",
    "Data",
    "Decoder",
    "Encoder",
    "Frame",
    "GoAway",
    "Headers",
    "HeadersFrame",
    "Ping",
    "ProtocolError",
    "RstStream",
    "Settings",
    "Stream",
    "StreamReset",
    "SynReply",
    "SynStream",
    "WindowUpdate",
]

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

#: Largest control frame payload accepted (SYN_STREAMs of port-forward are tens of bytes).
MAX_CONTROL_PAYLOAD = 1 << 20
#: Largest header block after decompression, and most headers in one block (spdystream: 1000).
MAX_HEADER_BLOCK = 256 * 1024
MAX_HEADERS = 1000
#: Bytes a stream holds for its reader before the connection stops reading.
STREAM_BUFFER = 256 * 1024
#: Largest DATA payload written in one frame (client-go copies in 32 KiB pieces too).
WRITE_CHUNK = 32 * 1024

_DICTIONARY_WORDS = (
    'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding',
    'accept-language', 'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection',
    'content-base', 'content-encoding', 'content-language', 'content-length', 'content-location',
    'content-md5', 'content-range', 'content-type', 'date', 'etag', 'expect', 'expires', 'from', 'host',
    'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since', 'last-modified',
    'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer',
    'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via',
    'warning', 'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public',
    'set-cookie', 'keep-alive', 'origin',
)  # fmt: skip
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Au"
    "thoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidd"
    "en404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr Ma"
    "y Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,imag"
    "e/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicpri"
    "vatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
#: SPDY/3's zlib dictionary for header blocks (the draft's section 2.6.10.1): 65 length-prefixed
#: words, then a run of status lines, dates and content types.
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _DICTIONARY_WORDS) + _DICTIONARY_TAIL.encode()


class ProtocolError(Exception):
    """The peer broke SPDY/3.1; the connection cannot continue (GOAWAY, then close)."""


class StreamReset(ConnectionResetError):
    """The stream was reset (by either end) or its connection ended; nothing more can be written."""


#: A header block: (name, value) pairs, names lower-case; a value holds several values NUL-separated.
Headers = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: Headers
    flags: int = 0
    associated_to: int = 0
    priority: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    #: (flags, id, value) of each setting
    entries: tuple[tuple[int, int, int], ...]
    flags: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclasses.dataclass(frozen=True, slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclasses.dataclass(frozen=True, slots=True)
class Data:
    stream_id: int
    data: bytes
    flags: int = 0


Frame = SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate | Data

_U32 = struct.Struct(">I")
_U32x2 = struct.Struct(">II")


def header(headers: Headers, name: str) -> str:
    """The first value of ``name`` in ``headers`` (``""`` if absent)."""
    for key, value in headers:
        if key == name:
            return value.split("\x00", 1)[0]
    return ""


# --- the codec (no I/O) ---


class Decoder:
    """Bytes in, frames out, for one direction of one connection (it owns that direction's
    decompression context, so it must see every frame, in order)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``; raises :class:`ProtocolError` on a malformed one."""
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            first, second = _U32x2.unpack_from(self._buffer)
            flags, length = second >> 24, second & 0xFFFFFF
            control = bool(first & 0x80000000)
            if control and length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(f"control frame of {length} bytes (at most {MAX_CONTROL_PAYLOAD} accepted)")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            if not control:
                stream_id = first & 0x7FFFFFFF
                if stream_id == 0:
                    raise ProtocolError("DATA frame on stream 0")
                frames.append(Data(stream_id, payload, flags))
                continue
            version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
            if version != VERSION:
                raise ProtocolError(f"control frame of SPDY version {version} (only 3 is spoken)")
            frame = self._control(kind, flags, payload)
            if frame is not None:
                frames.append(frame)
        return frames

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame | None:
        name = _NAMES.get(kind)
        if name is None:
            return None  # unknown control frame types are ignored (draft §2.2.1)
        fixed = {SYN_STREAM: 10, SYN_REPLY: 4, HEADERS: 4}.get(kind)
        if fixed is not None:
            if len(payload) < fixed:
                raise ProtocolError(f"{name} frame of {len(payload)} bytes is too short")
            stream_id = _U32.unpack_from(payload)[0] & 0x7FFFFFFF
            if stream_id == 0:
                raise ProtocolError(f"{name} frame on stream 0")
            headers = self._headers(payload[fixed:], name)
            if kind == SYN_STREAM:
                associated = _U32.unpack_from(payload, 4)[0] & 0x7FFFFFFF
                return SynStream(stream_id, headers, flags, associated, payload[8] >> 5)
            if kind == SYN_REPLY:
                return SynReply(stream_id, headers, flags)
            return HeadersFrame(stream_id, headers, flags)
        if kind == SETTINGS:
            if len(payload) < 4:
                raise ProtocolError("SETTINGS frame without its count")
            count = _U32.unpack_from(payload)[0]
            if len(payload) != 4 + 8 * count:
                raise ProtocolError(f"SETTINGS frame of {len(payload)} bytes for {count} settings")
            entries = []
            for at in range(4, len(payload), 8):
                flag_id, value = _U32x2.unpack_from(payload, at)
                entries.append((flag_id >> 24, flag_id & 0xFFFFFF, value))
            return Settings(tuple(entries), flags)
        if kind == PING:
            if len(payload) != 4:
                raise ProtocolError(f"PING frame of {len(payload)} bytes (4 expected)")
            return Ping(_U32.unpack(payload)[0])
        if len(payload) != 8:  # RST_STREAM, GOAWAY, WINDOW_UPDATE
            raise ProtocolError(f"{name} frame of {len(payload)} bytes (8 expected)")
        word, value = _U32x2.unpack(payload)
        ident = word & 0x7FFFFFFF
        if kind == GOAWAY:
            return GoAway(ident, value)
        if ident == 0:
            raise ProtocolError(f"{name} frame on stream 0")
        if kind == RST_STREAM:
            if value == 0:
                raise ProtocolError(f"RST_STREAM of stream {ident} with status 0")
            return RstStream(ident, value)
        delta = value & 0x7FFFFFFF
        if delta == 0:
            raise ProtocolError(f"WINDOW_UPDATE of stream {ident} with a delta of 0")
        return WindowUpdate(ident, delta)

    def _headers(self, compressed: bytes, frame: str) -> Headers:
        try:
            block = self._inflate.decompress(compressed, MAX_HEADER_BLOCK + 1)
        except zlib.error as exc:
            raise ProtocolError(f"{frame} frame: its header block is not valid zlib data ({exc})") from exc
        if len(block) > MAX_HEADER_BLOCK or self._inflate.unconsumed_tail:
            raise ProtocolError(f"{frame} frame: header block larger than {MAX_HEADER_BLOCK} bytes")
        return parse_header_block(block, frame)


def parse_header_block(block: bytes, frame: str = "header") -> Headers:
    """A decompressed header block: a count, then length-prefixed names and values (all 32-bit)."""

    def take(at: int, what: str) -> tuple[bytes, int]:
        if at + 4 > len(block):
            raise ProtocolError(f"{frame} block ends inside the length of {what}")
        size = _U32.unpack_from(block, at)[0]
        if at + 4 + size > len(block):
            raise ProtocolError(f"{frame} block ends inside {what} ({size} bytes announced)")
        return block[at + 4 : at + 4 + size], at + 4 + size

    if len(block) < 4:
        raise ProtocolError(f"{frame} block of {len(block)} bytes has no header count")
    count, at = _U32.unpack_from(block)[0], 4
    if count > MAX_HEADERS:
        raise ProtocolError(f"{frame} block with {count} headers (at most {MAX_HEADERS})")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index in range(count):
        raw_name, at = take(at, f"header name {index}")
        raw_value, at = take(at, f"the value of header {index}")
        name = raw_name.decode("latin-1")
        if not name:
            raise ProtocolError(f"{frame} block has an empty header name")
        if name != name.lower():
            raise ProtocolError(f"{frame} block has an upper-case header name {name!r}")
        if name in seen:
            raise ProtocolError(f"{frame} block repeats header {name!r}")
        seen.add(name)
        pairs.append((name, raw_value.decode("latin-1")))
    if at != len(block):
        raise ProtocolError(f"{frame} block has {len(block) - at} bytes after its last header")
    return tuple(pairs)


def header_block(headers: Headers) -> bytes:
    parts = [_U32.pack(len(headers))]
    for name, value in headers:
        for text in (name.lower(), value):
            raw = text.encode("latin-1")
            parts += (_U32.pack(len(raw)), raw)
    return b"".join(parts)


class Encoder:
    """Frames in, bytes out, for one direction of one connection (it owns that direction's
    compression context: encode frames in the order they are sent)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(level=9, zdict=DICTIONARY)

    def encode(self, frame: Frame) -> bytes:
        match frame:
            case Data(stream_id, data, flags):
                return _U32x2.pack(stream_id & 0x7FFFFFFF, flags << 24 | len(data)) + data
            case SynStream(stream_id, headers, flags, associated, priority):
                fixed = _U32x2.pack(stream_id, associated) + bytes([(priority & 7) << 5, 0])
                return self._control(SYN_STREAM, flags, fixed + self._compress(headers))
            case SynReply(stream_id, headers, flags):
                return self._control(SYN_REPLY, flags, _U32.pack(stream_id) + self._compress(headers))
            case HeadersFrame(stream_id, headers, flags):
                return self._control(HEADERS, flags, _U32.pack(stream_id) + self._compress(headers))
            case RstStream(stream_id, status):
                return self._control(RST_STREAM, 0, _U32x2.pack(stream_id, status))
            case Settings(entries, flags):
                body = _U32.pack(len(entries)) + b"".join(_U32x2.pack(f << 24 | i, v) for f, i, v in entries)
                return self._control(SETTINGS, flags, body)
            case Ping(ping_id):
                return self._control(PING, 0, _U32.pack(ping_id))
            case GoAway(last_good, status):
                return self._control(GOAWAY, 0, _U32x2.pack(last_good, status))
            case WindowUpdate(stream_id, delta):
                return self._control(WINDOW_UPDATE, 0, _U32x2.pack(stream_id, delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")

    def _compress(self, headers: Headers) -> bytes:
        return self._deflate.compress(header_block(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return _U32x2.pack(0x80000000 | VERSION << 16 | kind, flags << 24 | len(payload)) + payload


_NAMES = {
    SYN_STREAM: "SYN_STREAM", SYN_REPLY: "SYN_REPLY", RST_STREAM: "RST_STREAM", SETTINGS: "SETTINGS",
    PING: "PING", GOAWAY: "GOAWAY", HEADERS: "HEADERS", WINDOW_UPDATE: "WINDOW_UPDATE",
}  # fmt: skip


# --- the connection ---


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

    def __init__(self, connection: Connection, stream_id: int, headers: Headers, *, remote_done: bool) -> None:
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
        return header(self.headers, name)

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
            await self.connection.send(Data(self.id, data[start : start + WRITE_CHUNK]))

    async def close(self) -> None:
        """Half-close: a DATA frame with FIN; nothing more will be written. Safe to repeat."""
        if self.local_done or self.was_reset:
            return
        self.local_done = True
        with contextlib.suppress(ConnectionResetError):
            await self.connection.send(Data(self.id, b"", FLAG_FIN))
        self.connection._settle(self)

    async def reset(self, status: int = CANCEL) -> None:
        """Abort the stream both ways (RST_STREAM); buffered input is dropped. Safe to repeat."""
        if self.was_reset:
            return
        self._end(reset=True)
        with contextlib.suppress(ConnectionResetError):
            await self.connection.send(RstStream(self.id, status))
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
        self._decoder = Decoder()
        self._encoder = Encoder()
        self._send_lock = asyncio.Lock()
        self._last_id = 0
        self._going_away = False
        self._closed = False

    async def send(self, frame: Frame) -> None:
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
                except ProtocolError as exc:
                    log.warning("port-forward connection %s: %s; closing it", self.name, exc)
                    with contextlib.suppress(ConnectionResetError, OSError):
                        await self.send(GoAway(self._last_id, GOAWAY_PROTOCOL_ERROR))
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

    async def _handle(self, frame: Frame) -> None:
        match frame:
            case Data(stream_id, data, flags):
                stream = self.streams.get(stream_id)
                if stream is None:
                    return  # a stream already reset or finished: late data is dropped (as spdystream does)
                await stream._feed(data)
                if flags & FLAG_FIN:
                    stream._end(reset=False)
                    self._settle(stream)
            case SynStream():
                await self._open(frame)
            case RstStream(stream_id, _):
                stream = self.streams.pop(stream_id, None)
                if stream is not None:
                    stream._end(reset=True)
            case HeadersFrame(stream_id, _, flags):
                stream = self.streams.get(stream_id)
                if stream is not None and flags & FLAG_FIN:
                    stream._end(reset=False)
                    self._settle(stream)
            case Ping(ping_id):
                if ping_id & 1:  # the client's own ping (ours would be even): answer it
                    await self.send(frame)
            case GoAway():
                self._going_away = True
            case Settings() | WindowUpdate() | SynReply():
                pass  # no flow control (see the module's docstring); the server opens no streams

    async def _open(self, frame: SynStream) -> None:
        stream_id = frame.stream_id
        if self._going_away:
            await self.send(RstStream(stream_id, REFUSED_STREAM))
            return
        if stream_id % 2 == 0 or stream_id <= self._last_id:
            # as spdystream: a stream id out of sequence resets that stream, not the connection
            log.warning("port-forward connection %s: stream id %d out of sequence", self.name, stream_id)
            await self.send(RstStream(stream_id, PROTOCOL_ERROR))
            return
        self._last_id = stream_id
        stream = Stream(self, stream_id, frame.headers, remote_done=bool(frame.flags & FLAG_FIN))
        if frame.flags & FLAG_UNIDIRECTIONAL:
            stream.local_done = True
        self.streams[stream_id] = stream
        refusal = self.on_stream(stream)
        if refusal is not None:
            log.warning("port-forward connection %s: stream %d refused: %s", self.name, stream_id, refusal)
            del self.streams[stream_id]  # what the client still sends on it is dropped
            stream.local_done = True
            stream._end(reset=False)
            await self.send(SynReply(stream_id, (), FLAG_FIN))
            return
        await self.send(SynReply(stream_id, ()))

    def _settle(self, stream: Stream) -> None:
        """Forget a stream once both ends finished it (or it was reset)."""
        finished = stream.was_reset or (stream.local_done and stream.remote_done)
        if finished and self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
