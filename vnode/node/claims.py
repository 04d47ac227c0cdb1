"""PersistentVolumeClaims as the volumes a cloud mounts: the claim's PersistentVolume, NFS, a CSI disk or share.

Pure, like :mod:`spec` (which calls it): the caller read each claim the pod mounts and, once it
is bound, its PersistentVolume (one get each, see ``reconcile``). A claim that is missing, not
bound yet or being deleted raises :class:`Unbound`: the pod stays ContainerCreating with the
kubelet's ``FailedMount`` Warning and starts once the claim binds. A PersistentVolume the
provider cannot mount raises ``errors.InvalidSpec`` naming the claim, the volume and its kind.
Which CSI drivers become which kind of volume is the provider's (``Profile.csi_drivers``). A
``share`` (a network file share whose driver reads an account's credentials from a Secret, as
Azure Files' does) carries the PersistentVolume's attributes, its ``volumeHandle``, and the content
of the Secret its ``nodeStageSecretRef`` names, which the caller read with the claim; the pod waits
(``Unbound``) while that Secret is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from vnode import errors, models
from vnode.kube import objects, storage
from vnode.node import resources
from vnode.provider import profile as provider_profile

__all__ = ["Claim", "Unbound", "check_kinds", "mount"]


class Unbound(Exception):
    """A PersistentVolumeClaim the pod mounts is missing, not bound yet, or its volume is missing.

    The kubelet keeps such a pod ContainerCreating with ``FailedMount`` events until the claim
    binds; so does the node (the message names the claim)."""

    def __init__(self, claim: str, message: str) -> None:
        self.claim = claim
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A PersistentVolumeClaim and, once it is bound, its PersistentVolume (None: not read or missing)."""

    claim: storage.PersistentVolumeClaim
    volume: storage.PersistentVolume | None = None
    #: A share's credentials: the Secret its CSI driver reads (None: it names none, or it is missing).
    secret: Mapping[str, bytes] | None = None


#: What the message of a refused volume kind calls it.
_KIND_NAMES = {"nfs": "NFS", "disk": "cloud disk", "emptyDir": "emptyDir", "files": "file", "share": "file share"}


def _gib(quantity: str | None) -> int:
    return int(resources.ceil_div(resources.memory_bytes(quantity), resources.GIB)) if quantity else 0


def mount(
    volume: objects.Volume, claims: Mapping[str, Claim | None], profile: provider_profile.Profile
) -> models.VolumeSpec:
    """The volume a PersistentVolumeClaim is bound to, as the cloud mounts it; ``Unbound`` until it is."""
    ref = volume.persistent_volume_claim
    assert ref is not None
    name = ref.claim_name
    found = claims.get(name)
    if found is None:
        raise Unbound(name, f'persistentvolumeclaim "{name}" not found')
    claim, pv = found.claim, found.volume
    if claim.metadata.deletion_timestamp:
        raise Unbound(name, f'persistentvolumeclaim "{name}" is being deleted')
    if claim.status.phase != "Bound" or not claim.spec.volume_name:
        raise Unbound(name, f'persistentvolumeclaim "{name}" not bound')
    if pv is None:
        raise Unbound(name, f'persistentvolume "{claim.spec.volume_name}" of claim "{name}" not found')
    spec = pv.source()
    csi_kinds = profile.csi_drivers
    read_only = ref.read_only
    driver = spec.csi.driver if spec.csi is not None else ""
    mounted: models.VolumeSpec | None = None
    if spec.nfs is not None:
        nfs = spec.nfs
        mounted = models.VolumeSpec(
            volume.name, "nfs", server=nfs.server, path=nfs.path or "/", read_only=read_only or nfs.read_only
        )
    elif spec.csi is not None and csi_kinds.get(driver) == "disk":
        csi = spec.csi
        mounted = models.VolumeSpec(
            volume.name,
            "disk",
            disk_id=csi.volume_handle,
            fs_type=csi.fs_type,
            read_only=read_only or csi.read_only,
            size_gib=_gib(spec.capacity.get("storage")),
        )
    elif spec.csi is not None and csi_kinds.get(driver) == "nfs" and spec.csi.volume_attributes.get("server"):
        attributes = spec.csi.volume_attributes
        mounted = models.VolumeSpec(
            volume.name,
            "nfs",
            server=attributes["server"],
            path=attributes.get("path") or "/",
            read_only=read_only or spec.csi.read_only,
        )
    elif spec.csi is not None and csi_kinds.get(driver) == "share":
        mounted = _share(volume.name, name, spec.csi, found.secret, read_only)
    if mounted is None or mounted.kind not in profile.volume_kinds:
        where = (
            f'volume {volume.name}: persistentvolumeclaim "{name}" is bound to persistentvolume "{pv.metadata.name}"'
        )
        raise errors.InvalidSpec(_cannot(where, driver or "", pv.kind(), profile))
    return mounted


def _share(name: str, claim: str, csi: storage.CSIPersistentVolume, secret: Mapping[str, bytes] | None,
           read_only: bool) -> models.VolumeSpec:  # fmt: skip
    ref = csi.secret_ref()
    if ref is not None and secret is None:
        raise Unbound(
            claim, f'secret "{ref.namespace}/{ref.name}" of the persistentvolume of claim "{claim}" not found'
        )
    files = tuple(models.KeyToPath(key, value) for key, value in sorted((secret or {}).items()))
    attributes = {**csi.volume_attributes, "volumeHandle": csi.volume_handle}
    return models.VolumeSpec(name, "share", files=files, attributes=attributes, read_only=read_only or csi.read_only)


def _cannot(where: str, driver: str, pv_kind: str, profile: provider_profile.Profile) -> str:
    """Why the provider cannot mount a PersistentVolume, and what it mounts."""
    csi_kinds, kinds = profile.csi_drivers, profile.volume_kinds
    what = f"csi driver {driver}" if driver else f"kind {pv_kind or 'unknown'}"
    known = [
        *(["nfs"] if "nfs" in kinds else []),
        *(f"csi {d}" for d, k in sorted(csi_kinds.items()) if k in kinds),
    ]
    mounts = f"it mounts {', '.join(known)}" if known else "it mounts no PersistentVolume"
    provider = f"the {profile.name} provider" if profile.name else "this virtual node"
    return f"{where} of {what}, which {provider} cannot mount ({mounts})"


def inline_secret(volume: objects.Volume) -> str:
    """The Secret an inline CSI volume names for its driver (``nodePublishSecretRef``, else the
    ``secretName`` attribute several drivers read); "" for none."""
    csi = volume.csi or {}
    ref = csi.get("nodePublishSecretRef") or {}
    return str(ref.get("name") or (csi.get("volumeAttributes") or {}).get("secretName") or "")


def driver_secrets(pod: objects.Pod) -> set[str]:
    """The Secrets the pod's inline CSI volumes name only in ``volumeAttributes.secretName``.

    The CSI driver reads those, as its own account; a kubelet never does, so the Node authorizer
    does not grant them to the node (it does grant ``nodePublishSecretRef``). vnode, in the
    driver's place, reads them as its own account too.
    """
    return {
        str((v.csi.get("volumeAttributes") or {}).get("secretName"))
        for v in pod.spec.volumes
        if v.csi
        and not (v.csi.get("nodePublishSecretRef") or {}).get("name")
        and (v.csi.get("volumeAttributes") or {}).get("secretName")
    }


def inline(volume: objects.Volume, profile: provider_profile.Profile) -> models.VolumeSpec | None:
    """A pod's inline CSI volume of a driver the provider maps as a ``share`` (None: not one), with its
    attributes; the caller adds the content of the Secret it names (:func:`inline_secret`)."""
    csi = volume.csi or {}
    if profile.csi_drivers.get(str(csi.get("driver", ""))) != "share":
        return None
    attributes = {str(k): str(v) for k, v in (csi.get("volumeAttributes") or {}).items()}
    return models.VolumeSpec(volume.name, "share", attributes=attributes, read_only=bool(csi.get("readOnly")))


def check_kinds(volumes: Iterable[models.VolumeSpec], profile: provider_profile.Profile) -> None:
    """Refuse a volume of a kind the provider does not declare (``Profile.volume_kinds``)."""
    for vol in volumes:
        if vol.kind not in profile.volume_kinds:
            what = _KIND_NAMES.get(vol.kind, vol.kind)
            raise errors.InvalidSpec(
                f"volume {vol.name}: the {profile.name or 'this'} provider cannot mount {what} volumes"
            )
