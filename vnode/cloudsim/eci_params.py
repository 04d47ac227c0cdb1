"""The ECI dialect's request parameters: flat ``Container.1.Command.2``-style pairs made typed.

RPC-style OpenAPI sends every parameter flat in the query (``Container.1.Name``,
``Tag.1.Key``, ``Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content``). ``Params`` gives
typed getters that raise the cloud's parameter errors (``MissingParameter``,
``InvalidParameter``) naming the parameter as the client spelled it; ``parse_containers`` and
``parse_volumes`` build the cloud's specs from the indexed groups.
"""

from __future__ import annotations

import datetime
import json
import re

from vnode.cloudsim import eci_numbers, eci_podspec, errors, model
from vnode.cloudsim.eci_numbers import MAX_INDEX


class Params:
    """The request's flat parameters with typed getters that raise the cloud's parameter errors."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.raw: dict[str, str] = dict(pairs)
        self._by_head: dict[str, list[tuple[str, str]]] | None = None

    def text(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise errors.MissingParameter(name)
            return default
        return value

    def integer(
        self, name: str, *, default: int | None = None, low: int | None = None, high: int | None = None
    ) -> int | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError as exc:
            raise errors.InvalidParameter(name, f"{value!r} is not an integer") from exc
        if (low is not None and number < low) or (high is not None and number > high):
            raise errors.InvalidParameter(name, f"{number} is outside [{low}, {high}]")
        return number

    def number(self, name: str, *, default: float = 0.0) -> float:
        return _float(name, self.raw.get(name), default)

    def flag(self, name: str) -> bool:
        value = self.raw.get(name, "").lower()
        if value in ("", "false"):
            return False
        if value == "true":
            return True
        raise errors.InvalidParameter(name, f"{value!r} is not true or false")

    def json_list(self, name: str, *, most: int) -> tuple[str, ...]:
        value = self.raw.get(name)
        if not value:
            return ()
        try:
            items = json.loads(value)
        except ValueError as exc:
            raise errors.InvalidParameter(name, "not a JSON array of strings") from exc
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise errors.InvalidParameter(name, "not a JSON array of strings")
        if len(items) > most:
            raise errors.InvalidParameter(name, f"at most {most} items")
        return tuple(items)

    def indexed(self, prefix: str) -> dict[int, dict[str, str]]:
        """``Prefix.N.Rest=value`` -> {N: {Rest: value}}, N a positive integer, in N order."""
        groups: dict[int, dict[str, str]] = {}
        lead = prefix + "."
        if self._by_head is None:  # one pass over the parameters, shared by every prefix asked for
            self._by_head = {}
            for key, value in self.raw.items():
                head, dot, _ = key.partition(".")
                if dot:
                    self._by_head.setdefault(head, []).append((key, value))
        for key, value in self._by_head.get(prefix, ()):
            text, _, rest = key[len(lead) :].partition(".")
            n = eci_numbers.index(text)
            if n is None or (not rest and prefix not in _SCALAR_LISTS):
                raise errors.InvalidParameter(key, f"expected {prefix}.N.<Field> with N in 1..{MAX_INDEX}")
            groups.setdefault(n, {})[rest] = value
        return dict(sorted(groups.items()))

    def tags(self) -> tuple[model.Tag, ...]:
        tags = []
        for index, fields in self.indexed("Tag").items():
            if "Key" not in fields:
                raise errors.MissingParameter(f"Tag.{index}.Key")
            tags.append(model.Tag(fields["Key"], fields.get("Value", "")))
        return tuple(tags)


_SCALAR_LISTS: frozenset[str] = frozenset()


def _float(name: str, value: str | None, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise errors.InvalidParameter(name, f"{value!r} is not a number") from exc
    if number < 0 or number != number:
        raise errors.InvalidParameter(name, f"{value!r} must not be negative")
    return number


def _sublist(fields: dict[str, str], name: str) -> tuple[str, ...]:
    """``Command.1``, ``Command.2``.. -> values in index order."""
    items: dict[int, str] = {}
    for key, value in fields.items():
        head, _, text = key.partition(".")
        if head == name:
            n = eci_numbers.index(text)
            if n is None:
                raise errors.InvalidParameter(f"{name}.{text}", f"expected an index in 1..{MAX_INDEX}")
            items[n] = value
    return tuple(items[i] for i in sorted(items))


def _subgroups(fields: dict[str, str], name: str, where: str) -> dict[int, dict[str, str]]:
    groups: dict[int, dict[str, str]] = {}
    for key, value in fields.items():
        head, _, rest = key.partition(".")
        if head == name:
            text, _, field = rest.partition(".")
            n = eci_numbers.index(text)
            if n is None or not field:
                raise errors.InvalidParameter(f"{where}.{key}", f"expected {name}.N.<Field> with N in 1..{MAX_INDEX}")
            groups.setdefault(n, {})[field] = value
    return dict(sorted(groups.items()))


#: ECI's limit of cloud disks per instance (see /work/shared/FACTS-cloud-features.md, volumes).
MAX_DISK_VOLUMES = 6
_FS_TYPES = ("ext3", "ext4", "xfs")


def parse_volumes(params: Params) -> tuple[model.Volume, ...]:
    """``Volume.N.*``: ConfigFileVolume (files, content in base64), EmptyDirVolume, NFSVolume, DiskVolume."""
    volumes = []
    for n, fields in params.indexed("Volume").items():
        name = fields.get("Name", "")
        if not name:
            raise errors.MissingParameter(f"Volume.{n}.Name")
        kind = fields.get("Type", "")
        files = []
        if kind == "ConfigFileVolume":
            inner = {k.removeprefix("ConfigFileVolume."): v for k, v in fields.items()}
            for m, item in _subgroups(inner, "ConfigFileToPath", f"Volume.{n}.ConfigFileVolume").items():
                files.append(model.ConfigFile(item.get("Path", ""), item.get("Content", ""), _mode(item, n, m)))
                if not files[-1].path:
                    raise errors.MissingParameter(f"Volume.{n}.ConfigFileVolume.ConfigFileToPath.{m}.Path")
        elif kind == "EmptyDirVolume":
            _empty_dir(fields, f"Volume.{n}")
        elif kind == "NFSVolume":
            volumes.append(_nfs(name, fields, f"Volume.{n}"))
            continue
        elif kind == "DiskVolume":
            volumes.append(_disk(name, fields, f"Volume.{n}"))
            continue
        else:
            raise errors.InvalidParameter(f"Volume.{n}.Type", f"the simulator does not support {kind!r}")
        volumes.append(
            model.Volume(
                name,
                kind,
                files=tuple(files),
                medium=fields.get("EmptyDirVolume.Medium", ""),
                size_limit=fields.get("EmptyDirVolume.SizeLimit", ""),
            )
        )
    disks = [v.disk_id for v in volumes if v.type == "DiskVolume"]
    if len(disks) > MAX_DISK_VOLUMES:
        raise errors.InvalidParameter("Volume.N.DiskVolume", f"at most {MAX_DISK_VOLUMES} disk volumes per instance")
    if len(set(disks)) < len(disks):
        raise errors.InvalidParameter("Volume.N.DiskVolume.DiskId", "a disk is mounted once per instance")
    return tuple(volumes)


def check_mounts(spec: model.InstanceSpec) -> None:
    """Every volume mount names a volume of the instance."""
    names = {v.name for v in spec.volumes}
    for prefix, containers in (("Container", spec.containers), ("InitContainer", spec.init_containers)):
        for i, c in enumerate(containers, 1):
            for n, mount in enumerate(c.volume_mounts, 1):
                if mount.name not in names:
                    raise errors.InvalidParameter(f"{prefix}.{i}.VolumeMount.{n}.Name", f"no volume {mount.name!r}")


def _mode(item: dict[str, str], n: int, m: int) -> int | None:
    """A config file's ``Mode``: a file mode in decimal, as the SDK sends Kubernetes' defaultMode (0..0o777)."""
    text = item.get("Mode")
    if not text:
        return None
    mode = eci_numbers.digits(text, high=0o777)
    if mode is None:
        raise errors.InvalidParameter(
            f"Volume.{n}.ConfigFileVolume.ConfigFileToPath.{m}.Mode", f"{text!r} is not a mode"
        )
    return mode


_SIZE_LIMIT = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)?").fullmatch


def _empty_dir(fields: dict[str, str], where: str) -> None:
    medium, limit = fields.get("EmptyDirVolume.Medium", ""), fields.get("EmptyDirVolume.SizeLimit", "")
    if medium not in ("", "Memory"):
        raise errors.InvalidParameter(f"{where}.EmptyDirVolume.Medium", f"{medium!r} is neither empty nor Memory")
    if limit and not _SIZE_LIMIT(limit):
        raise errors.InvalidParameter(f"{where}.EmptyDirVolume.SizeLimit", f"{limit!r} is not a size like 256Mi")


def _bool(fields: dict[str, str], key: str, where: str) -> bool:
    value = fields.get(key, "").lower()
    if value not in ("", "true", "false"):
        raise errors.InvalidParameter(f"{where}.{key}", f"{value!r} is not true or false")
    return value == "true"


def _nfs(name: str, fields: dict[str, str], where: str) -> model.Volume:
    server, path = fields.get("NFSVolume.Server", ""), fields.get("NFSVolume.Path", "")
    if not server:
        raise errors.MissingParameter(f"{where}.NFSVolume.Server")
    if not path.startswith("/"):
        raise errors.InvalidParameter(f"{where}.NFSVolume.Path", f"{path!r} is not an absolute path")
    read_only = _bool(fields, "NFSVolume.ReadOnly", where)
    return model.Volume(name, "NFSVolume", server=server, path=path, read_only=read_only)


def _disk(name: str, fields: dict[str, str], where: str) -> model.Volume:
    disk_id = fields.get("DiskVolume.DiskId", "")
    if not disk_id:
        raise errors.MissingParameter(f"{where}.DiskVolume.DiskId")
    if not disk_id.startswith("d-"):
        raise errors.InvalidParameter(f"{where}.DiskVolume.DiskId", f"{disk_id!r} is not a disk ID (d-...)")
    fs_type = fields.get("DiskVolume.FsType", "") or "ext4"
    if fs_type not in _FS_TYPES:
        raise errors.InvalidParameter(f"{where}.DiskVolume.FsType", f"{fs_type!r} is not one of {', '.join(_FS_TYPES)}")
    size_param = f"{where}.DiskVolume.DiskSize"
    size = Params([(size_param, fields.get("DiskVolume.DiskSize", ""))]).integer(size_param, low=1, high=65536) or 0
    return model.Volume(name, "DiskVolume", disk_id=disk_id, fs_type=fs_type, disk_size=size)


_CONTAINER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?").fullmatch


def _ports(fields: dict[str, str], where: str) -> tuple[model.Port, ...]:
    """A container's ``Port.N.Port`` / ``Port.N.Protocol``."""
    ports = []
    for n, port in _subgroups(fields, "Port", where).items():
        number = Params([("p", port.get("Port", ""))]).integer("p", low=1, high=65535) if port.get("Port") else None
        if number is None:
            raise errors.InvalidParameter(f"{where}.Port.{n}.Port", f"{port.get('Port')!r} is not a port number")
        protocol = port.get("Protocol", "TCP").upper()
        if protocol not in ("TCP", "UDP", "SCTP"):
            raise errors.InvalidParameter(f"{where}.Port.{n}.Protocol", "TCP, UDP or SCTP")
        ports.append(model.Port(number, protocol))
    return tuple(ports)


def parse_containers(params: Params, prefix: str) -> tuple[model.ContainerSpec, ...]:
    containers = []
    for index, fields in params.indexed(prefix).items():
        where = f"{prefix}.{index}"
        name, image = fields.get("Name"), fields.get("Image")
        if not name:
            raise errors.MissingParameter(f"{where}.Name")
        if not image:
            raise errors.MissingParameter(f"{where}.Image")
        if not _CONTAINER_NAME(name):
            raise errors.InvalidParameter(f"{where}.Name", "lowercase letters, digits and '-', at most 63")
        env = []
        for n, var in _subgroups(fields, "EnvironmentVar", where).items():
            if "Key" not in var:
                raise errors.MissingParameter(f"{where}.EnvironmentVar.{n}.Key")
            field_path = var.get("FieldRef.FieldPath")
            if field_path is None:
                env.append(model.EnvVar(var["Key"], var.get("Value", "")))
                continue
            if field_path not in model.ENV_FIELDS:
                raise errors.InvalidParameter(
                    f"{where}.EnvironmentVar.{n}.FieldRef.FieldPath",
                    f"{field_path!r} is not supported (only {', '.join(sorted(model.ENV_FIELDS))})",
                )
            if var.get("Value"):  # unconfirmed on the real cloud: the simulator is strict
                raise errors.InvalidParameter(
                    f"{where}.EnvironmentVar.{n}.Value", "a Value and a FieldRef exclude each other"
                )
            env.append(model.EnvVar(var["Key"], "", field_path))
        ports = _ports(fields, where)
        containers.append(
            model.ContainerSpec(
                name=name,
                image=image,
                command=_sublist(fields, "Command"),
                args=_sublist(fields, "Arg"),
                env=tuple(env),
                ports=ports,
                cpu=_float(f"{where}.Cpu", fields.get("Cpu"), 0.0),
                memory=_float(f"{where}.Memory", fields.get("Memory"), 0.0),
                working_dir=fields.get("WorkingDir", ""),
                image_pull_policy=_pull_policy(fields, where),
                **eci_podspec.container_fields(fields, where),
                gpu=Params([(f"{where}.Gpu", fields.get("Gpu", ""))]).integer(f"{where}.Gpu", default=0, low=0) or 0,
                volume_mounts=_mounts(fields, where),
            )
        )
    return tuple(containers)


def _pull_policy(fields: dict[str, str], where: str) -> str:
    policy = fields.get("ImagePullPolicy", "IfNotPresent")
    if policy not in ("Always", "IfNotPresent", "Never"):
        raise errors.InvalidParameter(f"{where}.ImagePullPolicy", "Always, IfNotPresent or Never")
    return policy


def _mounts(fields: dict[str, str], where: str) -> tuple[model.VolumeMount, ...]:
    mounts = []
    for n, mount in _subgroups(fields, "VolumeMount", where).items():
        if not mount.get("Name") or not mount.get("MountPath", "").startswith("/"):
            raise errors.InvalidParameter(f"{where}.VolumeMount.{n}", "a Name and an absolute MountPath")
        flag = _bool(mount, "ReadOnly", f"{where}.VolumeMount.{n}")
        mounts.append(model.VolumeMount(mount["Name"], mount["MountPath"], flag, mount.get("SubPath", "")))
    return tuple(mounts)


def rfc3339_param(p: Params, name: str) -> float | None:
    text = p.text(name)
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise errors.InvalidParameter(name, f"{text!r} is not an RFC 3339 time") from exc
