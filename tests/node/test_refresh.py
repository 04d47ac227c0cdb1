"""ConfigMap and Secret updates reach running pods' volumes (not their env), on a real control plane."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.node import least_privilege
from tests.node.conftest import Harness, harnessed, pod_manifest
from tests.waiting import until
from vnode import models
from vnode.cluster import launcher

pytestmark = pytest.mark.cluster


async def running(core: k8s.CoreV1Api, namespace: str, name: str) -> Any:
    pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
    return pod if pod.status.phase == "Running" else None


def files(harness: Harness, uid: str, volume: str) -> dict[str, bytes]:
    [instance] = [s for s in harness.cloud.instances() if s.pod_uid == uid]
    [vol] = [v for v in harness.cloud.spec_of(instance.id).volumes if v.name == volume]
    return {f.path: f.content for f in vol.files}


def env(harness: Harness, uid: str) -> dict[str, str]:
    [instance] = [s for s in harness.cloud.instances() if s.pod_uid == uid]
    return {e.name: e.value for e in harness.cloud.spec_of(instance.id).containers[0].env}


def updates_of(harness: Harness, uid: str) -> list[tuple[str, str, tuple[str, ...]]]:
    ids = {s.id for s in harness.cloud.instances() if s.pod_uid == uid}
    return [u for u in harness.cloud.volume_updates if u[0] in ids]


async def reasons(core: k8s.CoreV1Api, namespace: str, name: str) -> list[str]:
    found = await asyncio.to_thread(core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={name}")
    return [e.reason for e in found.items]


async def test_configmap_and_secret_updates_reach_volumes_of_running_pods_only_where_changed(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    cm = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="app"), data={"app.conf": "mode=one"})
    await asyncio.to_thread(core.create_namespaced_config_map, namespace, cm)
    other = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="other"), data={"x": "1"})
    await asyncio.to_thread(core.create_namespaced_config_map, namespace, other)
    secret = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="creds"), data={"pw": base64.b64encode(b"old").decode()})
    await asyncio.to_thread(core.create_namespaced_secret, namespace, secret)
    await harness.start()
    changed = pod_manifest(
        "changed",
        harness.node_name,
        container={
            "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "app.conf"}}}],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}, {"name": "sec", "mountPath": "/etc/sec"}],
        },
        volumes=[
            {"name": "cfg", "configMap": {"name": "app"}},
            {"name": "sec", "secret": {"secretName": "creds"}},
        ],
    )
    unchanged = pod_manifest(
        "unchanged",
        harness.node_name,
        container={"volumeMounts": [{"name": "cfg", "mountPath": "/etc/other"}]},
        volumes=[{"name": "cfg", "configMap": {"name": "other"}}],
    )
    await asyncio.to_thread(core.create_namespaced_pod, namespace, changed)
    await asyncio.to_thread(core.create_namespaced_pod, namespace, unchanged)
    pod = await until(lambda: running(core, namespace, "changed"), within=20, what="pod changed Running")
    still = await until(lambda: running(core, namespace, "unchanged"), within=20, what="pod unchanged Running")
    uid = pod.metadata.uid
    assert files(harness, uid, "cfg") == {"app.conf": b"mode=one"}

    cm.data = {"app.conf": "mode=two"}
    await asyncio.to_thread(core.replace_namespaced_config_map, "app", namespace, cm)
    await until(
        lambda: files(harness, uid, "cfg") == {"app.conf": b"mode=two"}, within=20, what="the new ConfigMap content"
    )
    assert env(harness, uid)["MODE"] == "mode=one"  # env stays as the container started, as on a kubelet
    assert files(harness, uid, "sec") == {"pw": b"old"}

    secret.data = {"pw": base64.b64encode(b"new").decode()}
    await asyncio.to_thread(core.replace_namespaced_secret, "creds", namespace, secret)
    await until(lambda: files(harness, uid, "sec") == {"pw": b"new"}, within=20, what="the new Secret content")
    await until(
        lambda: _has(core, namespace, "changed", "VolumesUpdated"),
        within=20,
        what="a VolumesUpdated event",
    )

    assert len(updates_of(harness, uid)) == 2  # one per change, each with its own client token
    assert len({token for _, token, _ in updates_of(harness, uid)}) == 2
    assert updates_of(harness, still.metadata.uid) == []  # its ConfigMap did not change: no call
    [instance] = [s for s in harness.cloud.instances() if s.pod_uid == uid]
    assert instance.status in (models.InstanceStatus.RUNNING, models.InstanceStatus.PENDING)


async def _has(core: k8s.CoreV1Api, namespace: str, name: str, reason: str) -> bool:
    return reason in await reasons(core, namespace, name)


async def test_a_change_made_while_the_daemon_was_down_is_sent_after_its_restart_and_applied_once(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    cm = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="app"), data={"app.conf": "mode=one"})
    await asyncio.to_thread(core.create_namespaced_config_map, namespace, cm)
    first = await harness.start()
    body = pod_manifest(
        "web",
        harness.node_name,
        container={"volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]},
        volumes=[{"name": "cfg", "configMap": {"name": "app"}}],
    )
    await asyncio.to_thread(core.create_namespaced_pod, namespace, body)
    pod = await until(lambda: running(core, namespace, "web"), within=20, what="pod Running")
    uid = pod.metadata.uid
    await first.stop()

    cm.data = {"app.conf": "mode=two"}
    await asyncio.to_thread(core.replace_namespaced_config_map, "app", namespace, cm)
    second = await harness.start()
    await until(lambda: files(harness, uid, "cfg") == {"app.conf": b"mode=two"}, within=20, what="the new content")
    assert len(updates_of(harness, uid)) == 1
    await second.stop()
    # A third daemon knows only the digest the instance was created with: it sends the same update again,
    # with the same client token, and the cloud ignores it.
    await harness.start()
    await until(lambda: harness.cloud.calls["update", "idempotent"] == 1, within=20, what="the repeated update")
    assert len(updates_of(harness, uid)) == 1
    assert files(harness, uid, "cfg") == {"app.conf": b"mode=two"}


async def test_mounted_secrets_and_configmaps_are_refreshed_with_the_charts_grants_alone(
    cluster: launcher.Info, kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    """The daemon reads its pods' Secrets and ConfigMaps by name as its node, and may not list or watch
    either (a kubelet may read only its pods' objects): a mounted one is read again on an interval, and
    its change still reaches the instance."""
    secret = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="creds"), data={"pw": base64.b64encode(b"old").decode()})
    await asyncio.to_thread(core.create_namespaced_secret, namespace, secret)
    config = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="conf"), data={"mode": "old"})
    await asyncio.to_thread(core.create_namespaced_config_map, namespace, config)
    manifest = pod_manifest(
        "web",
        node_name,
        container={
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}],
            "volumeMounts": [{"name": "sec", "mountPath": "/etc/sec"}, {"name": "conf", "mountPath": "/etc/conf"}],
        },
        volumes=[{"name": "sec", "secret": {"secretName": "creds"}}, {"name": "conf", "configMap": {"name": "conf"}}],
    )
    async with (
        least_privilege.daemon_client(cluster, kube_api, namespace, node_name) as limited,
        harnessed(limited, core, node_name) as harness,
    ):
        await harness.start()
        await asyncio.to_thread(core.create_namespaced_pod, namespace, manifest)
        pod = await until(lambda: running(core, namespace, "web"), within=20, what="pod web Running")
        uid = pod.metadata.uid
        assert files(harness, uid, "sec") == {"pw": b"old"}
        assert files(harness, uid, "conf") == {"mode": b"old"}
        assert env(harness, uid)["PW"] == "old"
        secret.data = {"pw": base64.b64encode(b"new").decode()}
        await asyncio.to_thread(core.replace_namespaced_secret, "creds", namespace, secret)
        await until(lambda: files(harness, uid, "sec") == {"pw": b"new"}, within=20, what="the new Secret content")
        assert len(updates_of(harness, uid)) == 1
        config.data = {"mode": "new"}
        await asyncio.to_thread(core.replace_namespaced_config_map, "conf", namespace, config)
        await until(lambda: files(harness, uid, "conf") == {"mode": b"new"}, within=20, what="the new ConfigMap")
        assert len(updates_of(harness, uid)) == 2
