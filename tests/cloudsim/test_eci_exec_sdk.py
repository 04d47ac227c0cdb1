"""ECI's interactive exec through the official SDK: ``Sync=false`` answers a ``WebSocketUri`` to stream over."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, create_request


def _request(sim: Sim, group_id: str, argv: list[str], *, sync: bool, tty: bool) -> m.ExecContainerCommandRequest:
    return m.ExecContainerCommandRequest(
        region_id=sim.region, container_group_id=group_id, container_name="app",
        command=json.dumps(argv), sync=sync, tty=tty, stdin=True,
    )  # fmt: skip


async def _session(uri: str, frames: list[bytes]) -> tuple[bytes, dict[str, object]]:
    """Send ``frames``, then read the output (channel 1) and the final Status (channel 3)."""
    output = bytearray()
    async with aiohttp.ClientSession() as http, http.ws_connect(uri, protocols=("v5.channel.k8s.io",)) as ws:
        assert ws.protocol == "v5.channel.k8s.io"
        for frame in frames:
            await ws.send_bytes(frame)
        async for message in ws:
            if message.data[0] == 1:
                output += message.data[1:]
            elif message.data[0] == 3:
                return bytes(output), json.loads(message.data[1:])
    raise AssertionError(f"no Status; output {bytes(output)!r}")


def test_interactive_exec_streams_a_terminal_over_the_websocket_uri(sim: Sim, eci: Client) -> None:
    group_id = eci.create_container_group(create_request(sim, "web")).body.container_group_id
    sim.advance(60)
    body = eci.exec_container_command(_request(sim, group_id, ["/bin/sh"], sync=False, tty=True)).body
    assert body.web_socket_uri.startswith("ws://")
    assert "/exec/?s=" in body.web_socket_uri
    resize = b"\x04" + json.dumps({"Width": 132, "Height": 43}).encode()
    output, status = asyncio.run(_session(body.web_socket_uri, [resize, b"\x00stty size\n", b"\x00exit 5\n"]))
    assert b"43 132\r\n" in output
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "5"}]}

    piped = eci.exec_container_command(_request(sim, group_id, ["cat"], sync=False, tty=False)).body
    output, status = asyncio.run(_session(piped.web_socket_uri, [b"\x00one\n", b"\x00two\n", b"\xff\x00"]))
    assert (output, status["status"]) == (b"one\ntwo\n", "Success")
    # one session per call: the URI does not open twice
    with pytest.raises(aiohttp.WSServerHandshakeError):
        asyncio.run(_session(piped.web_socket_uri, []))


def test_sync_mode_refuses_a_terminal(sim: Sim, eci: Client) -> None:
    group_id = eci.create_container_group(create_request(sim, "tty")).body.container_group_id
    sim.advance(60)
    with pytest.raises(tea_exceptions.ClientException, match="TTY"):
        eci.exec_container_command(_request(sim, group_id, ["/bin/sh"], sync=True, tty=True))
