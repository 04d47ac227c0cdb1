"""The simulator's ECI endpoint in-process: signed requests through ``Eci.handle`` on mocked requests.

No socket, thread or child process: a ``Cloud`` over a temporary store, its ``Eci`` and an event
loop to run the handler on. An exception out of ``handle`` is what aiohttp answers with a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import pathlib
import time
import urllib.parse
import uuid
from typing import Any

from aiohttp import streams
from aiohttp.test_utils import make_mocked_request

from tests.cloudsim import inproc
from vnode.cloudsim import acs3, eci, model


class Harness:
    """A cloud, its ECI endpoint and a loop to drive it; ``call`` signs and handles one request."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.cloud = inproc.in_process(state_dir / "c.db", seed=5)
        self.eci = eci.Eci(self.cloud, commit=self._commit)
        self.key_id, self.secret = self.cloud.world.access_keys[0]

    async def _commit(self) -> None:
        self.cloud.store.flush()

    def fresh(self) -> model.Instance:
        """An empty world but for one running instance, unthrottled."""
        self.cloud.reset()
        self.cloud.limiter.limits.clear()
        world = self.cloud.world
        spec = model.InstanceSpec(
            name="one",
            containers=(model.ContainerSpec(name="app", image="nginx"),),
            vswitch_ids=tuple(v[0] for v in world.vswitches),
            security_group_id=world.security_groups[0][0],
            cpu=1,
            memory=2,
        )
        return self.cloud.create(spec)

    def base(self, action: str, instance_id: str) -> dict[str, str]:
        world = self.cloud.world
        params = {"RegionId": world.region, "ContainerGroupId": instance_id, "ContainerName": "app"}
        if action == "CreateContainerGroup":
            params = {
                "RegionId": world.region,
                "ContainerGroupName": "fuzz",
                "SecurityGroupId": world.security_groups[0][0],
                "VSwitchId": world.vswitches[0][0],
                "Container.1.Name": "app",
                "Container.1.Image": "nginx",
            }
        elif action == "ExecContainerCommand":
            params.update(Command='["echo", "hi"]', Sync="true")
        elif action in ("DescribeMultiContainerGroupMetric", "DescribeContainerGroups"):
            params["ContainerGroupIds"] = json.dumps([instance_id])
        elif action == "CreateImageCache":
            params.update({"ImageCacheName": "c", "Image.1": "nginx"})
        return params

    def call(
        self,
        action: str,
        params: list[tuple[str, str]],
        *,
        raw_query: str | None = None,
        tamper: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One signed call; ``raw_query`` is sent as it is (signed as the server parses it), and
        ``tamper`` replaces headers after signing (a forged or broken signature, date, nonce...)."""
        query = "&".join(f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in params)
        if raw_query is not None:
            query = raw_query
        pairs = acs3.parse_query(query)  # what the server will parse: the signature covers that
        headers = {
            "host": "127.0.0.1",
            "x-acs-action": action,
            "x-acs-version": eci.VERSION,
            "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
        }
        signed = tuple(sorted(headers))
        canonical = acs3.canonical_request("POST", "/", pairs, headers, signed, headers["x-acs-content-sha256"])
        signature = acs3.sign(self.secret, canonical)
        headers["Authorization"] = (
            f"{acs3.ALGORITHM} Credential={self.key_id},SignedHeaders={';'.join(signed)},Signature={signature}"
        )
        headers.update(tamper or {})
        request = make_mocked_request("POST", f"/?{query}", headers=headers, payload=streams.EMPTY_PAYLOAD)
        response = self.loop.run_until_complete(asyncio.wait_for(self.eci.handle(request), timeout=20))
        assert response.body is not None
        return response.status, json.loads(bytes(response.body))  # type: ignore[arg-type]

    def close(self) -> None:
        self.cloud.store.close()
        self.loop.close()
