"""An ACI Spot pod through an eviction (real control plane, the daemon with the ACI provider against the
simulator): ACI restarts an evicted Spot group in place, so the pod stays Running, its container shows
the restart (restart count, last state) and the group's Warning reaches the pod as an event; the
node's cost counts the group at its Spot price."""

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
from tests.provider.test_aci_spot import _instance_id
from tests.waiting import until
from vnode.kube import client
from vnode.provider.aci import mapping

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("spot-aci")), profile="fast") as started:
        yield started


async def test_an_evicted_spot_pod_restarts_in_place_and_says_why(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    spot = pod_manifest("spot", node_name, metadata={"annotations": {mapping.PRIORITY: "Spot"}})
    async with cloud_daemon(sim, kube, core, node_name, "spot-aci", "aci"):
        await asyncio.to_thread(core.create_namespaced_pod, namespace, spot)

        async def phase_running() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "spot", namespace)
            return pod if pod.status.phase == "Running" else None

        pod = await until(phase_running, within=60, what="the Spot pod Running")
        group = await asyncio.to_thread(group_of, sim, pod.metadata.uid)
        assert group is not None
        assert group.priority == "Spot"
        status, body = sim.admin("POST", f"instances/{_instance_id(sim, group.name)}/reclaim", {})
        assert status == 200, body

        async def restarted() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "spot", namespace)
            statuses = pod.status.container_statuses or ()
            return pod if statuses and statuses[0].restart_count == 1 and statuses[0].ready else None

        pod = await until(restarted, within=60, what="the container restarted by the eviction, ready again")
        assert pod.status.phase == "Running"
        assert pod.metadata.deletion_timestamp is None
        last = pod.status.container_statuses[0].last_state.terminated
        assert last.exit_code == 137
        assert not any(c.type == "DisruptionTarget" for c in pod.status.conditions or ())

        async def warned() -> Any:
            events = await asyncio.to_thread(
                core.list_namespaced_event, namespace, field_selector="involvedObject.name=spot"
            )
            return [e for e in events.items if e.type == "Warning" and e.reason == "SpotEviction"]

        await until(warned, within=30, what="the eviction as a Warning event on the pod")
