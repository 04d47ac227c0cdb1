"""ACI's exec, which is a terminal and only that (ARM's ``…/containers/{c}/exec``).

The POST takes one command string and the terminal's size and answers a WebSocket URI and a
password; the client sends the password as its first message, then what is typed, and reads
what the terminal shows. There is nothing else on that socket: no exit status (ACI reports
none, so a session's exit code is 0), no end of input apart from what a terminal user types
(Ctrl-D), no resize after the start (the size is the request's; later ones are dropped), and no
separate stderr. Hence, for the kubelet API:

* ``kubectl exec -it POD -- sh`` works (the size kubectl reports first is the session's);
* ``kubectl exec POD -- CMD`` gives the command's output (and exit code 0, whatever it was);
* stdin without a terminal (``exec -i`` without ``-t``, ``kubectl cp`` into the pod) is refused
  by name: typed into a terminal it would come back echoed and line-edited, not as a pipe; so is
  ``tar`` (``kubectl cp`` out of the pod): a binary archive does not survive a terminal either.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import AsyncIterator

import aiohttp

from vnode import errors
from vnode.provider import streams

__all__ = ["CTRL_D", "DEFAULT_SIZE", "NO_PIPE", "NO_TAR", "bridge", "collect", "first_size"]

DEFAULT_SIZE = streams.TerminalSize(width=80, height=24)
FIRST_SIZE_WAIT = 1.0  # seconds to wait for the size the client reports first (kubectl: at once)
CTRL_D = "\x04"  # what a terminal sends for the end of input
NO_TAR = (
    "kubectl cp is not supported by provider aci: ACI's exec is a terminal, and a tar archive cannot flow through one"
)
NO_PIPE = (
    "ACI's exec is a terminal: stdin without one (exec -i without -t, kubectl cp into the pod) "
    "is not supported by provider aci; use exec -it"
)


async def first_size(resizes: AsyncIterator[streams.TerminalSize] | None) -> streams.TerminalSize:
    """The size the client reports first (the session's, for good), or 80x24."""
    if resizes is None:
        return DEFAULT_SIZE
    with contextlib.suppress(TimeoutError, StopAsyncIteration):
        return await asyncio.wait_for(anext(resizes), FIRST_SIZE_WAIT)
    return DEFAULT_SIZE


async def _connect(http: aiohttp.ClientSession, uri: str, password: str) -> aiohttp.ClientWebSocketResponse:
    try:
        ws = await http.ws_connect(uri, heartbeat=30)
        await ws.send_str(password)  # before anything else: the terminal opens after it
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise errors.Unavailable(f"ACI exec WebSocket {uri.split('?')[0]}: {exc}", code="ExecSocket") from exc
    return ws


async def _shown(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[bytes]:
    """What the terminal shows, until the socket closes."""
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            yield str(message.data).encode()
        elif message.type == aiohttp.WSMsgType.BINARY:
            yield bytes(message.data)
        else:
            return


async def collect(http: aiohttp.ClientSession, uri: str, password: str) -> bytes:
    """The output of a command run with nothing typed: all the terminal shows until it closes."""
    ws = await _connect(http, uri, password)
    try:
        return b"".join([chunk async for chunk in _shown(ws)])
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise errors.Unavailable(f"ACI exec: {exc}", code="ExecSocket") from exc
    finally:
        await ws.close()


async def _type(ws: aiohttp.ClientWebSocketResponse, stdin: AsyncIterator[bytes]) -> None:
    """What the client types, as text (a character split between two chunks kept whole); its end as Ctrl-D."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in stdin:
        if text := decoder.decode(chunk):
            await ws.send_str(text)
    await ws.send_str(decoder.decode(b"", final=True) + CTRL_D)


async def bridge(http: aiohttp.ClientSession, uri: str, password: str, session: streams.Streams) -> None:
    """Join the client's streams to the terminal until it closes (the shell ended or the client left)."""
    ws = await _connect(http, uri, password)
    typing = asyncio.create_task(_type(ws, session.stdin)) if session.stdin is not None else None
    try:
        async for chunk in _shown(ws):
            await session.write_stdout(chunk)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise errors.Unavailable(f"ACI exec: {exc}", code="ExecSocket") from exc
    finally:
        if typing is not None:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError, aiohttp.ClientError, RuntimeError):
                await typing
        await ws.close()
