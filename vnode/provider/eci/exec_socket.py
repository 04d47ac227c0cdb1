"""The client side of ECI's interactive exec: stream a session over ``WebSocketUri``.

``ExecContainerCommand`` with ``Sync=false`` (``TTY``, ``Stdin``) answers a WebSocket URI; this
module connects to it and joins it to the kubelet API's client streams
(:class:`vnode.provider.streams.Streams`). The frames are the Kubernetes remote-command
channels (``v5.channel.k8s.io``; see ``vnode/cloudsim/eci_exec.py`` for why): stdin and
resizes go out as channels 0 and 4, stdin EOF as ``[255, 0]``; stdout, stderr and the final
Status come back on channels 1, 2 and 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import aiohttp

from vnode import errors
from vnode.provider import streams

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def exit_code(status: bytes) -> int:
    """The exit code a final ``metav1.Status`` carries (0 for Success; 1 for an unexplained failure)."""
    try:
        body = json.loads(status)
    except ValueError:
        return 1
    if body.get("status") == "Success":
        return 0
    for cause in (body.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return int(cause.get("message"))
    return 1


async def _send_input(ws: aiohttp.ClientWebSocketResponse, stdin: AsyncIterator[bytes] | None) -> None:
    if stdin is not None:
        async for chunk in stdin:
            await ws.send_bytes(bytes([STDIN]) + chunk)
    await ws.send_bytes(bytes([CLOSE, STDIN]))


async def _send_resizes(ws: aiohttp.ClientWebSocketResponse, resizes: AsyncIterator[streams.TerminalSize]) -> None:
    async for size in resizes:
        await ws.send_bytes(bytes([RESIZE]) + json.dumps({"Width": size.width, "Height": size.height}).encode())


async def _receive(ws: aiohttp.ClientWebSocketResponse, session: streams.Streams) -> int | None:
    async for message in ws:
        if message.type != aiohttp.WSMsgType.BINARY or not message.data:
            continue
        channel, payload = message.data[0], bytes(message.data[1:])
        if channel == STDOUT and payload:
            await session.write_stdout(payload)
        elif channel == STDERR and payload:
            await session.write_stderr(payload)
        elif channel == ERROR:
            return exit_code(payload)
    return None


async def stream(http: aiohttp.ClientSession, uri: str, session: streams.Streams) -> int:
    """Run one interactive session to its end; its exit code."""
    try:
        ws = await http.ws_connect(uri, protocols=PROTOCOLS, heartbeat=30)
    except aiohttp.ClientError as exc:
        raise errors.Retryable(f"ECI exec WebSocket {uri.split('?')[0]}: {exc}") from exc
    senders = [asyncio.create_task(_send_input(ws, session.stdin))]
    if (resizes := session.resizes) is not None:
        senders.append(asyncio.create_task(_send_resizes(ws, resizes)))
    try:
        code = await _receive(ws, session)
    finally:
        for task in senders:
            task.cancel()
        for task in senders:
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError, aiohttp.ClientError, RuntimeError):
                await task
        await ws.close()
    if code is None:
        raise errors.Retryable("the ECI exec WebSocket closed before the command ended")
    return code
