"""Fixtures for the deployment tests: vnode's async client, and a process-provider node like vnode-host."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import secrets
from collections.abc import AsyncIterator

import pytest
from kubernetes import client as k8s

from vnode import daemon, settings
from vnode.cluster import launcher
from vnode.kube import client, config
from vnode.provider.process import provider as process


@pytest.fixture
async def kube(cluster: launcher.Info) -> AsyncIterator[client.Client]:
    async with client.Client(config.load_kubeconfig(cluster.kubeconfig)) as api:
        yield api


@pytest.fixture
async def host(cluster: launcher.Info, core: k8s.CoreV1Api, tmp_path: pathlib.Path) -> AsyncIterator[str]:
    """A process-provider node (like the playground's vnode-host) run by an in-process daemon."""
    node = f"host-{secrets.token_hex(3)}"
    provider = process.ProcessProvider(
        tmp_path / "process", api_server=cluster.server, ca_file=str(cluster.ca_file), lifeline=os.getpid()
    )
    flags = {"node_name": node, "provider": "process", "http_port": 0, "http_address": "127.0.0.1",
             "status_interval": 0.3, "cluster_id": "uninstall-test"}  # fmt: skip
    async with client.Client(config.load_kubeconfig(cluster.kubeconfig)) as kube:
        running = daemon.Daemon(settings.load({}, flags), kube, provider)
        task = asyncio.create_task(running.run())
        try:
            await asyncio.wait_for(running.ready.wait(), timeout=30)
            yield node
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            process.stop_all(provider.state_dir)
            with contextlib.suppress(k8s.ApiException):
                core.delete_node(node)
            with contextlib.suppress(k8s.ApiException):
                k8s.CoordinationV1Api(core.api_client).delete_namespaced_lease(node, "kube-node-lease")


def delete_replica_nodes(core: k8s.CoreV1Api, statefulset: str, replicas: int) -> None:
    """Remove the Nodes and Leases the StatefulSet's replicas registered (they are cluster-scoped)."""
    leases = k8s.CoordinationV1Api(core.api_client)
    for ordinal in range(replicas):
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(f"{statefulset}-{ordinal}")
        with contextlib.suppress(k8s.ApiException):
            leases.delete_namespaced_lease(f"{statefulset}-{ordinal}", "kube-node-lease")
