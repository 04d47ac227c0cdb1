"""Azure Files on ACI: a pod's inline ``file.csi.azure.com`` volume, through the core into ACI's ``azureFile``."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vnode import errors, models
from vnode.kube import objects, storage
from vnode.node import claims, spec
from vnode.provider.aci import mapping
from vnode.provider.aci import profile as aci_profile
from vnode.provider.eci import profile as eci_profile

ACI = spec.Target(cluster_id="c1", node_name="vn-aci", node_ip="10.0.0.9", placement=models.Placement(),
                  profile=aci_profile.PROFILE)  # fmt: skip
SECRET = {"azurestorageaccountname": b"acct\n", "azurestorageaccountkey": b"k3y"}


def _pod(attributes: dict[str, str], secret: str = "azure-secret", **csi: Any) -> objects.Pod:
    volume = {"name": "data", "csi": {"driver": "file.csi.azure.com", "volumeAttributes": attributes, **csi}}
    if secret:
        volume["csi"]["volumeAttributes"]["secretName"] = secret
    container = {"name": "app", "image": "nginx", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    body = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [container], "volumes": [volume]}}  # fmt: skip
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


def _built(p: objects.Pod, secrets: dict[str, Any] | None = None, target: spec.Target = ACI) -> models.InstanceSpec:
    return spec.build(p, spec.Sources(secrets={"azure-secret": SECRET} if secrets is None else secrets), target)


def test_an_inline_azure_files_volume_becomes_the_groups_azure_file_with_the_secrets_account() -> None:
    p = _pod({"shareName": "team-data"}, readOnly=True)
    assert spec.references(p).secrets == frozenset({"azure-secret"}), "its Secret is read before the create"
    built = _built(p)
    (volume,) = built.volumes
    assert (volume.kind, volume.attributes["shareName"], volume.read_only) == ("share", "team-data", True)
    (group_volume,) = mapping.group_body(built, location="westeurope")["properties"]["volumes"]
    assert group_volume == {
        "name": "data",
        "azureFile": {
            "shareName": "team-data",
            "storageAccountName": "acct",
            "storageAccountKey": "k3y",
            "readOnly": True,
        },
    }


def test_the_secret_missing_waits_and_a_share_or_key_missing_is_refused_naming_it() -> None:
    with pytest.raises(spec.Missing):
        _built(_pod({"shareName": "d"}), secrets={})
    with pytest.raises(errors.InvalidSpec, match=r"volumeAttributes\.shareName"):
        mapping.group_body(_built(_pod({})), location="westeurope")
    keyless = {"azure-secret": {"azurestorageaccountname": b"acct"}}
    with pytest.raises(errors.InvalidSpec, match="a Secret with azurestorageaccountkey"):
        mapping.group_body(_built(_pod({"shareName": "d"}), secrets=keyless), location="westeurope")


def test_other_providers_refuse_the_inline_volume() -> None:
    eci = spec.Target(cluster_id="c1", node_name="vn", node_ip="10.0.0.9", placement=models.Placement(),
                      profile=eci_profile.PROFILE)  # fmt: skip
    with pytest.raises(errors.InvalidSpec, match="csi volumes are not supported"):
        _built(_pod({"shareName": "d"}), target=eci)


def _claimed(csi: dict[str, Any], secret: dict[str, bytes] | None) -> models.VolumeSpec:
    pv = {"metadata": {"name": "pv-1"}, "spec": {"csi": {"driver": "file.csi.azure.com", **csi}}}
    claim = {"metadata": {"name": "files"}, "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}
    found = claims.Claim(
        msgspec.convert(claim, storage.PersistentVolumeClaim), msgspec.convert(pv, storage.PersistentVolume), secret
    )
    volume = objects.Volume(
        name="data", persistent_volume_claim=objects.PersistentVolumeClaimVolume(claim_name="files")
    )
    return claims.mount(volume, {"files": found}, aci_profile.PROFILE)


def test_a_claim_of_an_azure_files_volume_mounts_its_share_with_the_secret_its_volume_names() -> None:
    ref = {"nodeStageSecretRef": {"name": "azure-secret", "namespace": "default"}}
    static = _claimed({"volumeHandle": "any-id", "volumeAttributes": {"shareName": "team-data"}, **ref}, SECRET)
    assert mapping.azure_file(static) == {
        "shareName": "team-data", "storageAccountName": "acct", "storageAccountKey": "k3y", "readOnly": False
    }  # fmt: skip
    # Dynamic provisioning names the share only in the handle: <resource group>#<account>#<share>#...
    made = _claimed({"volumeHandle": "mc_rg#acct2#pvc-123###default", **ref}, {"azurestorageaccountkey": b"k"})
    assert (mapping.azure_file(made)["shareName"], mapping.azure_file(made)["storageAccountName"]) == (
        "pvc-123",
        "acct2",
    )
    with pytest.raises(claims.Unbound, match='secret "default/azure-secret"'):
        _claimed({"volumeHandle": "any-id", **ref}, None)


@pytest.mark.parametrize(
    ("empty_dir", "named"), [({"medium": "Memory"}, "medium"), ({"sizeLimit": "1Gi"}, "sizeLimit")]
)
def test_an_empty_dir_in_memory_or_with_a_size_limit_is_refused_on_aci_never_dropped(
    empty_dir: dict[str, str], named: str
) -> None:
    body = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}],
                     "volumes": [{"name": "cache", "emptyDir": empty_dir}]}}  # fmt: skip
    built = _built(msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod))
    with pytest.raises(errors.InvalidSpec, match=f"volume cache: emptyDir.{named}: ACI's emptyDir has neither"):
        mapping.group_body(built, location="westeurope")
