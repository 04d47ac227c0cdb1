"""ECI pod features (public addresses, GPUs): the daemon (ECI provider), the simulator, the real control plane."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import eci_daemon, pod_manifest
from tests.node.test_refresh_eci import groups
from tests.waiting import until
from vnode.kube import client
from vnode.provider.eci import mapping

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("eci-features")), profile="fast") as started:
        yield started


@pytest.fixture
async def eci_node(sim: Sim, kube: client.Client, core: k8s.CoreV1Api, node_name: str) -> AsyncIterator[str]:
    """A daemon with the ECI provider for ``node_name``, stopped and its node removed afterwards."""
    async with eci_daemon(sim, kube, core, node_name, "eci-features"):
        yield node_name


async def test_a_pod_asking_for_an_eip_shows_its_public_address_and_a_bad_ask_fails_naming_it(
    sim: Sim, eci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    public = {mapping.WITH_EIP: "true", mapping.EIP_BANDWIDTH: "10"}
    await asyncio.to_thread(
        core.create_namespaced_pod, namespace, pod_manifest("public", eci_node, metadata={"annotations": public})
    )
    await asyncio.to_thread(core.create_namespaced_pod, namespace, pod_manifest("private", eci_node))
    bad = {mapping.WITH_EIP: "yes"}
    await asyncio.to_thread(
        core.create_namespaced_pod, namespace, pod_manifest("bad", eci_node, metadata={"annotations": bad})
    )

    async def running_pod(name: str) -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
        return pod if pod.status.phase == "Running" else None

    async def addressed() -> Any:
        pod = await running_pod("public")
        shown = (pod.metadata.annotations or {}) if pod else {}
        return pod if {mapping.ALLOCATED_ADDRESS, mapping.ALLOCATED_EIP} <= shown.keys() else None

    pod = await until(addressed, within=30, what="the public pod Running with its allocated address and EIP id")
    (group,) = groups(sim, pod.metadata.uid)
    assert group["InternetIp"]
    assert pod.metadata.annotations[mapping.ALLOCATED_ADDRESS] == group["InternetIp"]
    status, record = sim.admin("GET", f"instances/{group['ContainerGroupId']}")
    assert status == 200, record
    assert pod.metadata.annotations[mapping.ALLOCATED_EIP] == record["eip_id"]
    assert pod.status.pod_ip == group["IntranetIp"] != group["InternetIp"]

    plain = await until(lambda: running_pod("private"), within=30, what="the private pod Running")
    assert mapping.ALLOCATED_ADDRESS not in (plain.metadata.annotations or {})
    assert groups(sim, plain.metadata.uid)[0]["InternetIp"] == ""

    async def failed() -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "bad", namespace)
        return pod if pod.status.phase == "Failed" else None

    refused = await until(failed, within=30, what="the pod with a bad EIP annotation Failed")
    assert refused.status.reason == "ProviderInvalidSpec"
    assert mapping.WITH_EIP in refused.status.message
    assert groups(sim, refused.metadata.uid) == []


async def test_a_gpu_pod_runs_on_a_gpu_type_and_a_gpu_count_no_type_offers_fails_naming_it(
    sim: Sim, eci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    node = await asyncio.to_thread(core.read_node, eci_node)
    assert node.status.capacity["nvidia.com/gpu"] == "100"

    def gpu_pod(name: str, gpus: int) -> dict[str, Any]:
        limits = {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": str(gpus)}
        return pod_manifest(name, eci_node, container={"resources": {"limits": limits}})

    await asyncio.to_thread(core.create_namespaced_pod, namespace, gpu_pod("train", 1))
    await asyncio.to_thread(core.create_namespaced_pod, namespace, gpu_pod("greedy", 16))

    async def shown(name: str, phase: str, annotation: str = "") -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
        if pod.status.phase != phase or (annotation and annotation not in (pod.metadata.annotations or {})):
            return None
        return pod

    pod = await until(lambda: shown("train", "Running", mapping.INSTANCE_SPEC), within=30, what="the GPU pod Running")
    assert pod.metadata.annotations[mapping.INSTANCE_SPEC] == "ecs.gn6i-c4g1.xlarge"
    (group,) = groups(sim, pod.metadata.uid)
    assert (group["InstanceType"], group["Cpu"], group["Memory"]) == ("ecs.gn6i-c4g1.xlarge", 4.0, 15.0)
    assert group["Containers"][0]["Gpu"] == 1

    refused = await until(lambda: shown("greedy", "Failed"), within=30, what="the 16-GPU pod Failed")
    assert refused.status.reason == "ProviderInvalidSpec"
    assert "16 nvidia.com/gpu" in refused.status.message
    assert groups(sim, refused.metadata.uid) == []
