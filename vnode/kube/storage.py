"""Typed partial views of PersistentVolumeClaims and PersistentVolumes (see :mod:`objects`).

vnode reads a claim a pod mounts and the volume it is bound to, once per pod create, to mount
the volume in the cloud (``vnode.node.claims``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from vnode.kube.objects import _S, ObjectMeta

__all__ = ["PersistentVolume", "PersistentVolumeClaim", "PersistentVolumeSpec"]


class NFSVolume(_S):
    server: str = ""
    path: str = ""
    read_only: bool = False


class PersistentVolumeClaimSpec(_S):
    volume_name: str = ""
    access_modes: list[str] = []
    storage_class_name: str | None = None


class PersistentVolumeClaimStatus(_S):
    phase: str = ""  # Pending | Bound | Lost


class PersistentVolumeClaim(_S):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PersistentVolumeClaimSpec = msgspec.field(default_factory=PersistentVolumeClaimSpec)
    status: PersistentVolumeClaimStatus = msgspec.field(default_factory=PersistentVolumeClaimStatus)


class SecretReference(_S):
    name: str = ""
    namespace: str = ""


class CSIPersistentVolume(_S):
    driver: str = ""
    volume_handle: str = ""
    fs_type: str = ""
    read_only: bool = False
    volume_attributes: dict[str, str] = {}
    node_stage_secret_ref: SecretReference | None = None
    node_publish_secret_ref: SecretReference | None = None

    def secret_ref(self) -> SecretReference | None:
        """The Secret the driver reads its credentials from (to stage, else to publish), if any."""
        return self.node_stage_secret_ref or self.node_publish_secret_ref


#: The fields of a PersistentVolume's spec that are not its source (nfs, csi, hostPath...).
_PV_FIELDS = frozenset(
    {
        "capacity",
        "accessModes",
        "claimRef",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "mountOptions",
        "volumeMode",
        "nodeAffinity",
        "volumeAttributesClassName",
    }
)


class PersistentVolumeSpec(_S):
    capacity: dict[str, str] = {}
    access_modes: list[str] = []
    nfs: NFSVolume | None = None
    csi: CSIPersistentVolume | None = None


class PersistentVolume(_S):
    """A PersistentVolume; its spec kept whole, so that a source vnode does not mount can be named."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: dict[str, Any] = {}

    def source(self) -> PersistentVolumeSpec:
        return msgspec.convert(self.spec, PersistentVolumeSpec)

    def kind(self) -> str:
        """Its source's field name (``nfs``, ``csi``, ``hostPath``...); "" if it has none."""
        return next((key for key in sorted(self.spec) if key not in _PV_FIELDS), "")
