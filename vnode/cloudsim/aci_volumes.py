"""ACI's volumes and volume mounts: read from a PUT, checked, kept, and returned on GET.

A group's ``volumes`` each have one source: ``emptyDir``, ``secret`` (file name -> base64
content), ``azureFile`` (``shareName`` and ``storageAccountName``, both required, with
``storageAccountKey`` and ``readOnly``) or ``gitRepo``. A container's ``volumeMounts`` name one of
them. Refused with ``400``: a volume with no source or two, an Azure Files volume without its share
or account, two volumes of one name, a secret file whose content is not base64, and a mount of a
volume the group does not have (``InvalidVolume`` and ``InvalidVolumeMount``, the simulator's
codes: ACI's are not published). An Azure Files share is kept as a record of what was mounted
(the account and share; its key is never returned, as ARM returns no secret); the simulator has no
storage accounts, so any account and key are accepted.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from vnode.cloudsim import aci_arm, model

__all__ = ["AzureFile", "Mount", "Volume", "mounts", "render", "volumes"]

AZURE_FILE = "AzureFileVolume"  # model.Volume.type of an Azure Files share


class AzureFile(msgspec.Struct):
    shareName: str = ""
    storageAccountName: str = ""
    storageAccountKey: str | None = None
    readOnly: bool | None = None


class Volume(msgspec.Struct):
    name: str
    emptyDir: dict[str, Any] | None = None
    secret: dict[str, str] | None = None
    azureFile: AzureFile | None = None
    gitRepo: dict[str, Any] | None = None


class Mount(msgspec.Struct):
    name: str
    mountPath: str
    readOnly: bool | None = None


def _refuse(code: str, message: str) -> aci_arm.ArmError:
    return aci_arm.ArmError(400, code, message)


def volumes(given: list[Volume]) -> tuple[model.Volume, ...]:
    """The group's ``volumes`` as the cloud keeps them."""
    kept: list[model.Volume] = []
    for v in given:
        sources = [k for k in ("emptyDir", "secret", "azureFile", "gitRepo") if getattr(v, k) is not None]
        if len(sources) != 1:
            raise _refuse("InvalidVolume", f"The volume '{v.name}' must have exactly one source, not {len(sources)}.")
        if any(k.name == v.name for k in kept):
            raise _refuse("InvalidVolume", f"The volume name '{v.name}' is used more than once.")
        kept.append(_volume(v))
    return tuple(kept)


def _volume(v: Volume) -> model.Volume:
    if v.azureFile is not None:
        share = v.azureFile
        if not share.shareName or not share.storageAccountName:
            raise _refuse(
                "InvalidVolume", f"The Azure File volume '{v.name}' needs a shareName and a storageAccountName."
            )
        return model.Volume(v.name, AZURE_FILE, server=share.storageAccountName, path=share.shareName,
                            read_only=bool(share.readOnly))  # fmt: skip
    if v.secret is not None:
        files = []
        for path, content in sorted(v.secret.items()):
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise _refuse(
                    "InvalidVolume", f"The secret file '{path}' of volume '{v.name}' is not base64."
                ) from None
            files.append(model.ConfigFile(path, content))
        return model.Volume(v.name, "ConfigFileVolume", files=tuple(files))
    if v.gitRepo is not None:
        return model.Volume(v.name, "GitRepoVolume", server=str(v.gitRepo.get("repository", "")))
    return model.Volume(v.name, "EmptyDirVolume")


def mounts(given: list[Mount], container: str, declared: tuple[model.Volume, ...]) -> tuple[model.VolumeMount, ...]:
    """A container's ``volumeMounts``, each of a volume the group declares."""
    names = {v.name for v in declared}
    for m in given:
        if m.name not in names:
            raise _refuse(
                "InvalidVolumeMount", f"The volume mount '{m.name}' of container '{container}' names no volume."
            )
    return tuple(model.VolumeMount(m.name, m.mountPath, bool(m.readOnly)) for m in given)


def render(kept: model.Volume) -> dict[str, Any]:
    """A kept volume as GET returns it (no secret: neither the files' content nor an account key)."""
    if kept.type == AZURE_FILE:
        share = {"shareName": kept.path, "storageAccountName": kept.server, "readOnly": kept.read_only}
        return {"name": kept.name, "azureFile": share}
    if kept.type == "ConfigFileVolume":
        return {"name": kept.name, "secret": {}}
    if kept.type == "GitRepoVolume":
        return {"name": kept.name, "gitRepo": {"repository": kept.server}}
    return {"name": kept.name, "emptyDir": {}}
