"""Restart safety in process on the fake cloud: a daemon stopped mid-create leaves exactly one
instance per pod and no orphan; adoption rewrites no status and records no event twice.

The acceptance versions on the real pieces (``kill -9`` of a ``vnode run`` child against the
simulator, and 500 pods on one node) are in tests/provider/test_e2e_scale.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.node.conftest import Harness, pod_manifest
from tests.waiting import until
from vnode import models

pytestmark = pytest.mark.cluster


async def create_pods(core: k8s.CoreV1Api, namespace: str, names: list[str], node: str, parallel: int = 16) -> None:
    slots = asyncio.Semaphore(parallel)

    async def one(name: str) -> None:
        async with slots:
            await asyncio.to_thread(core.create_namespaced_pod, namespace, pod_manifest(name, node))

    await asyncio.gather(*(one(n) for n in names))


async def running(core: k8s.CoreV1Api, namespace: str) -> int:
    pods = await asyncio.to_thread(core.list_namespaced_pod, namespace, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(pods.data)["items"]
    return sum(p["status"].get("phase") == "Running" for p in items)


async def test_a_daemon_killed_while_creating_50_pods_leaves_exactly_50_instances_and_no_orphan(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    cloud = harness.cloud
    cloud.behaviour.answer_latency = 0.3  # the instance exists before the daemon hears of it
    first = await harness.start()
    names = [f"p-{i:02d}" for i in range(52)]
    await create_pods(core, namespace, names, harness.node_name)
    await until(lambda: len(cloud.created) >= 15, within=30, what="some instances being created")
    await first.stop()  # mid-create: answers lost, pods without status
    assert len(cloud.created) < 52
    # While the daemon is down, two pods are force-deleted: their instances become orphans; 50 remain.
    pods = await asyncio.to_thread(core.list_namespaced_pod, namespace)
    with_instance = {s.pod_uid for s in cloud.instances()}
    doomed = [p for p in pods.items if p.metadata.uid in with_instance][:2]
    for pod in doomed:
        await asyncio.to_thread(core.delete_namespaced_pod, pod.metadata.name, namespace, grace_period_seconds=0)
    cloud.behaviour.answer_latency = 0
    await harness.start()
    await until(lambda: running(core, namespace), within=60, what="pods Running after the restart")

    async def settled() -> bool:
        return await running(core, namespace) == 50 and len(cloud.instances()) == 50

    await until(settled, within=60, what="50 pods Running on 50 instances", interval=0.5)
    uids = [s.pod_uid for s in cloud.instances()]
    assert len(set(uids)) == len(uids) == 50
    live = {p.metadata.uid for p in (await asyncio.to_thread(core.list_namespaced_pod, namespace)).items}
    assert set(uids) == live
    assert not {p.metadata.uid for p in doomed} & set(uids)
    assert all(s.tags[models.TAG_NODE] == harness.node_name for s in cloud.instances())


async def test_a_restart_adopts_running_instances_without_touching_them(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    first = await harness.start()
    await create_pods(core, namespace, ["a", "b", "c"], harness.node_name)
    await until(lambda: _count_is(core, namespace, 3), within=30, what="3 pods Running")
    before = {s.id for s in harness.cloud.instances()}
    writes = first.daemon.registry.get_sample_value("vnode_pod_status_writes_total", {"node": harness.node_name})
    await first.stop()
    second = await harness.start()
    await second.daemon.pods.collect_orphans()
    assert {s.id for s in harness.cloud.instances()} == before
    assert harness.cloud.deleted == []
    # The adopted pods already show the cloud's state: no status is rewritten.
    again = second.daemon.registry.get_sample_value("vnode_pod_status_writes_total", {"node": harness.node_name})
    assert writes
    assert not again
    await second.daemon.recorder.drain()
    events = await asyncio.to_thread(core.list_namespaced_event, namespace, field_selector="involvedObject.name=a")
    assert [e.reason for e in events.items].count("Started") == 1  # not recorded again by the new daemon


async def _count_is(core: k8s.CoreV1Api, namespace: str, n: int) -> bool:
    return await running(core, namespace) == n


async def test_a_pod_deleted_while_its_instance_is_being_created_leaves_no_instance(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.cloud.behaviour.answer_latency = 1.0
    await harness.start()
    await asyncio.to_thread(core.create_namespaced_pod, namespace, pod_manifest("brief", harness.node_name))
    await until(lambda: harness.cloud.created, within=20, what="the create under way")
    await asyncio.to_thread(core.delete_namespaced_pod, "brief", namespace)

    async def gone() -> bool:
        found = await asyncio.to_thread(core.list_namespaced_pod, namespace)
        return not found.items

    await until(gone, within=20, what="the pod removed")
    assert harness.cloud.instances() == []
