"""The webhook's small client reading a watch stream: events split across chunks, long lines, errors.

A loopback HTTP server plays the watch endpoint's wire format (one JSON event per line), so
this checks the framing only; list+watch against the real API server is in test_cluster.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from vnode.webhook import kubeapi

BIG = {"type": "ADDED", "object": {"metadata": {"name": "big", "resourceVersion": "2"}, "data": "x" * 200_000}}
SMALL = {"type": "MODIFIED", "object": {"metadata": {"name": "small", "resourceVersion": "3"}}}
EXPIRED = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}


async def serve_stream(events: list[dict[str, object]]) -> tuple[web.AppRunner, str]:
    async def watch(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        payload = b"".join(json.dumps(e).encode() + b"\n" for e in events)
        for start in range(0, len(payload), 1000):  # many small chunks: lines arrive in pieces
            await response.write(payload[start : start + 1000])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/api/v1/things", watch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def stream() -> AsyncIterator[list[web.AppRunner]]:
    runners: list[web.AppRunner] = []
    try:
        yield runners
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_watch_events_come_whole_however_the_stream_is_chunked(stream: list[web.AppRunner]) -> None:
    runner, url = await serve_stream([BIG, SMALL])
    stream.append(runner)
    async with kubeapi.Client(url, False) as client:
        received = [event async for event in client.watch("/api/v1/things", "1")]
    assert received == [BIG, SMALL]


async def test_an_expired_watch_raises_gone(stream: list[web.AppRunner]) -> None:
    runner, url = await serve_stream([SMALL, EXPIRED])
    stream.append(runner)
    seen: list[dict[str, object]] = []

    async def consume(client: kubeapi.Client) -> None:
        async for event in client.watch("/api/v1/things", "1"):
            seen.append(event)

    async with kubeapi.Client(url, False) as client:
        with pytest.raises(kubeapi.Gone):
            await consume(client)
    assert seen == [SMALL]


async def test_list_watch_lists_again_after_gone(stream: list[web.AppRunner]) -> None:
    calls: list[str] = []

    async def things(request: web.Request) -> web.StreamResponse:
        if "watch" not in request.query:
            calls.append("list")
            return web.json_response({"metadata": {"resourceVersion": "1"}, "items": [SMALL["object"]]})
        calls.append("watch")
        return web.Response(text=json.dumps(EXPIRED) + "\n")

    app = web.Application()
    app.router.add_get("/api/v1/things", things)
    runner = web.AppRunner(app)
    await runner.setup()
    stream.append(runner)
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    relisted = asyncio.Event()
    replaced: list[int] = []

    def replace(items: list[dict[str, object]]) -> None:
        replaced.append(len(items))
        if len(replaced) == 2:
            relisted.set()

    async with kubeapi.Client(f"http://127.0.0.1:{runner.addresses[0][1]}", False) as client:
        task = asyncio.create_task(
            kubeapi.list_watch(client, "/api/v1/things", replace=replace, apply=lambda kind, obj: None)
        )
        try:
            async with asyncio.timeout(10):
                await relisted.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert calls[:3] == ["list", "watch", "list"]
    assert replaced[:2] == [1, 1]
