"""SPDY/3.1 framing and the server connection, without a cluster: codec round trips, frames
written by moby/spdystream (client-go's SPDY), malformed input refused, stream behaviour."""

from __future__ import annotations

import asyncio
import zlib

import pytest

from vnode import errors
from vnode.kubelet import portforward, spdy, spdy_frames

# Written by moby/spdystream v0.5.1's Framer (spdy.NewFramer, WriteFrame), one Framer for all of
# them: the three SYN_STREAMs and the SYN_REPLY share its compression context, in this order.
GO_FRAMES = [
    ("80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff",
     spdy_frames.SynStream(1, (("streamtype", "error"),))),
    ("800300010000001600000003000000000000c22a052a651201000000ffff",
     spdy_frames.SynStream(3, (("streamtype", "data"),))),
    ("800300010100001c0000000500000000000082cab014e41781f38785818501000000ffff",
     spdy_frames.SynStream(5, (("port", "8080"),), spdy_frames.FLAG_FIN)),
    ("800300020000000e000000016260606000000000ffff", spdy_frames.SynReply(1, ())),
    ("000000030100000568656c6c6f", spdy_frames.Data(3, b"hello", spdy_frames.FLAG_FIN)),
    ("80030003000000080000000300000005", spdy_frames.RstStream(3, spdy_frames.CANCEL)),
    ("800300060000000400000001", spdy_frames.Ping(1)),
    ("80030007000000080000000700000000", spdy_frames.GoAway(7, spdy_frames.GOAWAY_OK)),
    ("80030009000000080000000300010000", spdy_frames.WindowUpdate(3, 65536)),
    ("800300040000000c000000010000000700100000", spdy_frames.Settings(((0, 7, 1 << 20),))),
]  # fmt: skip


def test_the_dictionary_is_spdy3s() -> None:
    # The zlib stream of the first Go frame names its dictionary by Adler-32: e3c6a7c2.
    assert len(spdy_frames.DICTIONARY) == 1423
    assert zlib.adler32(spdy_frames.DICTIONARY) == 0xE3C6A7C2
    assert spdy_frames.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy_frames.DICTIONARY.endswith(b"utf-,*,enq=0.")


def test_frames_written_by_spdystream_decode() -> None:
    decoder = spdy_frames.Decoder()
    assert [f for raw, _ in GO_FRAMES for f in decoder.feed(bytes.fromhex(raw))] == [f for _, f in GO_FRAMES]


def test_frames_written_by_spdystream_decode_byte_by_byte() -> None:
    stream = b"".join(bytes.fromhex(raw) for raw, _ in GO_FRAMES)
    decoder = spdy_frames.Decoder()
    assert [f for i in range(len(stream)) for f in decoder.feed(stream[i : i + 1])] == [f for _, f in GO_FRAMES]


EVERY_FRAME: list[spdy_frames.Frame] = [
    spdy_frames.SynStream(1, (("streamtype", "error"), ("port", "80"), ("requestid", "0")), 0, 0, 3),
    spdy_frames.SynStream(
        3, (("streamtype", "data"), ("port", "80"), ("requestid", "0")), spdy_frames.FLAG_UNIDIRECTIONAL
    ),
    spdy_frames.SynReply(1, ()),
    spdy_frames.SynReply(3, (("x-multi", "a\x00b"),), spdy_frames.FLAG_FIN),
    spdy_frames.HeadersFrame(3, (("x-late", "1"),), spdy_frames.FLAG_FIN),
    spdy_frames.Data(3, b"x" * 70_000),
    spdy_frames.Data(3, b"", spdy_frames.FLAG_FIN),
    spdy_frames.RstStream(5, spdy_frames.REFUSED_STREAM),
    spdy_frames.Settings(((1, 4, 100), (0, 7, 65536))),
    spdy_frames.Ping(2),
    spdy_frames.GoAway(9, spdy_frames.GOAWAY_PROTOCOL_ERROR),
    spdy_frames.WindowUpdate(1, 0x7FFFFFFF),
]


def test_every_frame_round_trips_in_one_compression_context() -> None:
    encoder, decoder = spdy_frames.Encoder(), spdy_frames.Decoder()
    wire = b"".join(encoder.encode(frame) for frame in EVERY_FRAME)
    assert decoder.feed(wire[:5]) == []
    assert decoder.feed(wire[5:]) == EVERY_FRAME


def test_header_compression_context_spans_frames() -> None:
    encoder = spdy_frames.Encoder()
    headers = (("streamtype", "data"), ("port", "8080"), ("requestid", "42"))
    first, second = encoder.encode(spdy_frames.SynStream(1, headers)), encoder.encode(spdy_frames.SynStream(3, headers))
    assert len(second) < len(first)  # the repeat costs back-references into the first block
    with pytest.raises(spdy_frames.ProtocolError, match="not valid zlib data"):
        spdy_frames.Decoder().feed(second)  # a decoder that missed the first frame cannot read it
    decoder = spdy_frames.Decoder()
    assert decoder.feed(first + second) == [spdy_frames.SynStream(1, headers), spdy_frames.SynStream(3, headers)]


def _control(kind: int, payload: bytes, *, flags: int = 0, version: int = 3) -> bytes:
    return (
        (0x80000000 | version << 16 | kind).to_bytes(4, "big")
        + (flags << 24 | len(payload)).to_bytes(4, "big")
        + payload
    )


def _syn_with_block(block: bytes) -> bytes:
    deflate = zlib.compressobj(zdict=spdy_frames.DICTIONARY)
    compressed = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return _control(spdy_frames.SYN_STREAM, (1).to_bytes(4, "big") + bytes(6) + compressed)


def _block(*pairs: tuple[bytes, bytes], count: int | None = None) -> bytes:
    out = (len(pairs) if count is None else count).to_bytes(4, "big")
    for name, value in pairs:
        out += len(name).to_bytes(4, "big") + name + len(value).to_bytes(4, "big") + value
    return out


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (_control(spdy_frames.PING, b"\x00\x00\x00\x01", version=2), "SPDY version 2"),
        (_control(spdy_frames.PING, b"\x00\x00\x01"), "PING frame of 3 bytes"),
        (_control(spdy_frames.RST_STREAM, (1).to_bytes(4, "big") + bytes(4)), "with status 0"),
        (_control(spdy_frames.RST_STREAM, bytes(4) + (5).to_bytes(4, "big")), "RST_STREAM frame on stream 0"),
        (_control(spdy_frames.WINDOW_UPDATE, (1).to_bytes(4, "big") + bytes(4)), "delta of 0"),
        (_control(spdy_frames.GOAWAY, bytes(4)), "GOAWAY frame of 4 bytes"),
        (
            _control(spdy_frames.SETTINGS, (2).to_bytes(4, "big") + bytes(8)),
            "SETTINGS frame of 12 bytes for 2 settings",
        ),
        (_control(spdy_frames.SYN_STREAM, bytes(9)), "SYN_STREAM frame of 9 bytes is too short"),
        (_control(spdy_frames.SYN_REPLY, bytes(4) + b"xx"), "SYN_REPLY frame on stream 0"),
        (_control(spdy_frames.SYN_STREAM, (1).to_bytes(4, "big") + bytes(6) + b"not zlib"), "not valid zlib data"),
        (b"\x00\x00\x00\x00\x00\x00\x00\x01x", "DATA frame on stream 0"),
        (
            _control(spdy_frames.SYN_STREAM, b"")[:4] + (spdy_frames.MAX_CONTROL_PAYLOAD + 1).to_bytes(4, "big"),
            "control frame of",
        ),
        (_syn_with_block(_block((b"Port", b"80"))), "upper-case header name 'Port'"),
        (_syn_with_block(_block((b"port", b"80"), (b"port", b"81"))), "repeats header 'port'"),
        (_syn_with_block(_block((b"", b"80"))), "empty header name"),
        (_syn_with_block(_block((b"port", b"80"), count=2)), "ends inside the length of header name 1"),
        (_syn_with_block(_block((b"port", b"80")) + b"junk"), "4 bytes after its last header"),
        (_syn_with_block(_block(count=spdy_frames.MAX_HEADERS + 1)), "1001 headers"),
        (_syn_with_block(_block((b"big", b"a" * (spdy_frames.MAX_HEADER_BLOCK + 1)))), "larger than"),
    ],
)
def test_malformed_frames_are_refused_with_a_clear_error(wire: bytes, message: str) -> None:
    with pytest.raises(spdy_frames.ProtocolError, match=message):
        spdy_frames.Decoder().feed(wire)


def test_unknown_control_frames_are_skipped() -> None:
    decoder = spdy_frames.Decoder()
    assert decoder.feed(_control(0x55, b"whatever") + _control(spdy_frames.PING, (3).to_bytes(4, "big"))) == [
        spdy_frames.Ping(3)
    ]


# --- the connection, over an in-memory channel ---


class Pipe:
    """A ``spdy.Channel`` fed by the test as the client, recording what the server sends."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.frames: asyncio.Queue[spdy_frames.Frame] = asyncio.Queue()
        self.closed = False
        self._client = spdy_frames.Encoder()
        self._server = spdy_frames.Decoder()

    def send(self, *frames: spdy_frames.Frame) -> None:
        self.incoming.put_nowait(b"".join(self._client.encode(f) for f in frames))

    def send_raw(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    async def next(self) -> spdy_frames.Frame:
        return await asyncio.wait_for(self.frames.get(), 10)

    async def read(self) -> bytes:
        return await self.incoming.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        for frame in self._server.feed(data):
            self.frames.put_nowait(frame)

    async def close(self) -> None:
        self.closed = True


FORWARD = (("streamtype", "data"), ("port", "80"), ("requestid", "0"))


async def test_streams_get_a_reply_data_and_the_clients_fin() -> None:
    pipe, opened = Pipe(), []
    connection = spdy.Connection(pipe, lambda s: opened.append(s))
    run = asyncio.create_task(connection.run())
    pipe.send(
        spdy_frames.SynStream(1, FORWARD),
        spdy_frames.Data(1, b"hello "),
        spdy_frames.Data(1, b"world", spdy_frames.FLAG_FIN),
    )
    assert await pipe.next() == spdy_frames.SynReply(1, ())
    (stream,) = opened
    assert stream.header("port") == "80"
    assert [await stream.read(), await stream.read(), await stream.read()] == [b"hello ", b"world", b""]
    await stream.write(b"x" * (spdy.WRITE_CHUNK + 1))
    await stream.close()
    assert await pipe.next() == spdy_frames.Data(1, b"x" * spdy.WRITE_CHUNK)
    assert await pipe.next() == spdy_frames.Data(1, b"x")
    assert await pipe.next() == spdy_frames.Data(1, b"", spdy_frames.FLAG_FIN)
    assert connection.streams == {}  # both ends finished: forgotten
    pipe.send_raw(b"")  # the client leaves
    await asyncio.wait_for(run, 10)
    assert pipe.closed


async def test_client_pings_are_answered_and_settings_and_window_updates_ignored() -> None:
    pipe = Pipe()
    run = asyncio.create_task(spdy.Connection(pipe, lambda s: None).run())
    pipe.send(
        spdy_frames.Settings(((0, 7, 1024),)), spdy_frames.WindowUpdate(1, 10), spdy_frames.Ping(2), spdy_frames.Ping(5)
    )
    assert await pipe.next() == spdy_frames.Ping(5)  # 2 is even: the reply to a ping of ours, not a question
    pipe.send_raw(b"")
    await asyncio.wait_for(run, 10)
    assert pipe.frames.empty()


async def test_a_malformed_frame_ends_the_connection_with_goaway() -> None:
    pipe, opened = Pipe(), []
    run = asyncio.create_task(spdy.Connection(pipe, lambda s: opened.append(s)).run())
    pipe.send(spdy_frames.SynStream(1, FORWARD))
    assert await pipe.next() == spdy_frames.SynReply(1, ())
    pipe.send_raw(_control(spdy_frames.PING, b"\x01"))
    assert await pipe.next() == spdy_frames.GoAway(1, spdy_frames.GOAWAY_PROTOCOL_ERROR)
    await asyncio.wait_for(run, 10)
    assert pipe.closed
    (stream,) = opened
    assert await stream.read() == b""
    with pytest.raises(spdy.StreamReset):
        await stream.write(b"late")


async def test_out_of_sequence_streams_are_reset_and_refused_ones_get_a_final_reply() -> None:
    pipe = Pipe()
    refuse = {5}
    connection = spdy.Connection(pipe, lambda s: "no" if s.id in refuse else None)
    run = asyncio.create_task(connection.run())
    pipe.send(spdy_frames.SynStream(3, FORWARD), spdy_frames.SynStream(1, FORWARD), spdy_frames.SynStream(4, FORWARD))
    pipe.send(spdy_frames.SynStream(5, FORWARD))
    assert await pipe.next() == spdy_frames.SynReply(3, ())
    assert await pipe.next() == spdy_frames.RstStream(1, spdy_frames.PROTOCOL_ERROR)
    assert await pipe.next() == spdy_frames.RstStream(4, spdy_frames.PROTOCOL_ERROR)
    assert await pipe.next() == spdy_frames.SynReply(5, (), spdy_frames.FLAG_FIN)
    assert set(connection.streams) == {3}
    pipe.send_raw(b"")
    await asyncio.wait_for(run, 10)


async def test_a_stream_nobody_reads_stops_the_connection_reading() -> None:
    pipe, opened = Pipe(), []
    run = asyncio.create_task(spdy.Connection(pipe, lambda s: opened.append(s)).run())
    pipe.send(spdy_frames.SynStream(1, FORWARD))
    assert await pipe.next() == spdy_frames.SynReply(1, ())
    (stream,) = opened
    chunk = b"y" * 65536
    for _ in range(spdy.STREAM_BUFFER // len(chunk)):
        pipe.send(spdy_frames.Data(1, chunk))
    pipe.send(spdy_frames.Ping(7))

    for _ in range(200):  # turns of the loop, not time: the reader parks once the stream is full
        await asyncio.sleep(0)
    assert stream.buffered == spdy.STREAM_BUFFER
    assert pipe.incoming.qsize() == 1  # the PING is still unread...
    assert pipe.frames.empty()  # ...so unanswered
    assert await stream.read() == chunk  # room again: the connection reads on
    assert await pipe.next() == spdy_frames.Ping(7)
    pipe.send_raw(b"")
    await asyncio.wait_for(run, 10)


# --- the portforward.k8s.io pairing ---


class Echo:
    """A ``streams.PortStream`` that sends back what it gets, upper-cased, and ends on close_write."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    async def read(self) -> bytes:
        return await self.queue.get()

    async def write(self, data: bytes) -> None:
        self.queue.put_nowait(data.upper())

    async def close_write(self) -> None:
        self.queue.put_nowait(b"")

    async def close(self) -> None:
        self.closed = True


def _pf_headers(kind: str, port: int, request_id: str | None) -> spdy_frames.Headers:
    headers = (("streamtype", kind), ("port", str(port)))
    return headers if request_id is None else (*headers, ("requestid", request_id))


@pytest.mark.parametrize("request_id", ["7", None])
async def test_a_pair_of_streams_is_forwarded_and_half_closes_pass_through(request_id: str | None) -> None:
    targets: list[Echo] = []

    async def open_port(port: int) -> Echo:
        assert port == 8080
        targets.append(Echo())
        return targets[-1]

    pipe = Pipe()
    serving = asyncio.create_task(portforward.Forwarder(open_port, "ns/pod").serve(pipe))
    pipe.send(spdy_frames.SynStream(1, _pf_headers("error", 8080, request_id), spdy_frames.FLAG_FIN))
    pipe.send(
        spdy_frames.SynStream(3, _pf_headers("data", 8080, request_id)),
        spdy_frames.Data(3, b"abc", spdy_frames.FLAG_FIN),
    )
    got = [await pipe.next() for _ in range(5)]
    assert got[:2] == [spdy_frames.SynReply(1, ()), spdy_frames.SynReply(3, ())]
    assert set(got[2:]) == {
        spdy_frames.Data(3, b"ABC"),
        spdy_frames.Data(3, b"", spdy_frames.FLAG_FIN),
        spdy_frames.Data(1, b"", spdy_frames.FLAG_FIN),
    }
    assert targets[0].closed
    pipe.send_raw(b"")
    await asyncio.wait_for(serving, 10)


async def test_an_unreachable_port_is_reported_on_the_error_stream() -> None:
    async def open_port(port: int) -> Echo:
        raise errors.NotFound(f"nothing listens on port {port}")

    pipe = Pipe()
    serving = asyncio.create_task(portforward.Forwarder(open_port, "ns/pod, uid u").serve(pipe))
    pipe.send(
        spdy_frames.SynStream(1, _pf_headers("error", 9, "0"), spdy_frames.FLAG_FIN),
        spdy_frames.SynStream(3, _pf_headers("data", 9, "0")),
    )
    got = [await pipe.next() for _ in range(5)]
    message = b"error forwarding port 9 to pod ns/pod, uid u: nothing listens on port 9"
    assert got[2:] == [
        spdy_frames.Data(1, message),
        spdy_frames.RstStream(3, spdy_frames.CANCEL),
        spdy_frames.Data(1, b"", spdy_frames.FLAG_FIN),
    ]
    pipe.send_raw(b"")
    await asyncio.wait_for(serving, 10)


async def test_a_lone_stream_times_out_and_the_connections_end_stops_forwards() -> None:
    targets: list[Echo] = []

    async def open_port(port: int) -> Echo:
        targets.append(Echo())
        return targets[-1]

    pipe = Pipe()
    forwarder = portforward.Forwarder(open_port, "ns/pod", creation_timeout=0.01)
    serving = asyncio.create_task(forwarder.serve(pipe))
    pipe.send(spdy_frames.SynStream(1, _pf_headers("error", 80, "0"), spdy_frames.FLAG_FIN))
    assert await pipe.next() == spdy_frames.SynReply(1, ())
    assert await pipe.next() == spdy_frames.Data(1, b"request 0: timed out waiting for streams")
    assert await pipe.next() == spdy_frames.Data(1, b"", spdy_frames.FLAG_FIN)
    forwarder.creation_timeout = 30
    pipe.send(
        spdy_frames.SynStream(3, _pf_headers("error", 80, "1"), spdy_frames.FLAG_FIN),
        spdy_frames.SynStream(5, _pf_headers("data", 80, "1")),
    )
    for _ in range(2):
        await pipe.next()
    for _ in range(100):  # turns of the loop for the forward to connect
        await asyncio.sleep(0)
    assert targets
    pipe.send_raw(b"")  # the client leaves mid-forward
    await asyncio.wait_for(serving, 10)
    assert targets[0].closed
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no forward, timer or reader left behind


def test_bad_stream_headers_are_refused() -> None:
    forwarder = portforward.Forwarder(lambda port: Echo(), "ns/pod")  # type: ignore[arg-type,return-value]

    def refusal(headers: spdy_frames.Headers) -> str | None:
        return forwarder.on_stream(spdy.Stream(None, 1, headers, remote_done=False))  # type: ignore[arg-type]

    assert refusal((("streamtype", "data"),)) == 'the "port" header is required'
    assert refusal((("streamtype", "data"), ("port", "0"))) == "unable to parse '0' as a port"
    assert refusal((("streamtype", "data"), ("port", "http"))) == "unable to parse 'http' as a port"
    assert refusal((("port", "80"),)) == 'the "streamtype" header is required'
    assert refusal((("streamtype", "stdin"), ("port", "80"))) == "invalid stream type 'stdin'"
