"""SPDY/3.1 frames and their codec: bytes in, frames out and back, with no I/O.

The peer is always moby/spdystream inside client-go, so this is SPDY/3.1 as spdystream speaks it
(draft-mbelshe-httpbis-spdy-00 and the 3.1 amendments), not the whole draft (``spdy`` says why
vnode speaks SPDY at all and runs the connection):

* **Frames**: SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE and
  DATA. An unknown control frame type is skipped, as the draft asks. A malformed frame is a
  :class:`ProtocolError`: the connection answers GOAWAY (protocol error) and closes.
* **Header blocks** are zlib-compressed with SPDY/3's dictionary: one compression context per
  direction for the whole connection, each block ended by a sync flush.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

__all__ = [
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
    "SynReply",
    "SynStream",
    "WindowUpdate",
]

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
