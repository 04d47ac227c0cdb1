"""Acceptance with real virtual nodes: a labelled namespace's Deployment Running on vnode's own nodes.

Two ``vnode.daemon.Daemon`` nodes (on the in-memory fake provider, as in tests/node) register
real virtual nodes; the webhook sends a 10-replica Deployment to them; all 10 must be Running,
spread over both. Skipped until ``vnode run`` is registered (the daemon's pod path is complete).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.waiting import until, wait_for
from tests.webhook.conftest import WebhookFactory, deployment, node_ready, pods_of
from vnode import cli
from vnode.cluster import launcher

if "run" not in cli.COMMANDS:
    pytest.skip("needs the daemon: runs once `vnode run` is registered in vnode/cli.py", allow_module_level=True)
daemon = pytest.importorskip("vnode.daemon", reason="needs the daemon (vnode run)")
fake = pytest.importorskip("vnode.provider.fake.provider", reason="needs the fake provider")
settings = pytest.importorskip("vnode.settings")
kube_client = pytest.importorskip("vnode.kube.client")
kube_config = pytest.importorskip("vnode.kube.config")

pytestmark = pytest.mark.cluster


@pytest.fixture
async def virtual_nodes(cluster: launcher.Info, core: k8s.CoreV1Api) -> AsyncIterator[list[str]]:
    """Two daemons, each one Ready virtual node, on this test's event loop."""
    names = [f"vn-wh-{secrets.token_hex(3)}" for _ in range(2)]
    async with kube_client.Client(kube_config.load_kubeconfig(cluster.kubeconfig)) as kube:
        tasks = []
        try:
            for name in names:
                flags = {"node_name": name, "provider": "fake", "http_port": 0, "http_address": "127.0.0.1",
                         "status_interval": 0.3, "cluster_id": "webhook-e2e"}  # fmt: skip
                d = daemon.Daemon(settings.load({}, flags), kube, fake.FakeProvider(container_id_scheme="eci"))
                tasks.append(asyncio.create_task(d.run()))
                async with asyncio.timeout(30):
                    await d.ready.wait()
            # A new node carries the not-ready taint until the node lifecycle controller lifts it,
            # a few seconds after the Ready condition; till then the scheduler passes it over.
            for name in names:
                await asyncio.to_thread(
                    wait_for, lambda name=name: node_ready(core, name), timeout=60, what=f"node {name} schedulable"
                )
            yield names
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for name in names:
                with contextlib.suppress(k8s.ApiException):
                    await asyncio.to_thread(core.delete_node, name)


async def test_labelled_namespace_runs_a_deployment_on_every_ready_virtual_node(
    webhooks: WebhookFactory, virtual_nodes: list[str], core: k8s.CoreV1Api, namespace: str
) -> None:
    await asyncio.to_thread(webhooks.serve)
    webhooks.label(namespace, **{"virtual-node-affinity-injection": "enabled"})
    # Stay on this test's nodes: other tests may register virtual nodes at the same time.
    term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": virtual_nodes}]}
    spec: dict[str, Any] = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}}  # fmt: skip
    apps = k8s.AppsV1Api(core.api_client)
    await asyncio.to_thread(apps.create_namespaced_deployment, namespace, deployment("nginx", 10, extra_spec=spec))
    pods: list[Any] = []

    async def all_running() -> bool:
        pods[:] = await asyncio.to_thread(pods_of, core, namespace, "nginx")
        return len(pods) == 10 and all(p.status.phase == "Running" for p in pods)

    def what() -> str:
        seen = collections.Counter((p.status.phase, p.spec.node_name) for p in pods)
        why = {c.message for p in pods for c in p.status.conditions or [] if c.message}
        return f"10 nginx pods Running on virtual nodes: {seen} {why}"

    await until(all_running, within=90, what=what, interval=0.3)
    placed = collections.Counter(p.spec.node_name for p in pods)
    assert set(placed) == set(virtual_nodes), placed
    assert all((p.spec.node_selector or {}).get("type") == "virtual-kubelet" for p in pods)
    await asyncio.to_thread(apps.delete_namespaced_deployment, "nginx", namespace)
