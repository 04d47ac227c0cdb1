"""A virtual node on the process provider runs real pods as host processes, as the playground's vnode-host does."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.waiting import wait_for
from vnode import daemon, models, settings
from vnode.cluster import launcher
from vnode.kube import client, config
from vnode.node import deadline
from vnode.provider import base
from vnode.provider.process import provider as process

pytestmark = pytest.mark.cluster


LogOptions = base.LogRequest


@dataclasses.dataclass
class Host:
    node: str
    provider: process.ProcessProvider


@pytest.fixture
async def host(cluster: launcher.Info, core: k8s.CoreV1Api, tmp_path: pathlib.Path) -> AsyncIterator[Host]:
    """A daemon for a process-provider node, in this event loop; its processes are killed afterwards."""
    node = f"host-{secrets.token_hex(3)}"
    provider = process.ProcessProvider(
        tmp_path / "process", api_server=cluster.server, ca_file=str(cluster.ca_file), lifeline=os.getpid()
    )
    flags = {"node_name": node, "provider": "process", "http_port": 0, "http_address": "127.0.0.1",
             "status_interval": 0.3, "cluster_id": "process-test"}  # fmt: skip
    async with client.Client(config.load_kubeconfig(cluster.kubeconfig)) as kube:
        running = daemon.Daemon(settings.load({}, flags), kube, provider)
        task = asyncio.create_task(running.run())
        try:
            await asyncio.wait_for(running.ready.wait(), timeout=30)
            yield Host(node, provider)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            process.stop_all(provider.state_dir)
            with contextlib.suppress(k8s.ApiException):
                core.delete_node(node)
            with contextlib.suppress(k8s.ApiException):
                k8s.CoordinationV1Api(core.api_client).delete_namespaced_lease(node, "kube-node-lease")


def pod(name: str, node: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "main",
                    "image": "vnode",
                    "command": command,
                    "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                }
            ],
            "terminationGracePeriodSeconds": 5,
            **spec,
        },
    }


async def test_a_pod_runs_as_a_process_with_its_service_account_and_exit_code(
    host: Host, cluster: launcher.Info, core: k8s.CoreV1Api, namespace: str
) -> None:
    kubectl = cluster.bin_dir / "kubectl"
    script = f'echo "I am $POD_NAME"; {kubectl} auth whoami -o jsonpath="{{.status.userInfo.username}}"; echo; exit 3'
    core.create_namespaced_pod(namespace, pod("job", host.node, ["sh", "-c", script], restartPolicy="Never"))

    def finished() -> k8s.V1Pod | None:
        got: k8s.V1Pod = core.read_namespaced_pod("job", namespace)
        return got if got.status.phase in ("Succeeded", "Failed") else None

    done = await asyncio.to_thread(wait_for, finished, timeout=60, what="the pod to finish")
    assert done.spec.node_name == host.node
    assert done.status.phase == "Failed"
    assert done.status.pod_ip == "127.0.0.1"
    (status,) = done.status.container_statuses
    assert status.state.terminated.exit_code == 3
    assert status.container_id.startswith("process://")

    (instance,) = await host.provider.list({models.TAG_POD_UID: done.metadata.uid})
    log = b"".join([chunk async for chunk in host.provider.logs(instance.id, "main", LogOptions())]).decode()
    assert log.splitlines() == ["I am job", f"system:serviceaccount:{namespace}:default"]


async def test_deleting_the_pod_stops_its_process(host: Host, core: k8s.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod("web", host.node, ["sleep", "600"]))

    def running() -> bool:
        return bool(core.read_namespaced_pod("web", namespace).status.phase == "Running")

    await asyncio.to_thread(wait_for, running, timeout=60, what="the pod to run")
    assert len(host.provider.pids()) == 2  # its runner and its container
    core.delete_namespaced_pod("web", namespace)

    def gone() -> bool:
        return not core.list_namespaced_pod(namespace, field_selector="metadata.name=web").items

    await asyncio.to_thread(wait_for, gone, timeout=30, what="the pod to go")
    await asyncio.to_thread(wait_for, lambda: not host.provider.pids(), timeout=10, what="its processes to end")


async def test_a_pod_past_its_active_deadline_fails_and_its_process_stops(
    host: Host, core: k8s.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, pod("bounded", host.node, ["sleep", "600"], activeDeadlineSeconds=3))

    def phase(wanted: str) -> k8s.V1Pod | None:
        got: k8s.V1Pod = core.read_namespaced_pod("bounded", namespace)
        return got if got.status.phase == wanted else None

    await asyncio.to_thread(wait_for, lambda: phase("Running"), timeout=60, what="the pod to run")
    failed = await asyncio.to_thread(
        wait_for, lambda: phase("Failed"), timeout=30, what="the pod Failed by its deadline"
    )
    assert (failed.status.reason, failed.status.message) == (deadline.REASON, deadline.MESSAGE)
    await asyncio.to_thread(wait_for, lambda: not host.provider.pids(), timeout=30, what="its processes to end")


async def test_what_the_process_provider_cannot_do_is_refused_aloud(
    host: Host, core: k8s.CoreV1Api, namespace: str
) -> None:
    """The host's PID namespace and a privileged container are refused on the process provider as on
    the clouds: the pod fails at once naming each field, and no process runs."""
    body = pod("refused", host.node, ["sleep", "600"], hostPID=True)
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    core.create_namespaced_pod(namespace, body)

    def failed() -> k8s.V1Pod | None:
        got: k8s.V1Pod = core.read_namespaced_pod("refused", namespace)
        return got if got.status.phase == "Failed" else None

    done = await asyncio.to_thread(wait_for, failed, timeout=30, what="the refused pod Failed")
    ready = next(c for c in done.status.conditions if c.type == "Ready")
    assert done.status.reason == ready.reason == "UnsupportedField"
    assert "spec.hostPID" in ready.message
    assert "privileged" in ready.message
    assert ready.message.endswith("(provider process)")
    assert not host.provider.pids()
