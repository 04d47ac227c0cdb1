"""Configuration that changes behaviour: the live eci-profile ConfigMap, vSwitch failover, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

import pytest
from kubernetes import client as k8s

from tests.node.conftest import Harness, pod_manifest
from tests.node.test_pods import create_pod, phase_is
from tests.waiting import until
from vnode import models
from vnode.provider import base
from vnode.provider.fake import provider as fake

pytestmark = pytest.mark.cluster


@pytest.fixture
async def profile_name(core: k8s.CoreV1Api, node_name: str) -> AsyncIterator[str]:
    """A profile ConfigMap of this test's own in kube-system (the default name is shared by the suite)."""
    name = f"eci-profile-{node_name}"
    try:
        yield name
    finally:
        with contextlib.suppress(k8s.ApiException):
            await asyncio.to_thread(core.delete_namespaced_config_map, name, "kube-system")


def ignored(caplog: pytest.LogCaptureFixture, profile_name: str) -> bool:
    """Whether the daemon logged that it ignored an invalid version of the profile."""
    return any(
        r.levelno == logging.WARNING and profile_name in r.getMessage() and "ignored" in r.getMessage()
        for r in caplog.records
    )


async def test_profile_changes_apply_to_new_pods_only(
    harness: Harness, core: k8s.CoreV1Api, namespace: str, profile_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    harness.overrides.update({"profile_configmap": f"kube-system/{profile_name}", "fake.vswitches": "vsw-a"})
    run = await harness.start()
    await create_pod(core, namespace, pod_manifest("before", harness.node_name))
    before = await until(lambda: phase_is(core, namespace, "before", "Running"), within=20, what="first pod Running")
    body = k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name=profile_name),
        data={"vSwitchIds": "vsw-z", "defaultCpu": "4", "defaultMemory": "8"},
    )
    await asyncio.to_thread(core.create_namespaced_config_map, "kube-system", body)
    await until(lambda: run.daemon.profile.vswitches == ("vsw-z",), within=10, what="the profile applied")
    await create_pod(core, namespace, pod_manifest("after", harness.node_name))
    after = await until(lambda: phase_is(core, namespace, "after", "Running"), within=20, what="second pod Running")
    by_pod = {s.pod_uid: s for s in harness.cloud.instances()}
    old, new = by_pod[before.metadata.uid], by_pod[after.metadata.uid]
    assert (old.vswitch, old.cpu, old.memory_gib) == ("vsw-a", 2, 4)  # untouched by the change
    assert (new.vswitch, new.cpu, new.memory_gib) == ("vsw-z", 4, 8)
    # An invalid profile is ignored; the previous one stays.
    body.data = {"defaultCpu": "lots"}
    await asyncio.to_thread(core.replace_namespaced_config_map, profile_name, "kube-system", body)
    await until(lambda: ignored(caplog, profile_name), within=10, what="the invalid profile seen and ignored")
    assert run.daemon.profile.vswitches == ("vsw-z",)


async def test_stock_out_in_the_first_vswitch_starts_pods_in_the_second(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.overrides["fake.vswitches"] = "vsw-a,vsw-b"
    harness.cloud.behaviour.stock_out = {"vsw-a"}
    await harness.start()
    await create_pod(core, namespace, pod_manifest("spill", harness.node_name))
    pod = await until(lambda: phase_is(core, namespace, "spill", "Running"), within=20, what="pod Running")
    [instance] = [s for s in harness.cloud.instances() if s.pod_uid == pod.metadata.uid]
    assert instance.vswitch == "vsw-b"


async def test_everywhere_out_of_stock_keeps_the_pod_pending_with_the_reason_then_it_starts(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.overrides["fake.vswitches"] = "vsw-a"
    harness.cloud.behaviour.stock_out = {"vsw-a"}
    await harness.start()
    await create_pod(core, namespace, pod_manifest("wait", harness.node_name))

    async def reason() -> str:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "wait", namespace)
        ready = next((c for c in pod.status.conditions or [] if c.type == "Ready"), None)
        return ready.reason if ready is not None and ready.reason else ""

    assert await until(reason, within=20, what="a Ready reason") == "ProviderCapacity"
    harness.cloud.behaviour.stock_out = set()
    await until(lambda: phase_is(core, namespace, "wait", "Running"), within=30, what="pod Running once stock is back")


async def test_one_status_write_per_transition_and_metrics(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.cloud.behaviour.start_after = 1.0
    run = await harness.start()
    node = harness.node_name
    sample = run.daemon.registry.get_sample_value
    await until(lambda: sample("vnode_cost_dollars", {"node": node}) is not None, within=10, what="the cost gauge")
    idle = {name: sample(name, {"node": node}) for name in ("vnode_cost_dollars", "vnode_spot_saved_dollars")}
    assert idle == {"vnode_cost_dollars": 0.0, "vnode_spot_saved_dollars": 0.0}, "an idle virtual node costs nothing"
    names = [f"w-{i}" for i in range(10)]
    await asyncio.gather(*(create_pod(core, namespace, pod_manifest(n, harness.node_name)) for n in names))
    for name in names:
        await until(lambda name=name: phase_is(core, namespace, name, "Running"), within=30, what=f"{name} Running")
    writes = sample("vnode_pod_status_writes_total", {"node": node})
    assert writes is not None
    assert writes <= 2 * len(names)  # Pending (ContainerCreating), then Running: nothing more
    await until(
        lambda: sample("vnode_pods", {"node": node, "phase": "Running"}) == len(names),
        within=10,
        what="vnode_pods{phase=Running}",
    )
    assert sample("vnode_cloud_calls_total", {"node": node, "action": "create", "result": "ok"}) == len(names)
    await until(lambda: sample("vnode_work_queue_depth", {"node": node}) == 0, within=10, what="no work waiting")
    await until(lambda: (sample("vnode_cost_dollars", {"node": node}) or 0) > 0, within=10, what="a cost")
    by_owner = {"node": node, "namespace": namespace, "owner": "(none)"}  # bare pods
    await until(
        lambda: (sample("vnode_workload_cost_dollars_total", by_owner) or 0) > 0, within=10, what="a namespace's cost"
    )


async def test_a_pod_that_starts_before_the_next_listing_gets_one_status_write(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.cloud.behaviour.start_after = 0.05  # Pending in the create's answer, Running in the next listing
    run = await harness.start()
    names = [f"one-{i}" for i in range(10)]
    await asyncio.gather(*(create_pod(core, namespace, pod_manifest(n, harness.node_name)) for n in names))
    for name in names:
        await until(lambda name=name: phase_is(core, namespace, name, "Running"), within=30, what=f"{name} Running")
    writes = run.daemon.registry.get_sample_value("vnode_pod_status_writes_total", {"node": harness.node_name})
    assert writes == len(names)  # no Pending (ContainerCreating) write before the Running one


async def test_a_listing_follows_soon_after_a_create_even_with_a_long_interval(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.cloud.behaviour.start_after = 0.1  # Pending in the create's answer
    harness.overrides["status_interval"] = 120.0  # the periodic listing alone would not come within the test
    await harness.start()
    await create_pod(core, namespace, pod_manifest("soon", harness.node_name))
    await until(lambda: phase_is(core, namespace, "soon", "Running"), within=20, what="pod Running")


class PushingCloud(fake.FakeProvider):
    """A fake cloud that also pushes every instance's state a few times a second (SupportsPush)."""

    async def watch(self, tags: Mapping[str, str]) -> AsyncIterator[models.InstanceState]:
        while True:
            for state in await self.list(tags):
                yield state
            await asyncio.sleep(0.2)


async def test_a_provider_that_pushes_updates_pods_between_listings(
    core: k8s.CoreV1Api, namespace: str, harness: Harness
) -> None:
    harness.cloud = PushingCloud(fake.Behaviour(start_after=1.0), container_id_scheme="eci")
    assert isinstance(harness.cloud, base.SupportsPush)
    harness.overrides["status_interval"] = 60.0  # one listing at start, then only pushes
    await harness.start()
    await create_pod(core, namespace, pod_manifest("pushed", harness.node_name))
    await until(lambda: phase_is(core, namespace, "pushed", "Running"), within=20, what="pod Running by push")
