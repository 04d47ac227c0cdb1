"""The simulator's ACI dialect in-process: its aiohttp app behind aiohttp's test client, on a loop of our own.

No TLS and no thread: ``aci.create_app`` over a ``Cloud`` on a temporary store, served by
``TestServer`` on 127.0.0.1, driven with ``loop.run_until_complete`` from synchronous tests (as
hypothesis runs them). The app's middleware is the one the simulator serves with, so an
exception it does not turn into ARM's error shape reaches the client as aiohttp's plain 500.
"""

from __future__ import annotations

import asyncio
import io
import json
import pathlib
from typing import Any

import hypothesis
from aiohttp.test_utils import TestClient, TestServer

from tests.cloudsim import inproc
from vnode.cloudsim import aci

TOKEN = "fuzz-token"
SUBSCRIPTION = "00000000-0000-0000-0000-00000000f022"
GROUPS = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups"
API = "api-version=2023-05-01"


def valid_body() -> dict[str, Any]:
    return {
        "location": "westeurope",
        "tags": {"team": "a"},
        "properties": {
            "osType": "Linux",
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": "app",
                    "properties": {
                        "image": "nginx",
                        "command": ["nginx"],
                        "ports": [{"port": 80, "protocol": "TCP"}],
                        "environmentVariables": [{"name": "A", "value": "1"}, {"name": "S", "secureValue": "x"}],
                        "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}, "limits": {"cpu": 2}},
                        "securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_ADMIN"]}},
                    },
                }
            ],
            "initContainers": [{"name": "init", "properties": {"image": "busybox", "command": ["true"]}}],
            "ipAddress": {"type": "Public", "ports": [{"port": 80, "protocol": "TCP"}], "dnsNameLabel": "fuzz-label"},
            "dnsConfig": {"nameServers": ["10.0.0.10"], "searchDomains": "a.local b.local", "options": "ndots:2 edns0"},
            "imageRegistryCredentials": [{"server": "r.example", "username": "u", "password": "p"}],
        },
        "zones": ["1"],
    }


class Harness:
    def __init__(self, state_dir: pathlib.Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.cloud = inproc.in_process(state_dir / "c.db", seed=5)
        self.client = self.loop.run_until_complete(self._start())

    async def _start(self) -> TestClient[Any, Any]:
        client = TestClient(TestServer(aci.create_app(self.cloud, tokens=[TOKEN], poll_interval=0.05)))
        await client.start_server()
        return client

    def fresh(self) -> None:
        self.cloud.reset()
        self.cloud.limiter.limits.clear()

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        async def go() -> tuple[int, bytes, str]:
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            data = io.BytesIO(body) if body is not None else None  # aiohttp warns of a large bytes body
            async with self.client.request(method, path, data=data, headers=headers) as resp:
                return resp.status, await resp.read(), resp.content_type

        status, raw, content_type = self.loop.run_until_complete(asyncio.wait_for(go(), timeout=20))
        assert status < 500, raw[:2000]
        return status, json.loads(raw) if raw and content_type == "application/json" else raw

    def put(self, name: str, body: bytes) -> tuple[int, Any]:
        return self.request("PUT", f"{GROUPS}/{name}?{API}", body)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.cloud.store.close()
        self.loop.close()


def check_answer(status: int, body: Any) -> None:
    """A success, or a client error in ARM's shape ``{"error": {"code", "message"}}``."""
    assert status < 500, body
    hypothesis.event(f"{status} {body['error']['code'] if status >= 400 and isinstance(body, dict) else ''}")
    if status >= 400:
        assert isinstance(body, dict), body
        error = body["error"]
        assert isinstance(error["code"], str), body
        assert error["code"], body
        assert isinstance(error["message"], str), body
        assert error["message"], body
