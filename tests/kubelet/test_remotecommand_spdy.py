"""exec/attach over SPDY/3.1 without a cluster: the client's streams by type, stdin to its FIN,
resizes as JSON objects, the Status on the error stream and every stream finished."""

from __future__ import annotations

import asyncio
import json

from tests.kubelet.test_spdy import Pipe
from vnode.kubelet import remotecommand, remotecommand_spdy, spdy, spdy_frames
from vnode.provider import streams


def _syn(stream_id: int, kind: str) -> spdy_frames.SynStream:
    return spdy_frames.SynStream(stream_id, (("streamtype", kind),))


async def test_a_tty_session_gets_its_streams_stdin_resizes_and_the_status() -> None:
    options = remotecommand.Options(stdin=True, stdout=True, stderr=False, tty=True)
    session = remotecommand_spdy.Session(options)
    pipe = Pipe()
    run = asyncio.create_task(spdy.Connection(pipe, session.on_stream).run())
    pipe.send(_syn(1, "error"), _syn(3, "stdin"), _syn(5, "stdout"))
    await asyncio.sleep(0.05)
    assert not session.ready.is_set(), "a terminal's resize stream is still to come"
    pipe.send(_syn(7, "resize"))
    await asyncio.wait_for(session.ready.wait(), 10)
    size = json.dumps({"Width": 120, "Height": 40}).encode()
    pipe.send(
        spdy_frames.Data(3, b"typed\n"),
        spdy_frames.Data(3, b"", spdy_frames.FLAG_FIN),
        spdy_frames.Data(7, size[:10]),
        spdy_frames.Data(7, size[10:] + b"\n" + json.dumps({"Width": 80, "Height": 24}).encode()),
        spdy_frames.Data(7, b"", spdy_frames.FLAG_FIN),
    )
    stdin, resizes = session.stdin, session.resizes
    assert stdin is not None
    assert resizes is not None
    assert [chunk async for chunk in stdin] == [b"typed\n"]
    assert [size async for size in resizes] == [streams.TerminalSize(120, 40), streams.TerminalSize(80, 24)]
    await session.write_stderr(b"to the terminal")  # a terminal has one output stream
    await session.finish(remotecommand.exit_status(7))
    frames = [await pipe.next() for _ in range(8)]
    assert [f for f in frames if isinstance(f, spdy_frames.SynReply)] == [
        spdy_frames.SynReply(i, ()) for i in (1, 3, 5, 7)
    ]
    data = [f for f in frames if isinstance(f, spdy_frames.Data)]
    assert spdy_frames.Data(5, b"to the terminal") in data
    (status,) = [json.loads(f.data) for f in data if f.stream_id == 1 and f.data]
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]
    pipe.send_raw(b"")
    await asyncio.wait_for(run, 10)


async def test_an_unknown_or_second_stream_is_refused() -> None:
    session = remotecommand_spdy.Session(remotecommand.Options(stdin=False, stdout=True, stderr=True, tty=False))
    pipe = Pipe()
    run = asyncio.create_task(spdy.Connection(pipe, session.on_stream).run())
    pipe.send(_syn(1, "error"), _syn(3, "stdout"), _syn(5, "stdout"), _syn(7, "video"), _syn(9, "stderr"))
    await asyncio.wait_for(session.ready.wait(), 10)
    replies = [await pipe.next() for _ in range(5)]
    assert replies[2] == spdy_frames.SynReply(5, (), spdy_frames.FLAG_FIN), "a second stdout: refused"
    assert replies[3] == spdy_frames.SynReply(7, (), spdy_frames.FLAG_FIN), "an unknown type: refused"
    assert session.stdin is None, "the query asked for no stdin"
    pipe.send_raw(b"")
    await asyncio.wait_for(run, 10)
