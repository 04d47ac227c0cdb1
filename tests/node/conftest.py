"""Fixtures for the daemon's tests: vnode's own async client, and daemons on the fake cloud.

A daemon runs in-process as a task on the test's event loop, with an in-memory fake provider;
stopping it is cancelling the task (the "crash" of restart-safety tests: nothing is flushed).
The fake cloud outlives a daemon, so a second daemon can be started against the same cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests import hangs
from tests.cloudsim.conftest import Sim
from vnode import daemon, settings
from vnode.cluster import launcher
from vnode.kube import client, config
from vnode.provider import registry
from vnode.provider.fake import provider as fake


@pytest.fixture
async def kube(cluster: launcher.Info) -> AsyncIterator[client.Client]:
    """vnode's lean async client, as the daemon uses it (one per test: it belongs to the test's loop)."""
    async with client.Client(config.load_kubeconfig(cluster.kubeconfig)) as api:
        yield api


class AheadClock:
    """Wall-clock seconds that a test moves forward (``advance``), for the daemon's token renewal: an
    hour of a token's life passes at once, while the rest of the daemon keeps the real time."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead

    def advance(self, seconds: float) -> None:
        self.ahead += seconds


STOP_WITHIN = 30.0  # seconds a cancelled daemon has to stop (its release waits 5 s at most per step)


@dataclasses.dataclass
class Running:
    daemon: daemon.Daemon
    task: asyncio.Task[None]
    ended: bool = False  # the test saw the daemon end on its own and checked how

    async def stop(self) -> None:
        if self.ended:
            return
        self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=STOP_WITHIN)
        if not done:
            hangs.dump_tasks()
            pytest.fail(f"the daemon did not stop within {STOP_WITHIN:.0f}s of its cancel (its tasks: stderr)")
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@dataclasses.dataclass
class Harness:
    """Start and stop daemons for one virtual node on one fake cloud."""

    node_name: str
    cloud: fake.FakeProvider
    kube: client.Client
    overrides: dict[str, Any]
    running: list[Running] = dataclasses.field(default_factory=list)

    def settings(self) -> settings.Settings:
        flags = {
            "node_name": self.node_name,
            "provider": "fake",
            "http_port": 0,
            "http_address": "127.0.0.1",
            "status_interval": 0.3,
            "secret_refresh_interval": 0.5,
            "cluster_id": "test-cluster",
            **self.overrides,
        }
        return settings.load({}, flags)

    async def start(self, *, wait: bool = True, identity: str = "") -> Running:
        """A daemon for the node; by default it restarts "in the same pod" (same Lease identity)."""
        d = daemon.Daemon(self.settings(), self.kube, self.cloud, identity=identity or f"{self.node_name}_pod")
        run = Running(d, asyncio.create_task(d.run()))
        self.running.append(run)
        if wait:
            await wait_ready(run)
        return run


async def wait_ready(run: Running, within: float = 20) -> None:
    ready = asyncio.create_task(run.daemon.ready.wait())
    done, _ = await asyncio.wait({ready, run.task}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    if run.task in done:
        ready.cancel()
        run.task.result()
        pytest.fail("the daemon stopped before it was ready")
    if ready not in done:
        ready.cancel()
        pytest.fail(f"the daemon was not ready within {within}s")


@contextlib.asynccontextmanager
async def cloud_daemon(
    sim: Sim,
    kube: client.Client,
    core: k8s.CoreV1Api,
    node_name: str,
    cluster_id: str,
    provider: str = "eci",
    *,
    wait: bool = True,
    env: dict[str, str] | None = None,
    **flags: Any,
) -> AsyncIterator[Running]:
    """A Ready daemon (``wait=False``: one just started) with ``provider`` (eci or aci) on the
    simulator ``sim`` for ``node_name``, its settings ``env`` over the simulator's; afterwards it
    is stopped and its Node and Lease are removed, also when the test fails."""
    base = {"node_name": node_name, "provider": provider, "http_port": 0, "http_address": "127.0.0.1"}
    environ = {**(sim.eci_env() if provider == "eci" else sim.aci_env()), **(env or {})}
    config = settings.load(
        environ, {**base, "status_interval": 0.3, "secret_refresh_interval": 0.5, "cluster_id": cluster_id, **flags}
    )
    cloud = registry.load(provider)(config)
    d = daemon.Daemon(config, kube, cloud, identity=f"{node_name}_pod")
    run = Running(d, asyncio.create_task(d.run()))
    try:
        if wait:
            await wait_ready(run)
        yield run
    finally:
        await run.stop()
        await cloud.close()
        with contextlib.suppress(k8s.ApiException):
            await asyncio.to_thread(core.delete_node, node_name)
        with contextlib.suppress(k8s.ApiException):
            await asyncio.to_thread(
                k8s.CoordinationV1Api(core.api_client).delete_namespaced_lease, node_name, "kube-node-lease"
            )


def eci_daemon(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, node_name: str, cluster_id: str, **flags: Any
) -> contextlib.AbstractAsyncContextManager[Running]:
    """:func:`cloud_daemon` with the ECI provider."""
    return cloud_daemon(sim, kube, core, node_name, cluster_id, "eci", **flags)


TAINT = {"key": "vnode.io/test", "value": "drain", "effect": "NoSchedule"}


@pytest.fixture
def node(core: k8s.CoreV1Api) -> Iterator[str]:
    """A Node object with no kubelet behind it, tainted so that no other test's pod lands on it (drain tests)."""
    name = f"drain-{secrets.token_hex(3)}"
    body = k8s.V1Node(
        metadata=k8s.V1ObjectMeta(name=name, labels={"type": "virtual-kubelet", "vnode.io/test": name}),
        spec=k8s.V1NodeSpec(taints=[k8s.V1Taint(**TAINT)]),
    )
    core.create_node(body)
    try:
        yield name
    finally:
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(name)


@pytest.fixture
def node_name(request: pytest.FixtureRequest) -> str:
    return f"vn-{secrets.token_hex(3)}"


@pytest.fixture
async def harness(kube: client.Client, core: k8s.CoreV1Api, node_name: str) -> AsyncIterator[Harness]:
    async with harnessed(kube, core, node_name) as h:
        yield h


@contextlib.asynccontextmanager
async def harnessed(kube: client.Client, core: k8s.CoreV1Api, node_name: str) -> AsyncIterator[Harness]:
    """A :class:`Harness` whose daemons talk to the API server through ``kube``; afterwards they are
    stopped and the node's Node and Lease removed (through ``core``), also when the test fails."""
    h = Harness(node_name, fake.FakeProvider(container_id_scheme="eci"), kube, {})
    try:
        yield h
    finally:
        for run in h.running:
            await run.stop()
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(node_name)
        with contextlib.suppress(k8s.ApiException):
            k8s.CoordinationV1Api(core.api_client).delete_namespaced_lease(node_name, "kube-node-lease")


def pod_manifest(name: str, node: str, *, image: str = "nginx:alpine", **spec: Any) -> dict[str, Any]:
    """A pod that tolerates virtual nodes and selects ``node`` (so parallel tests never share one)."""
    container: dict[str, Any] = {"name": "main", "image": image}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {
            "nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/hostname": node},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [container],
            "terminationGracePeriodSeconds": 5,
            **spec,
        },
    }
