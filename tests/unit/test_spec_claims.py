"""PersistentVolumeClaims into instance volumes: an NFS PV becomes an ``nfs`` volume, a PV of Alibaba's
disk CSI driver a ``disk`` (its volumeHandle the disk ID, its capacity the size), any other PV is
refused naming the claim and the PV's kind; a claim missing, unbound or being deleted raises
``claims.Unbound`` (the pod waits); ECI's mapping sends NFSVolume / DiskVolume and emptyDir's
Medium and SizeLimit; a provider that does not declare a kind refuses it."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest

from vnode import errors, models
from vnode.kube import objects, storage
from vnode.node import claims, spec
from vnode.provider.aci import profile as aci_profile
from vnode.provider.eci import mapping
from vnode.provider.eci import profile as eci_profile

TARGET = spec.Target(cluster_id="c1", node_name="vn-0", profile=eci_profile.PROFILE)
DISK_DRIVER = "diskplugin.csi.alibabacloud.com"


def decode(body: dict[str, Any], kind: type[Any]) -> Any:
    return msgspec.json.decode(msgspec.json.encode(body), type=kind)


def pod(*volumes: dict[str, Any], read_only_mount: bool = False) -> objects.Pod:
    mounts = [{"name": v["name"], "mountPath": f"/mnt/{v['name']}", "readOnly": read_only_mount} for v in volumes]
    body = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1"},
        "spec": {"containers": [{"name": "app", "image": "nginx", "volumeMounts": mounts}], "volumes": list(volumes)},
    }
    return decode(body, objects.Pod)


def claim_volume(name: str = "data", claim: str = "data-claim", read_only: bool = False) -> dict[str, Any]:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}


def bound(pv_spec: dict[str, Any], *, phase: str = "Bound", pv_name: str = "pv-1", **meta: Any) -> claims.Claim:
    claim = decode(
        {
            "metadata": {"name": "data-claim", "namespace": "ns", **meta},
            "spec": {"volumeName": pv_name if phase == "Bound" else "", "accessModes": ["ReadWriteOnce"]},
            "status": {"phase": phase},
        },
        storage.PersistentVolumeClaim,
    )
    pv = decode({"metadata": {"name": pv_name}, "spec": pv_spec}, storage.PersistentVolume)
    return claims.Claim(claim, pv if phase == "Bound" else None)


def build(p: objects.Pod, claim: claims.Claim | None, target: spec.Target = TARGET) -> models.InstanceSpec:
    return spec.build(p, spec.Sources(claims={"data-claim": claim}), target)


NFS_PV = {"capacity": {"storage": "10Gi"}, "nfs": {"server": "nas.example.com", "path": "/exports/web"}}
DISK_PV = {
    "capacity": {"storage": "40Gi"},
    "accessModes": ["ReadWriteOnce"],
    "csi": {"driver": DISK_DRIVER, "volumeHandle": "d-bp1disk", "fsType": "xfs"},
}


def test_the_pod_refers_to_its_claims() -> None:
    assert spec.references(pod(claim_volume(), claim_volume("other", "c2"))).claims == {"data-claim", "c2"}


def test_an_nfs_pv_becomes_an_nfs_volume() -> None:
    (volume,) = build(pod(claim_volume(read_only=True)), bound(NFS_PV)).volumes
    assert volume == models.VolumeSpec("data", "nfs", server="nas.example.com", path="/exports/web", read_only=True)


def test_a_disk_pv_becomes_a_disk_volume_and_read_only_reaches_the_mounts() -> None:
    built = build(pod(claim_volume(read_only=True)), bound(DISK_PV))
    (volume,) = built.volumes
    assert (volume.kind, volume.disk_id, volume.fs_type, volume.size_gib) == ("disk", "d-bp1disk", "xfs", 40)
    params = mapping.create_params(built, region="r", vswitches=["v"], security_group="sg", strategy="S")
    assert params["Container.1.VolumeMount.1.ReadOnly"] == "true"


def test_a_nas_csi_pv_becomes_an_nfs_volume() -> None:
    nas = {"csi": {"driver": "nasplugin.csi.alibabacloud.com", "volumeHandle": "pv-nas",
                   "volumeAttributes": {"server": "x.nas.aliyuncs.com", "path": "/share"}}}  # fmt: skip
    (volume,) = build(pod(claim_volume()), bound(nas)).volumes
    assert (volume.kind, volume.server, volume.path) == ("nfs", "x.nas.aliyuncs.com", "/share")


@pytest.mark.parametrize(
    ("pv_spec", "kind"),
    [
        ({"hostPath": {"path": "/srv"}}, "of kind hostPath"),
        (
            {"csi": {"driver": "disk.csi.azure.com", "volumeHandle": "/subscriptions/x"}},
            "csi driver disk.csi.azure.com",
        ),
        ({"local": {"path": "/mnt/ssd"}}, "of kind local"),
    ],
)
def test_other_pvs_are_refused_naming_the_claim_and_the_kind(pv_spec: dict[str, Any], kind: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        build(pod(claim_volume()), bound(pv_spec))
    assert 'persistentvolumeclaim "data-claim"' in caught.value.message
    assert 'persistentvolume "pv-1"' in caught.value.message
    assert kind in caught.value.message


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        (None, 'persistentvolumeclaim "data-claim" not found'),
        (bound(NFS_PV, phase="Pending"), 'persistentvolumeclaim "data-claim" not bound'),
        (bound(NFS_PV, deletionTimestamp="2026-12-05T00:00:00Z"), "is being deleted"),
        (dataclasses.replace(bound(NFS_PV), volume=None), 'persistentvolume "pv-1" of claim "data-claim" not found'),
    ],
)
def test_a_claim_not_ready_keeps_the_pod_waiting(claim: claims.Claim | None, message: str) -> None:
    with pytest.raises(claims.Unbound, match=message) as caught:
        build(pod(claim_volume()), claim)
    assert caught.value.claim == "data-claim"


def test_a_provider_without_the_kind_refuses_it() -> None:
    aci = dataclasses.replace(TARGET, profile=aci_profile.PROFILE)
    with pytest.raises(
        errors.InvalidSpec, match=r"which the aci provider cannot mount \(it mounts csi file\.csi\.azure\.com\)"
    ):
        build(pod(claim_volume()), bound(DISK_PV), aci)
    with pytest.raises(errors.InvalidSpec, match="of kind nfs, which the aci provider cannot mount"):
        build(pod(claim_volume()), bound(NFS_PV), aci)


def test_eci_mapping_of_nfs_disk_and_empty_dir() -> None:
    params: dict[str, str] = {}
    mapping.volume_params(
        params,
        (
            models.VolumeSpec("share", "nfs", server="nas.example.com", path="/exports", read_only=True),
            models.VolumeSpec("data", "disk", disk_id="d-bp1disk", fs_type="xfs", size_gib=40),
            models.VolumeSpec("cache", "emptyDir", medium="Memory", size_limit_gib=0.25),
            models.VolumeSpec("big", "emptyDir", size_limit_gib=2),
        ),
    )
    assert params == {
        "Volume.1.Name": "share",
        "Volume.1.Type": "NFSVolume",
        "Volume.1.NFSVolume.Server": "nas.example.com",
        "Volume.1.NFSVolume.Path": "/exports",
        "Volume.1.NFSVolume.ReadOnly": "true",
        "Volume.2.Name": "data",
        "Volume.2.Type": "DiskVolume",
        "Volume.2.DiskVolume.DiskId": "d-bp1disk",
        "Volume.2.DiskVolume.FsType": "xfs",
        "Volume.2.DiskVolume.DiskSize": "40",
        "Volume.3.Name": "cache",
        "Volume.3.Type": "EmptyDirVolume",
        "Volume.3.EmptyDirVolume.Medium": "Memory",
        "Volume.3.EmptyDirVolume.SizeLimit": "256Mi",
        "Volume.4.Name": "big",
        "Volume.4.Type": "EmptyDirVolume",
        "Volume.4.EmptyDirVolume.SizeLimit": "2Gi",
    }


def test_empty_dir_medium_and_size_limit_reach_the_spec() -> None:
    (volume,) = spec.build(
        pod({"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}}), spec.Sources(), TARGET
    ).volumes
    assert (volume.kind, volume.medium, volume.size_limit_gib) == ("emptyDir", "Memory", 0.5)
    assert mapping.size_limit(0.5) == "512Mi"
