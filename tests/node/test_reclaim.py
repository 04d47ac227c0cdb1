"""The cloud takes an instance back (a spot reclamation), on a real control plane with the fake cloud.

The fake cloud announces the reclamation (a ``Notice.RECLAIM`` Warning) and ends the instance
``Expired`` after the notice. A pod no controller replaces is marked ``DisruptionTarget``, runs
on and fails with the cloud's reason; a ReplicaSet's pod is deleted on the notice, so that its
replacement runs before the old instance is taken. ``vnode_reclaims_total`` counts each step.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.node.conftest import Harness, Running, pod_manifest
from tests.waiting import until
from vnode import models

pytestmark = pytest.mark.cluster


def _reclaims(run: Running, node: str, step: str) -> float:
    return run.daemon.registry.get_sample_value("vnode_reclaims_total", {"node": node, "step": step}) or 0.0


async def _pods(core: k8s.CoreV1Api, namespace: str) -> list[Any]:
    return (await asyncio.to_thread(core.list_namespaced_pod, namespace)).items


def _instance_of(harness: Harness, uid: str) -> models.InstanceState | None:
    return next((s for s in harness.cloud.instances() if s.pod_uid == uid), None)


async def _reasons(core: k8s.CoreV1Api, namespace: str, name: str) -> list[str]:
    found = await asyncio.to_thread(core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={name}")
    return [e.reason for e in found.items]


async def test_a_bare_pod_is_marked_runs_out_its_notice_and_fails_with_the_clouds_reason(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    run = await harness.start()
    await asyncio.to_thread(core.create_namespaced_pod, namespace, pod_manifest("batch", harness.node_name))

    async def running() -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "batch", namespace)
        return pod if pod.status.phase == "Running" else None

    pod = await until(running, within=20, what="pod Running")
    instance = _instance_of(harness, pod.metadata.uid)
    assert instance is not None
    harness.cloud.reclaim(instance.id, notice=4)

    async def marked() -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "batch", namespace)
        target = [c for c in pod.status.conditions or () if c.type == "DisruptionTarget"]
        return (pod, target[0]) if target else None

    pod, target = await until(marked, within=10, what="the pod marked DisruptionTarget")
    assert (target.status, target.reason) == ("True", "TerminationByKubelet")
    assert "fails when it is gone" in target.message
    assert pod.status.phase == "Running"
    assert pod.metadata.deletion_timestamp is None
    assert "Reclaiming" in await _reasons(core, namespace, "batch")
    assert _reclaims(run, harness.node_name, "reclaim-notice") == 1

    async def failed() -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "batch", namespace)
        return pod if pod.status.phase == "Failed" else None

    pod = await until(failed, within=15, what="the pod Failed once its instance is taken")
    assert pod.status.reason == "Reclaimed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 137
    assert [c.type for c in pod.status.conditions].count("DisruptionTarget") == 1  # the mark stays, once
    assert _reclaims(run, harness.node_name, "reclaimed") == 1
    assert _reclaims(run, harness.node_name, "evicted") == 0
    assert _reclaims(run, harness.node_name, "reclaim-notice") == 1  # counted once, not at every listing


async def test_a_replicasets_pod_is_replaced_before_its_instance_is_taken(
    harness: Harness, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str
) -> None:
    run = await harness.start()
    template = {"metadata": {"labels": {"app": "spot"}}, "spec": pod_manifest("unused", harness.node_name)["spec"]}
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "spot"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "spot"}}, "template": template},
    }
    apps = k8s.AppsV1Api(kube_api)
    await asyncio.to_thread(apps.create_namespaced_replica_set, namespace, replicaset)

    async def running() -> list[Any]:
        live = [p for p in await _pods(core, namespace) if not p.metadata.deletion_timestamp]
        return [p for p in live if p.status.phase == "Running"]

    [first] = await until(running, within=30, what="the ReplicaSet's pod Running")
    instance = _instance_of(harness, first.metadata.uid)
    assert instance is not None
    harness.cloud.reclaim(instance.id, notice=60)

    async def replaced() -> Any:
        now = await running()
        return now if now and all(p.metadata.uid != first.metadata.uid for p in now) else None

    [second] = await until(replaced, within=30, what="the replacement Running, the first pod on its way out")
    assert _instance_of(harness, second.metadata.uid) is not None
    assert instance.id in harness.cloud.deleted  # vnode deleted it, long before the cloud would take it
    assert _reclaims(run, harness.node_name, "evicted") == 1
    assert _reclaims(run, harness.node_name, "reclaimed") == 0


async def test_a_jobs_pod_reclaimed_is_ignored_by_its_pod_failure_policy_and_replaced(
    harness: Harness, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str
) -> None:
    # The DisruptionTarget condition lets a Job not count the reclamation against its backoffLimit.
    await harness.start()
    spec = {**pod_manifest("unused", harness.node_name)["spec"], "restartPolicy": "Never"}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "batch"},
        "spec": {
            "backoffLimit": 0,
            "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
            "template": {"metadata": {"labels": {"app": "batch"}}, "spec": spec},
        },
    }
    batch = k8s.BatchV1Api(kube_api)
    await asyncio.to_thread(batch.create_namespaced_job, namespace, job)

    async def running() -> list[Any]:
        return [p for p in await _pods(core, namespace) if p.status.phase == "Running"]

    [first] = await until(running, within=30, what="the Job's pod Running")
    instance = _instance_of(harness, first.metadata.uid)
    assert instance is not None
    harness.cloud.reclaim(instance.id, notice=3)

    async def replaced() -> list[Any]:
        return [p for p in await running() if p.metadata.uid != first.metadata.uid]

    await until(replaced, within=40, what="a new pod of the Job Running after the reclamation")
    old = await asyncio.to_thread(core.read_namespaced_pod, first.metadata.name, namespace)
    assert old.status.phase == "Failed"
    status = (await asyncio.to_thread(batch.read_namespaced_job, "batch", namespace)).status
    assert not any(c.type == "Failed" and c.status == "True" for c in status.conditions or ())


async def test_a_reclamation_without_notice_still_marks_the_pod_as_it_fails(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    run = await harness.start()
    await asyncio.to_thread(core.create_namespaced_pod, namespace, pod_manifest("sudden", harness.node_name))

    async def phase(wanted: str) -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "sudden", namespace)
        return pod if pod.status.phase == wanted else None

    pod = await until(lambda: phase("Running"), within=20, what="pod Running")
    instance = _instance_of(harness, pod.metadata.uid)
    assert instance is not None
    harness.cloud.reclaim(instance.id, notice=0)  # the notice comes with the release
    pod = await until(lambda: phase("Failed"), within=15, what="the pod Failed")
    [target] = [c for c in pod.status.conditions if c.type == "DisruptionTarget"]
    assert (target.status, target.reason) == ("True", "TerminationByKubelet")
    assert _reclaims(run, harness.node_name, "reclaimed") == 1
    assert _reclaims(run, harness.node_name, "reclaim-notice") == 0
