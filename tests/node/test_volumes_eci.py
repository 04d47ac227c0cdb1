"""PersistentVolumeClaims on an ECI virtual node (real control plane, the daemon with the ECI provider
against the simulator). A claim bound statically to an NFS PersistentVolume runs, and the official
SDK describes the instance's NFSVolume and its read-only mount (and an in-memory emptyDir with its
size limit); a claim whose volume does not exist
yet keeps its pod Pending (ContainerCreating, a FailedMount Warning naming the claim) until the
PersistentVolume (a disk of Alibaba's CSI driver) appears and the controller binds it, then it runs
with the disk as ECI's DiskVolume; a second pod of that disk waits while the first one's instance
holds it, and runs once that pod is gone; a claim bound to a hostPath PV is refused naming the
claim and the kind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import eci_daemon, pod_manifest
from tests.waiting import until
from vnode.kube import client

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("volumes-eci")), profile="fast") as started:
        yield started


def described(sim: Sim, uid: str) -> Any:
    request = m.DescribeContainerGroupsRequest(
        region_id=sim.region, tag=[m.DescribeContainerGroupsRequestTag(key="vnode.io/pod-uid", value=uid)]
    )
    groups = sim.client().describe_container_groups(request).body.container_groups
    return groups[0] if len(groups) == 1 else None


def pv(name: str, namespace: str, claim: str, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "20Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": claim},
            **source,
        },
    }


def pvc(name: str, volume: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": volume,
            "resources": {"requests": {"storage": "20Gi"}},
        },
    }


def claim_pod(name: str, node: str, claim: str, *, read_only: bool = False) -> dict[str, Any]:
    body = pod_manifest(
        name,
        node,
        container={"volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": read_only}]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
    )
    body["spec"]["nodeName"] = node  # the scheduler would hold a pod of an unbound claim back
    return body


async def test_claims_mount_nfs_and_disks_and_an_unbound_claim_waits_for_its_volume(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    made: list[str] = []

    async def make_pv(name: str, claim: str, source: dict[str, Any]) -> None:
        await asyncio.to_thread(core.create_persistent_volume, pv(name, namespace, claim, source))
        made.append(name)

    async def pod_of(name: str) -> Any:
        return await asyncio.to_thread(core.read_namespaced_pod, name, namespace)

    async def running_pod(name: str) -> Any:
        pod = await pod_of(name)
        return pod if pod.status.phase == "Running" else None

    try:
        async with eci_daemon(sim, kube, core, node_name, "volumes-eci"):
            # NFS, bound statically.
            nfs_pv = f"{namespace}-nfs"
            await make_pv(nfs_pv, "shared", {"nfs": {"server": "nas.example.com", "path": "/exports/web"}})
            await asyncio.to_thread(core.create_namespaced_persistent_volume_claim, namespace, pvc("shared", nfs_pv))
            web = claim_pod("web", node_name, "shared", read_only=True)
            web["spec"]["volumes"].append({"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}})
            web["spec"]["containers"][0]["volumeMounts"].append({"name": "cache", "mountPath": "/cache"})
            await asyncio.to_thread(core.create_namespaced_pod, namespace, web)
            pod = await until(lambda: running_pod("web"), within=60, what="the NFS pod Running")
            group = described(sim, pod.metadata.uid)
            (share,) = [v for v in group.volumes if v.name == "data"]
            assert (share.type, share.nfsvolume_server, share.nfsvolume_path) == (
                "NFSVolume",
                "nas.example.com",
                "/exports/web",
            )
            (cache,) = [v for v in group.volumes if v.name == "cache"]
            assert (cache.type, cache.empty_dir_volume_medium, cache.empty_dir_volume_size_limit) == (
                "EmptyDirVolume",
                "Memory",
                "256Mi",
            )
            mounts = {v.name: v for v in group.containers[0].volume_mounts}
            assert (mounts["data"].mount_path, mounts["data"].read_only) == ("/data", True)

            # A claim whose volume does not exist yet: the pod waits, saying why.
            disk_pv = f"{namespace}-disk"
            await asyncio.to_thread(core.create_namespaced_persistent_volume_claim, namespace, pvc("data", disk_pv))
            await asyncio.to_thread(core.create_namespaced_pod, namespace, claim_pod("db", node_name, "data"))

            async def waiting() -> Any:
                pod = await pod_of("db")
                statuses = pod.status.container_statuses or []
                state = statuses[0].state.waiting if statuses else None
                return state if state is not None and "not bound" in (state.message or "") else None

            state = await until(waiting, within=30, what="the pod waiting for its claim")
            assert state.reason == "ContainerCreating"
            assert 'persistentvolumeclaim "data" not bound' in state.message

            async def failed_mount() -> Any:
                listed = await asyncio.to_thread(
                    core.list_namespaced_event, namespace, field_selector="involvedObject.name=db"
                )
                return [e for e in listed.items if e.reason == "FailedMount"] or None

            (event,) = await until(failed_mount, within=30, what="a FailedMount event")
            assert event.type == "Warning"
            assert (await pod_of("db")).status.phase == "Pending"
            assert described(sim, (await pod_of("db")).metadata.uid) is None  # nothing was made

            csi = {"driver": "diskplugin.csi.alibabacloud.com", "volumeHandle": "d-bp1claimed", "fsType": "ext4"}
            await make_pv(disk_pv, "data", {"csi": csi})
            pod = await until(lambda: running_pod("db"), within=60, what="the disk pod Running once its claim binds")
            group = described(sim, pod.metadata.uid)
            (disk,) = [v for v in group.volumes if v.name == "data"]
            assert (disk.type, disk.disk_volume_disk_id, disk.disk_volume_fs_type) == (
                "DiskVolume",
                "d-bp1claimed",
                "ext4",
            )

            # The disk is attached to db's instance: a second pod of the claim waits until db is gone.
            await asyncio.to_thread(core.create_namespaced_pod, namespace, claim_pod("db2", node_name, "data"))

            async def in_use() -> Any:
                statuses = (await pod_of("db2")).status.container_statuses or []
                state = statuses[0].state.waiting if statuses else None
                return state if state is not None and "d-bp1claimed" in (state.message or "") else None

            state = await until(in_use, within=30, what="the second pod of the disk waiting")
            assert state.reason == "ContainerCreating"
            assert "IncorrectDiskStatus" in state.message
            await asyncio.to_thread(core.delete_namespaced_pod, "db", namespace)
            await until(lambda: running_pod("db2"), within=60, what="the second pod Running once the disk is free")

            # A PV no virtual node mounts: refused, naming the claim and its kind.
            host_pv = f"{namespace}-host"
            await make_pv(host_pv, "local", {"hostPath": {"path": "/srv"}})
            await asyncio.to_thread(core.create_namespaced_persistent_volume_claim, namespace, pvc("local", host_pv))
            await asyncio.to_thread(core.create_namespaced_pod, namespace, claim_pod("host", node_name, "local"))

            async def refused() -> str | None:
                got = await pod_of("host")
                text = json.dumps(got.status.to_dict(), default=str)
                return text if got.status.phase == "Failed" else None

            text = await until(refused, within=60, what="the hostPath claim's pod refused")
            assert 'persistentvolumeclaim \\"local\\"' in text
            assert "kind hostPath" in text
    finally:
        for name in made:
            with contextlib.suppress(k8s.ApiException):
                await asyncio.to_thread(core.delete_persistent_volume, name)
