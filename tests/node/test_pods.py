"""Pods on the virtual node, on a real control plane with the fake cloud: run, status, events, delete, failures."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.node.conftest import Harness, pod_manifest
from tests.waiting import until
from vnode import errors, models

pytestmark = pytest.mark.cluster


async def read_pod(core: k8s.CoreV1Api, namespace: str, name: str) -> Any:
    return await asyncio.to_thread(core.read_namespaced_pod, name, namespace)


async def create_pod(core: k8s.CoreV1Api, namespace: str, body: dict[str, Any]) -> None:
    await asyncio.to_thread(core.create_namespaced_pod, namespace, body)


async def phase_is(core: k8s.CoreV1Api, namespace: str, name: str, phase: str) -> Any:
    pod = await read_pod(core, namespace, name)
    return pod if pod.status.phase == phase else None


async def reasons(core: k8s.CoreV1Api, namespace: str, name: str) -> list[str]:
    found = await asyncio.to_thread(core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={name}")
    return [e.reason for e in sorted(found.items, key=lambda e: e.metadata.creation_timestamp)]


def instances_of(harness: Harness, uid: str) -> list[models.InstanceState]:
    return [s for s in harness.cloud.instances() if s.pod_uid == uid]


async def test_a_pod_runs_with_ip_container_id_and_kubelet_events(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.cloud.behaviour.start_after = 0.5
    await harness.start()
    await create_pod(core, namespace, pod_manifest("web", harness.node_name))
    pod = await until(lambda: phase_is(core, namespace, "web", "Running"), within=20, what="pod Running")
    assert pod.spec.node_name == harness.node_name
    [instance] = instances_of(harness, pod.metadata.uid)
    assert pod.status.pod_ip == instance.ip
    assert pod.status.host_ip == "127.0.0.1"
    assert pod.status.start_time is not None
    [cs] = pod.status.container_statuses
    assert cs.container_id == f"eci://{instance.id}"
    assert cs.ready is True
    assert cs.state.running is not None
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
    want = ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    await until(lambda: _has(reasons(core, namespace, "web"), want), within=10, what=f"events {want}")
    spec = harness.cloud.spec_of(instance.id)
    assert spec.tags[models.TAG_POD_UID] == pod.metadata.uid
    assert spec.tags[models.TAG_NODE] == harness.node_name
    assert spec.client_token == pod.metadata.uid
    assert (spec.cpu, spec.memory_gib) == (2, 4)


async def _has(pending: Any, wanted: list[str]) -> bool:
    got = await pending
    return all(r in got for r in wanted)


async def test_deleting_a_pod_removes_the_instance_then_the_pod(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    await harness.start()
    await create_pod(core, namespace, pod_manifest("gone", harness.node_name))
    pod = await until(lambda: phase_is(core, namespace, "gone", "Running"), within=20, what="pod Running")
    uid = pod.metadata.uid
    await asyncio.to_thread(core.delete_namespaced_pod, "gone", namespace)

    async def pod_gone() -> bool:
        try:
            await read_pod(core, namespace, "gone")
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    await until(pod_gone, within=20, what="the pod removed")
    assert instances_of(harness, uid) == []

    async def killing() -> bool:  # events are posted in the background: it may come after the pod went
        return "Killing" in await reasons(core, namespace, "gone")

    await until(killing, within=10, what="the Killing event")


async def test_a_deleted_pod_stays_until_its_instance_has_stopped(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    """Like a kubelet: the pod object (and the token bound to it) outlives the containers' shutdown."""
    harness.cloud.behaviour.stop_takes = 5.0
    await harness.start()
    await create_pod(core, namespace, pod_manifest("slow-stop", harness.node_name))
    pod = await until(lambda: phase_is(core, namespace, "slow-stop", "Running"), within=20, what="pod Running")
    [instance] = instances_of(harness, pod.metadata.uid)
    await asyncio.to_thread(core.delete_namespaced_pod, "slow-stop", namespace, grace_period_seconds=5)

    async def delete_sent() -> bool:
        return instance.id in harness.cloud.deleted

    await until(delete_sent, within=20, what="the instance's delete sent")
    assert [s.id for s in instances_of(harness, pod.metadata.uid)] == [instance.id], "still stopping"
    still = await read_pod(core, namespace, "slow-stop")
    assert still.metadata.deletion_timestamp is not None

    async def pod_gone() -> bool:
        try:
            await read_pod(core, namespace, "slow-stop")
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    await until(pod_gone, within=30, what="the pod released once its instance stopped")
    assert instances_of(harness, pod.metadata.uid) == []


async def test_a_pod_deleted_as_its_instance_ends_shows_the_end_before_it_goes(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    """A kubelet writes the containers' end before it releases a deleted pod: a Job pod deleted as it
    succeeds must not go as Running (its Job would count a failure)."""
    harness.cloud.behaviour.exits["perl:5.34"] = (4.0, 0)
    harness.cloud.behaviour.stop_takes = 10.0
    await harness.start()
    body = pod_manifest("ending", harness.node_name, image="perl:5.34", restartPolicy="Never")
    await create_pod(core, namespace, body)
    await until(lambda: phase_is(core, namespace, "ending", "Running"), within=20, what="pod Running")
    await asyncio.to_thread(core.delete_namespaced_pod, "ending", namespace, grace_period_seconds=10)

    async def ended_while_deleted() -> Any:
        pod = await read_pod(core, namespace, "ending")
        return pod if pod.status.phase == "Succeeded" else None

    pod = await until(ended_while_deleted, within=20, what="the deleted pod Succeeded before it goes")
    assert pod.metadata.deletion_timestamp is not None
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0


async def test_env_from_configmap_secret_and_field_ref_reaches_the_instance(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    await asyncio.to_thread(
        core.create_namespaced_config_map,
        namespace,
        k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="cfg"), data={"MODE": "fast", "LEVEL": "3"}),
    )
    await asyncio.to_thread(
        core.create_namespaced_secret,
        namespace,
        k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="creds"), data={"password": base64.b64encode(b"s3cret").decode()}),
    )
    await harness.start()
    container = {
        "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "GREETING", "value": "hello $(POD_NAME)"},
        ],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "resources": {"limits": {"cpu": "7", "memory": "13Gi"}},
    }
    await create_pod(core, namespace, pod_manifest("envy", harness.node_name, container=container))
    pod = await until(lambda: phase_is(core, namespace, "envy", "Running"), within=20, what="pod Running")
    [instance] = instances_of(harness, pod.metadata.uid)
    spec = harness.cloud.spec_of(instance.id)
    env = {e.name: e.value for e in spec.containers[0].env}
    assert env["MODE"] == "fast"
    assert env["PASSWORD"] == "s3cret"
    assert env["POD_NAME"] == "envy"
    assert env["POD_NS"] == namespace
    assert env["GREETING"] == "hello envy"
    assert env["CFG_LEVEL"] == "3"
    assert (spec.cpu, spec.memory_gib) == (8, 16)  # 7 vCPU / 13 GiB rounded up to an ECI size
    # The service-account token volume every pod gets is delivered as files.
    files = {f.path for v in spec.volumes for f in v.files}
    assert {"token", "ca.crt", "namespace"} <= files


async def test_a_pod_waiting_for_a_missing_secret_starts_when_it_appears(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    await harness.start()
    container = {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "later", "key": "p"}}}]}
    await create_pod(core, namespace, pod_manifest("patient", harness.node_name, container=container))

    async def waiting_reason() -> str:
        pod = await read_pod(core, namespace, "patient")
        statuses = pod.status.container_statuses or []
        return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else ""

    assert await until(waiting_reason, within=20, what="a waiting reason") == "CreateContainerConfigError"
    ready = next(c for c in (await read_pod(core, namespace, "patient")).status.conditions if c.type == "Ready")
    assert 'secret "later"' in ready.message
    # virtual-kubelet's reason beside the kubelet's Failed, as every virtual-kubelet-based provider records it
    recorded = await until(lambda: _recorded(core, namespace, "patient", "MandatorySecretNotFound"), within=20,
                           what="a MandatorySecretNotFound event")  # fmt: skip
    assert "Failed" in recorded
    await asyncio.to_thread(
        core.create_namespaced_secret,
        namespace,
        k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="later"), string_data={"p": "now"}),
    )
    loop = asyncio.get_running_loop()
    appeared = loop.time()
    await until(lambda: phase_is(core, namespace, "patient", "Running"), within=15, what="pod Running")
    assert loop.time() - appeared < 6


async def _recorded(core: k8s.CoreV1Api, namespace: str, name: str, reason: str) -> list[str] | None:
    found = await reasons(core, namespace, name)
    return found if reason in found else None


async def test_optional_references_that_are_missing_are_skipped_with_an_event(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    await harness.start()
    env = [
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "none", "key": "k", "optional": True}}},
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": True}}},
    ]
    await create_pod(core, namespace, pod_manifest("relaxed", harness.node_name, container={"env": env}))
    await until(lambda: phase_is(core, namespace, "relaxed", "Running"), within=20, what="pod Running")
    found = await until(lambda: _recorded(core, namespace, "relaxed", "OptionalSecretNotFound"), within=20,
                        what="an OptionalSecretNotFound event")  # fmt: skip
    assert "OptionalConfigMapNotFound" in found


async def test_a_pod_too_big_for_any_instance_fails_fast(harness: Harness, core: k8s.CoreV1Api, namespace: str) -> None:
    await harness.start()
    container = {"resources": {"requests": {"cpu": "65", "memory": "64Gi"}}}
    body = pod_manifest("huge", harness.node_name, container=container)
    await create_pod(core, namespace, body)
    pod = await until(lambda: phase_is(core, namespace, "huge", "Failed"), within=20, what="pod Failed")
    assert pod.status.reason == "ProviderInvalidSpec"
    assert "65 vCPU" in pod.status.message
    assert harness.cloud.instances() == []
    assert "Failed" in await reasons(core, namespace, "huge")


async def test_an_unsupported_volume_fails_fast_naming_it(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    await harness.start()
    body = pod_manifest("hosty", harness.node_name, volumes=[{"name": "h", "hostPath": {"path": "/var"}}])
    await create_pod(core, namespace, body)
    pod = await until(lambda: phase_is(core, namespace, "hosty", "Failed"), within=20, what="pod Failed")
    assert "hostPath" in pod.status.message


async def test_a_daemonset_pod_is_refused_with_a_clear_status(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    await harness.start()
    apps = k8s.AppsV1Api(core.api_client)
    template = pod_manifest("agent", harness.node_name)
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template["spec"]},
        },
    }
    await asyncio.to_thread(apps.create_namespaced_daemon_set, namespace, ds)

    async def refused() -> Any:
        pods = await asyncio.to_thread(core.list_namespaced_pod, namespace)
        for pod in pods.items:
            ready = next((c for c in pod.status.conditions or [] if c.type == "Ready"), None)
            if ready is not None and ready.reason == "DaemonSetPodsNotSupported":
                return pod
        return None

    pod = await until(refused, within=30, what="the DaemonSet pod refused")
    assert pod.status.phase == "Pending"
    assert harness.cloud.instances() == []


async def test_an_instance_lost_in_the_cloud_fails_the_pod_so_it_is_replaced(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    await harness.start()
    await create_pod(core, namespace, pod_manifest("lost", harness.node_name))
    pod = await until(lambda: phase_is(core, namespace, "lost", "Running"), within=20, what="pod Running")
    [instance] = instances_of(harness, pod.metadata.uid)
    harness.cloud.vanish(instance.id)
    pod = await until(lambda: phase_is(core, namespace, "lost", "Failed"), within=20, what="pod Failed")
    assert pod.status.reason == "ProviderInstanceGone"


async def test_a_finished_container_makes_the_pod_succeed(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.cloud.behaviour.exits["perl:5.34"] = (0.5, 0)
    await harness.start()
    body = pod_manifest("job", harness.node_name, image="perl:5.34", restartPolicy="Never")
    await create_pod(core, namespace, body)
    pod = await until(lambda: phase_is(core, namespace, "job", "Succeeded"), within=20, what="pod Succeeded")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert terminated.reason == "Completed"


async def test_throttling_and_5xx_storms_lose_no_pod_and_duplicate_no_instance(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    behaviour = harness.cloud.behaviour
    behaviour.throttle_burst, behaviour.throttle_refill = 3, 10.0
    behaviour.error_rate = 0.3
    behaviour.fail_next = [errors.Throttled("slow down", code="Throttling.User", retry_after=0.2)] * 3
    run = await harness.start()
    names = [f"storm-{i}" for i in range(20)]
    await asyncio.gather(*(create_pod(core, namespace, pod_manifest(n, harness.node_name)) for n in names))

    async def all_running() -> bool:
        pods = await asyncio.to_thread(core.list_namespaced_pod, namespace)
        return sum(p.status.phase == "Running" for p in pods.items) == len(names)

    await until(all_running, within=60, what="all 20 pods Running", interval=0.5)
    uids = [s.pod_uid for s in harness.cloud.instances()]
    assert len(uids) == len(set(uids)) == len(names)
    retries = run.daemon.registry.get_sample_value(
        "vnode_retries_total", {"node": harness.node_name, "reason": "Throttling.User"}
    )
    assert retries
    assert retries >= 3
    throttles = run.daemon.registry.get_sample_value(
        "vnode_cloud_throttles_total", {"node": harness.node_name, "action": "create"}
    )
    assert throttles
    assert throttles >= 3
