"""GPUs on an ACI virtual node (real control plane, the daemon with the ACI provider against the
simulator): the node advertises ``nvidia.com/gpu`` from ``ACI_QUOTA_GPU``; a pod asking one GPU
with ``virtual-kubelet.io/gpu-type: V100`` runs and the official SDK reads the container group's
GPU back as count 1, SKU V100; a pod asking 3 GPUs fails naming the count, with a Warning and no
container group."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import cloud_daemon, pod_manifest
from tests.node.test_podspec_aci import group_of
from tests.waiting import until
from vnode.kube import client

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("gpu-aci")), profile="fast") as started:
        yield started


def gpu_pod(name: str, node: str, gpus: int, sku: str = "") -> dict[str, Any]:
    limits = {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": str(gpus)}
    metadata = {"annotations": {"virtual-kubelet.io/gpu-type": sku}} if sku else {}
    return pod_manifest(name, node, container={"resources": {"limits": limits}}, metadata=metadata)


async def test_a_v100_pod_runs_with_its_gpu_and_three_gpus_are_refused_naming_the_count(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    async with cloud_daemon(sim, kube, core, node_name, "gpu-aci", "aci", **{"aci.quota_gpus": 4}):
        node = await asyncio.to_thread(core.read_node, node_name)
        assert node.status.capacity["nvidia.com/gpu"] == "4"
        await asyncio.to_thread(core.create_namespaced_pod, namespace, gpu_pod("train", node_name, 1, "V100"))
        await asyncio.to_thread(core.create_namespaced_pod, namespace, gpu_pod("greedy", node_name, 3))

        async def phase(name: str, wanted: str) -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
            return pod if pod.status.phase == wanted else None

        pod = await until(lambda: phase("train", "Running"), within=60, what="the V100 pod Running")
        group = await asyncio.to_thread(group_of, sim, pod.metadata.uid)
        assert group is not None
        gpu = group.containers[0].resources.requests.gpu
        assert (gpu.count, gpu.sku) == (1, "V100")

        refused = await until(lambda: phase("greedy", "Failed"), within=30, what="the 3-GPU pod Failed")
        assert refused.status.reason == "ProviderInvalidSpec"
        assert "nvidia.com/gpu 3: ACI gives a container 1, 2 or 4 GPUs" in refused.status.message

        async def warned() -> Any:
            events = await asyncio.to_thread(
                core.list_namespaced_event, namespace, field_selector="involvedObject.name=greedy"
            )
            return next((e for e in events.items if e.type == "Warning" and "nvidia.com/gpu 3" in e.message), None)

        await until(warned, within=30, what="a Warning naming the GPU count")
        assert await asyncio.to_thread(group_of, sim, refused.metadata.uid) is None


async def test_a_gpu_pod_waits_out_a_stock_out_of_its_sku_and_runs_when_stock_returns(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    """The region's V100s run out (ARM's 409 ServiceUnavailable): the pod stays Pending with the reason,
    naming the SKU, and is created once the stock is back; no group is made meanwhile."""
    zones = {v["zone"] for v in sim.vswitches}
    for zone in zones:
        status, body = sim.admin("POST", "stock", {"zone": zone, "spec": "aci-gpu-V100", "available": 0})
        assert status == 200, body
    try:
        async with cloud_daemon(sim, kube, core, node_name, "gpu-aci-stock", "aci", **{"aci.quota_gpus": 4}):
            await asyncio.to_thread(core.create_namespaced_pod, namespace, gpu_pod("waits", node_name, 1, "V100"))

            async def waiting() -> Any:
                pod = await asyncio.to_thread(core.read_namespaced_pod, "waits", namespace)
                statuses = pod.status.container_statuses or []
                reason = statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else ""
                return pod if pod.status.phase == "Pending" and reason == "ProviderCapacity" else None

            pod = await until(waiting, within=60, what="the V100 pod Pending for want of stock")
            assert "aci-gpu-V100" in pod.status.container_statuses[0].state.waiting.message
            assert await asyncio.to_thread(group_of, sim, pod.metadata.uid) is None
            for zone in zones:
                sim.admin("POST", "stock", {"zone": zone, "spec": "aci-gpu-V100", "available": None})

            async def running() -> Any:
                pod = await asyncio.to_thread(core.read_namespaced_pod, "waits", namespace)
                return pod if pod.status.phase == "Running" else None

            await until(running, within=90, what="the V100 pod Running once the stock is back")
    finally:
        for zone in zones:
            sim.admin("POST", "stock", {"zone": zone, "spec": "aci-gpu-V100", "available": None})
