"""Fixtures for the ACI dialect and console tests: a simulated cloud served from a thread.

The official ACI SDK is synchronous, so the simulator runs on its own event loop in a
background thread; tests reach the cloud only through ``SimThread.call`` (which runs a function
on that loop), never from their own thread, because the cloud is single-threaded by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import pathlib
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from azure.core.credentials import AccessToken
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as aci_models

from vnode.cloudsim import aci, aci_dialect, cloud, lifecycle, server
from vnode.cloudsim.clock import Clock
from vnode.cloudsim.store import Store

T = TypeVar("T")

SEED = 7
TOKEN = aci.default_token(SEED)
SUBSCRIPTION = aci.default_subscription(SEED)
RESOURCE_GROUP = "vnode-rg"

# Every stage takes a known time and nothing fails, so a test can step through the states.
STEPPED = lifecycle.Profile(
    name="stepped",
    schedule=lifecycle.Delay(base=1.0),
    pull=lifecycle.Delay(base=5.0),
    create=lifecycle.Delay(base=1.0),
    start=lifecycle.Delay(base=1.0),
    terminate=lifecycle.Delay(base=2.0),
)


class StaticToken:
    """A ``TokenCredential`` that always returns one token (what a test or the playground needs)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class SimThread:
    """A cloud with the ACI dialect (and optionally more routes) on a loop in a daemon thread."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        tls_dir: pathlib.Path,
        *,
        clock: Clock,
        profile: lifecycle.Profile,
        page_size: int = 100,
        extra: Callable[[cloud.Cloud], web.Application] | None = None,
    ) -> None:
        self.state_dir, self.tls_dir = state_dir, tls_dir
        self.clock, self.profile, self.page_size = clock, profile, page_size
        self.extra = extra
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cloudsim", daemon=True)
        self.cloud: cloud.Cloud | None = None
        self.mounted: aci.Mounted | None = None
        self.server_task: asyncio.Task[None] | None = None
        self.extra_runner: web.AppRunner | None = None
        self.extra_port = 0

    def start(self) -> SimThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        store = Store(self.state_dir / "cloud.db")
        self.cloud = cloud.Cloud(store=store, clock=self.clock, profile=self.profile, seed=SEED)
        srv = server.Server(self.cloud)
        self.mounted = aci.mount(srv, self.tls_dir, tokens=[TOKEN], page_size=self.page_size, poll_interval=0.05)
        self.server_task = asyncio.create_task(srv.run())
        await asyncio.wait_for(srv.ready.wait(), timeout=10)
        if self.extra is not None:
            self.extra_runner = web.AppRunner(self.extra(self.cloud), access_log=None)
            await self.extra_runner.setup()
            site = web.TCPSite(self.extra_runner, "127.0.0.1", 0)
            await site.start()
            self.extra_port = self.extra_runner.addresses[0][1]

    def call(self, fn: Callable[[cloud.Cloud], T]) -> T:
        """Run ``fn(cloud)`` on the simulator's loop and return its result."""

        async def run() -> T:
            assert self.cloud is not None
            result = fn(self.cloud)
            self.cloud.store.flush()
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    @property
    def dialect(self) -> aci_dialect.Dialect:
        assert self.mounted is not None
        return self.mounted.dialect

    @property
    def base_url(self) -> str:
        assert self.mounted is not None
        return self.mounted.base_url

    def client(self, token: str = TOKEN, **kwargs: Any) -> ContainerInstanceManagementClient:
        return ContainerInstanceManagementClient(
            StaticToken(token),
            SUBSCRIPTION,
            base_url=self.base_url,
            connection_verify=str(self.tls_dir / "aci-ca.pem"),
            **kwargs,
        )

    def stop(self) -> None:
        async def close() -> None:
            if self.extra_runner is not None:
                await self.extra_runner.cleanup()
            if self.server_task is not None:
                self.server_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.server_task
            if self.cloud is not None:
                self.cloud.store.close()
            # Closed TLS connections finish their shutdown on later turns of the loop; let them.
            for _ in range(20):
                await asyncio.sleep(0)

        # The official SDK's error responses (kept alive by the exceptions a test inspects) hold
        # their TLS socket open until collected; collect them now, quietly, so that the server
        # sees them close and no ResourceWarning surfaces later, blamed on an unrelated test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        if self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=30)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(timeout=30)
        self.loop.close()


def group(
    image: str = "nginx",
    *,
    command: list[str] | None = None,
    restart_policy: str = "Always",
    cpu: float = 1.0,
    memory: float = 2.0,
    tags: dict[str, str] | None = None,
    containers: int = 1,
    location: str = "westeurope",
) -> aci_models.ContainerGroup:
    """A container group as a provider would write it."""
    return aci_models.ContainerGroup(
        location=location,
        os_type="Linux",
        restart_policy=restart_policy,
        tags=tags or {"NodeName": "virtual-node-aci-0", "Namespace": "default", "PodName": "web"},
        containers=[
            aci_models.Container(
                name=f"c{i}" if containers > 1 else "main",
                image=image,
                command=command,
                environment_variables=[
                    aci_models.EnvironmentVariable(name="MODE", value="demo"),
                    aci_models.EnvironmentVariable(name="SECRET", secure_value="hush"),
                ],
                ports=[aci_models.ContainerPort(port=80)],
                resources=aci_models.ResourceRequirements(
                    requests=aci_models.ResourceRequests(cpu=cpu, memory_in_gb=memory)
                ),
            )
            for i in range(containers)
        ],
        ip_address=aci_models.IpAddress(type="Private", ports=[aci_models.Port(port=80, protocol="TCP")]),
    )
