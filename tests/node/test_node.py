"""The virtual node on a real control plane: registration, Lease, what others set, NotReady and back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from kubernetes import client as k8s

from tests.node.conftest import Harness, wait_ready
from tests.waiting import until
from vnode.cluster import launcher
from vnode.node import resources

pytestmark = pytest.mark.cluster


def _ready(core: k8s.CoreV1Api, name: str) -> str:
    node = core.read_node(name)
    return next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "")


async def ready(core: k8s.CoreV1Api, name: str) -> str:
    return await asyncio.to_thread(_ready, core, name)


def ready_is(core: k8s.CoreV1Api, name: str, value: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await ready(core, name) == value

    return check


async def test_node_is_ready_within_5s_with_labels_taint_and_lease(harness: Harness, core: k8s.CoreV1Api) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await harness.start(wait=False)
    await until(ready_is(core, harness.node_name, "True"), within=5, what="node Ready")
    assert loop.time() - started < 5
    node = await asyncio.to_thread(core.read_node, harness.node_name)
    labels = node.metadata.labels
    assert labels["type"] == "virtual-kubelet"
    assert labels["kubernetes.io/role"] == "agent"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/hostname"] == harness.node_name
    assert ("virtual-kubelet.io/provider", "fake", "NoSchedule") in [
        (t.key, t.value, t.effect) for t in node.spec.taints
    ]
    assert {c.type for c in node.status.conditions} == {
        "Ready",
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "NetworkUnavailable",
    }
    assert "vnode" in node.status.node_info.kubelet_version
    assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250
    assert resources.quantity(node.status.capacity["pods"]) == 5000
    lease = await asyncio.to_thread(
        k8s.CoordinationV1Api(core.api_client).read_namespaced_lease, harness.node_name, "kube-node-lease"
    )
    assert lease.spec.holder_identity == f"{harness.node_name}_pod"  # the Lease is also the node's lock
    assert lease.spec.lease_duration_seconds == 40


async def test_cordon_labels_and_taints_of_others_survive_the_daemons_updates(
    harness: Harness, core: k8s.CoreV1Api, cluster: launcher.Info
) -> None:
    run = await harness.start()
    await asyncio.to_thread(cluster.kubectl, "cordon", harness.node_name)
    await asyncio.to_thread(cluster.kubectl, "label", "node", harness.node_name, "team=blue")
    await asyncio.to_thread(cluster.kubectl, "taint", "node", harness.node_name, "dedicated=gpu:NoExecute")
    await asyncio.to_thread(cluster.kubectl, "annotate", "node", harness.node_name, "owner=ops")
    await run.daemon.node.write_status(force=True)
    await run.stop()
    again = await harness.start()  # registration on an existing node patches what it owns
    await again.daemon.node.write_status(force=True)
    node = await asyncio.to_thread(core.read_node, harness.node_name)
    assert node.spec.unschedulable is True
    assert node.metadata.labels["team"] == "blue"
    assert node.metadata.annotations["owner"] == "ops"
    wanted = {"dedicated", "virtual-kubelet.io/provider", "node.kubernetes.io/unschedulable"}

    async def has_taints() -> bool:
        read = await asyncio.to_thread(core.read_node, harness.node_name)
        return {t.key for t in read.spec.taints or []} >= wanted

    # node.kubernetes.io/unschedulable is the node lifecycle controller's, added a moment after the
    # cordon (later still on a loaded machine); the daemon must not have dropped any of them.
    await until(has_taints, within=20, what=f"the taints {sorted(wanted)} on the node")


async def test_node_turns_not_ready_when_the_daemon_stops_and_ready_again_on_restart(
    harness: Harness, core: k8s.CoreV1Api
) -> None:
    run = await harness.start()
    await until(ready_is(core, harness.node_name, "True"), within=5, what="node Ready")
    await run.stop()
    # The session's controller-manager uses a 10 s node-monitor grace period.
    await until(
        ready_is(core, harness.node_name, "Unknown"),
        within=40,
        what="node NotReady (Unknown) after the lease expired",
        interval=0.5,
    )
    await harness.start()
    await until(ready_is(core, harness.node_name, "True"), within=10, what="node Ready again")


async def test_node_is_not_ready_while_the_cloud_is_unreachable(harness: Harness, core: k8s.CoreV1Api) -> None:
    await harness.start()
    harness.cloud.behaviour.unreachable = True
    await until(
        ready_is(core, harness.node_name, "False"),
        within=10,
        what="node Ready=False while the cloud is unreachable",
    )
    node = await asyncio.to_thread(core.read_node, harness.node_name)
    condition = next(c for c in node.status.conditions if c.type == "Ready")
    assert condition.reason == "ProviderUnreachable"
    harness.cloud.behaviour.unreachable = False
    await until(ready_is(core, harness.node_name, "True"), within=10, what="node Ready again")


async def test_a_second_claimant_of_the_node_stands_by_until_the_first_lets_go(
    harness: Harness, core: k8s.CoreV1Api
) -> None:
    first = await harness.start(identity="replica-a")
    second = await harness.start(identity="replica-b", wait=False)
    await until(lambda: second.daemon.ownership.ready.is_set(), within=10, what="the second claimant's first attempt")
    assert not second.daemon.ownership.holds()
    assert not second.daemon.ready.is_set()
    await first.stop()  # a clean stop releases the Lease: no need to wait for it to expire
    await wait_ready(second)
    assert second.daemon.ownership.holds()
    assert await ready(core, harness.node_name) == "True"
