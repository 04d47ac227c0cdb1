"""An ``InstanceSpec`` as CreateContainerGroup's (and UpdateContainerGroup's) flat parameters."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence

from vnode import errors, models

__all__ = ["create_params", "eip_params", "image_cache_params", "size_limit", "volume_params"]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _probe(params: dict[str, str], prefix: str, probe: models.Probe) -> None:
    if probe.exec_command:
        for n, word in enumerate(probe.exec_command, 1):
            params[f"{prefix}.Exec.Command.{n}"] = word
    elif probe.http_port is not None:
        params[f"{prefix}.HttpGet.Path"] = probe.http_path or "/"
        params[f"{prefix}.HttpGet.Port"] = str(probe.http_port)
        params[f"{prefix}.HttpGet.Scheme"] = probe.http_scheme
    elif probe.tcp_port is not None:
        params[f"{prefix}.TcpSocket.Port"] = str(probe.tcp_port)
    params[f"{prefix}.InitialDelaySeconds"] = str(probe.initial_delay_seconds)
    params[f"{prefix}.PeriodSeconds"] = str(probe.period_seconds)
    params[f"{prefix}.TimeoutSeconds"] = str(probe.timeout_seconds)
    params[f"{prefix}.SuccessThreshold"] = str(probe.success_threshold)
    params[f"{prefix}.FailureThreshold"] = str(probe.failure_threshold)


def _handler(params: dict[str, str], prefix: str, hook: models.Handler) -> None:
    """``<prefix>Exec.N``, ``<prefix>HttpGetPath/Port/Scheme/Host`` or ``<prefix>TcpSocketPort/Host``."""
    if hook.exec_command:
        for n, word in enumerate(hook.exec_command, 1):
            params[f"{prefix}Exec.{n}"] = word
    elif hook.http_port is not None:
        params[f"{prefix}HttpGetPath"] = hook.http_path or "/"
        params[f"{prefix}HttpGetPort"] = str(hook.http_port)
        params[f"{prefix}HttpGetScheme"] = hook.http_scheme
        if hook.http_host:
            params[f"{prefix}HttpGetHost"] = hook.http_host
        for n, (name, value) in enumerate(hook.http_headers, 1):
            params[f"{prefix}HttpGetHttpHeader.{n}.Name"] = name
            params[f"{prefix}HttpGetHttpHeader.{n}.Value"] = value
    elif hook.tcp_port is not None:
        params[f"{prefix}TcpSocketPort"] = str(hook.tcp_port)
        if hook.tcp_host:
            params[f"{prefix}TcpSocketHost"] = hook.tcp_host


def _container(params: dict[str, str], prefix: str, c: models.ContainerSpec, read_only: frozenset[str]) -> None:
    params[f"{prefix}.Name"] = c.name
    params[f"{prefix}.Image"] = c.image
    params[f"{prefix}.ImagePullPolicy"] = c.image_pull_policy
    for n, word in enumerate(c.command, 1):
        params[f"{prefix}.Command.{n}"] = word
    for n, word in enumerate(c.args, 1):
        params[f"{prefix}.Arg.{n}"] = word
    for n, var in enumerate(c.env, 1):
        params[f"{prefix}.EnvironmentVar.{n}.Key"] = var.name
        if var.field_path:  # the cloud fills it in once it has allocated the instance (status.podIP)
            params[f"{prefix}.EnvironmentVar.{n}.FieldRef.FieldPath"] = var.field_path
        else:
            params[f"{prefix}.EnvironmentVar.{n}.Value"] = var.value
    for n, port in enumerate(c.ports, 1):
        params[f"{prefix}.Port.{n}.Port"] = str(port.container_port)
        params[f"{prefix}.Port.{n}.Protocol"] = port.protocol
    for n, mount in enumerate(c.volume_mounts, 1):
        params[f"{prefix}.VolumeMount.{n}.Name"] = mount.name
        params[f"{prefix}.VolumeMount.{n}.MountPath"] = mount.mount_path
        # a volume read-only as a whole (a claim's readOnly) is mounted read-only, as the kubelet does
        params[f"{prefix}.VolumeMount.{n}.ReadOnly"] = "true" if mount.read_only or mount.name in read_only else "false"
        if mount.sub_path:
            params[f"{prefix}.VolumeMount.{n}.SubPath"] = mount.sub_path
    if c.working_dir:
        params[f"{prefix}.WorkingDir"] = c.working_dir
    if c.cpu:
        params[f"{prefix}.Cpu"] = _num(c.cpu)
    if c.memory_gib:
        params[f"{prefix}.Memory"] = _num(c.memory_gib)
    if c.gpus:
        params[f"{prefix}.Gpu"] = str(c.gpus)
    if c.stdin:
        params[f"{prefix}.Stdin"] = "true"
    if c.tty:
        params[f"{prefix}.Tty"] = "true"
    if c.run_as_user is not None:
        params[f"{prefix}.SecurityContext.RunAsUser"] = str(c.run_as_user)
    if c.read_only_root_filesystem:
        params[f"{prefix}.SecurityContext.ReadOnlyRootFilesystem"] = "true"
    for n, capability in enumerate(c.capabilities_add, 1):
        params[f"{prefix}.SecurityContext.Capability.Add.{n}"] = capability
    if c.termination_message_path != "/dev/termination-log":
        params[f"{prefix}.TerminationMessagePath"] = c.termination_message_path
    if c.termination_message_policy != "File":
        params[f"{prefix}.TerminationMessagePolicy"] = c.termination_message_policy
    if c.post_start is not None:
        _handler(params, f"{prefix}.LifecyclePostStartHandler", c.post_start)
    if c.pre_stop is not None:
        _handler(params, f"{prefix}.LifecyclePreStopHandler", c.pre_stop)
    # ECI has no startup probe; the node's readiness comes from the readiness probe alone.
    if c.liveness_probe is not None:
        _probe(params, f"{prefix}.LivenessProbe", c.liveness_probe)
    if c.readiness_probe is not None:
        _probe(params, f"{prefix}.ReadinessProbe", c.readiness_probe)


def create_params(
    spec: models.InstanceSpec, *, region: str, vswitches: Sequence[str], security_group: str, strategy: str
) -> dict[str, str]:
    """CreateContainerGroup's flat parameters for ``spec`` on the given vSwitches."""
    params: dict[str, str] = {
        "RegionId": region,
        "ContainerGroupName": spec.name,
        "ClientToken": spec.client_token,
        "Cpu": _num(spec.cpu),
        "Memory": _num(spec.memory_gib),
        "RestartPolicy": spec.restart_policy,
        "SecurityGroupId": security_group,
        "VSwitchId": ",".join(vswitches),
        "ScheduleStrategy": strategy,
        "TerminationGracePeriodSeconds": str(spec.termination_grace_seconds),
    }
    if spec.instance_type:
        params["InstanceType"] = spec.instance_type
    if spec.hostname:
        params["HostName"] = spec.hostname
    params.update(image_cache_params(spec.annotations))
    _pod_level(params, spec)
    for n, (key, value) in enumerate(sorted(spec.tags.items()), 1):
        params[f"Tag.{n}.Key"] = key
        params[f"Tag.{n}.Value"] = value
    read_only = frozenset(v.name for v in spec.volumes if v.read_only)
    for n, c in enumerate(spec.containers, 1):
        _container(params, f"Container.{n}", c, read_only)
    for n, c in enumerate(spec.init_containers, 1):
        _container(params, f"InitContainer.{n}", c, read_only)
    volume_params(params, spec.volumes)
    params.update(eip_params(spec.annotations))
    return params


#: The pod annotations ECI reads for a public address, and what it writes back once allocated.
WITH_EIP = "k8s.aliyun.com/eci-with-eip"
EIP_BANDWIDTH = "k8s.aliyun.com/eip-bandwidth"
EIP_ID = "k8s.aliyun.com/eci-eip-instanceid"
ALLOCATED_ADDRESS = "k8s.aliyun.com/allocated-eipAddress"
ALLOCATED_EIP = "k8s.aliyun.com/allocated-eipInstanceId"  # from VPC's DescribeEipAddresses (eips.py)
#: The instance type ECI used (a GPU type, say), written back to the pod.
INSTANCE_SPEC = "k8s.aliyun.com/eci-instance-spec"


def eip_params(annotations: Mapping[str, str]) -> dict[str, str]:
    """AutoCreateEip/EipBandwidth/EipInstanceId from the pod's EIP annotations (none: no EIP)."""
    params: dict[str, str] = {}
    with_eip = annotations.get(WITH_EIP, "").strip().lower()
    if with_eip not in ("", "true", "false"):
        raise errors.InvalidSpec(f"{WITH_EIP}: {annotations[WITH_EIP]!r} is not true or false")
    if annotations.get(EIP_ID, "").strip():
        params["EipInstanceId"] = annotations[EIP_ID].strip()
    elif with_eip == "true":
        params["AutoCreateEip"] = "true"
    bandwidth = annotations.get(EIP_BANDWIDTH, "").strip()
    if bandwidth and params:
        if not bandwidth.isdigit() or not 1 <= int(bandwidth) <= 500:
            raise errors.InvalidSpec(f"{EIP_BANDWIDTH}: {bandwidth!r} is not a bandwidth of 1 to 500 Mbit/s")
        params["EipBandwidth"] = bandwidth
    return params


def _pod_level(params: dict[str, str], spec: models.InstanceSpec) -> None:
    """DnsConfig, HostAliase and the pod's SecurityContext (sysctls)."""
    for n, server in enumerate(spec.dns_nameservers, 1):
        params[f"DnsConfig.NameServer.{n}"] = server
    for n, domain in enumerate(spec.dns_searches, 1):
        params[f"DnsConfig.Search.{n}"] = domain
    for n, option in enumerate(spec.dns_options, 1):
        params[f"DnsConfig.Option.{n}.Name"] = option.name
        if option.value:
            params[f"DnsConfig.Option.{n}.Value"] = option.value
    for n, alias in enumerate(spec.host_aliases, 1):
        params[f"HostAliase.{n}.Ip"] = alias.ip
        for m, name in enumerate(alias.hostnames, 1):
            params[f"HostAliase.{n}.Hostname.{m}"] = name
    for n, login in enumerate(spec.registry_credentials, 1):
        params[f"ImageRegistryCredential.{n}.Server"] = login.server
        params[f"ImageRegistryCredential.{n}.UserName"] = login.username
        params[f"ImageRegistryCredential.{n}.Password"] = login.password
    for n, sysctl in enumerate(spec.sysctls, 1):
        params[f"SecurityContext.Sysctl.{n}.Name"] = sysctl.name
        params[f"SecurityContext.Sysctl.{n}.Value"] = sysctl.value


#: Pod annotations of ECI's image caches: a named cache (which must be Ready), or automatic matching.
IMAGE_CACHE_ID = ("k8s.aliyun.com/eci-imc-id", "k8s.aliyun.com/eci-image-snapshot-id")
AUTO_IMAGE_CACHE = ("k8s.aliyun.com/eci-auto-imc", "k8s.aliyun.com/eci-image-cache")  # newer name first


def image_cache_params(annotations: Mapping[str, str]) -> dict[str, str]:
    """``ImageSnapshotId`` for a pod naming its cache, else ``AutoMatchImageCache`` (on unless turned off)."""
    for key in IMAGE_CACHE_ID:
        if annotations.get(key, "").strip():
            return {"ImageSnapshotId": annotations[key].strip()}
    auto = next((annotations[key] for key in AUTO_IMAGE_CACHE if key in annotations), "true")
    if auto.strip().lower() not in ("true", "false"):
        raise errors.InvalidSpec(f"annotation {AUTO_IMAGE_CACHE[0]}: {auto!r} is neither true nor false")
    return {"AutoMatchImageCache": auto.strip().lower()}


def volume_params(params: dict[str, str], volumes: Sequence[models.VolumeSpec]) -> None:
    """``Volume.N.*`` as CreateContainerGroup and UpdateContainerGroup take them."""
    for n, volume in enumerate(volumes, 1):
        prefix = f"Volume.{n}"
        params[f"{prefix}.Name"] = volume.name
        if volume.kind == "emptyDir":
            params[f"{prefix}.Type"] = "EmptyDirVolume"
            if volume.medium:
                params[f"{prefix}.EmptyDirVolume.Medium"] = volume.medium
            if volume.size_limit_gib is not None:
                params[f"{prefix}.EmptyDirVolume.SizeLimit"] = size_limit(volume.size_limit_gib)
        elif volume.kind == "files":
            params[f"{prefix}.Type"] = "ConfigFileVolume"
            for m, item in enumerate(volume.files, 1):
                params[f"{prefix}.ConfigFileVolume.ConfigFileToPath.{m}.Path"] = item.path
                params[f"{prefix}.ConfigFileVolume.ConfigFileToPath.{m}.Content"] = base64.b64encode(
                    item.content
                ).decode()
                if item.mode is not None:
                    params[f"{prefix}.ConfigFileVolume.ConfigFileToPath.{m}.Mode"] = str(item.mode)
        elif volume.kind == "nfs":  # a NAS file system's mount target
            params[f"{prefix}.Type"] = "NFSVolume"
            params[f"{prefix}.NFSVolume.Server"] = volume.server
            params[f"{prefix}.NFSVolume.Path"] = volume.path
            params[f"{prefix}.NFSVolume.ReadOnly"] = "true" if volume.read_only else "false"
        elif volume.kind == "disk":
            params[f"{prefix}.Type"] = "DiskVolume"
            params[f"{prefix}.DiskVolume.DiskId"] = volume.disk_id
            if volume.fs_type:
                params[f"{prefix}.DiskVolume.FsType"] = volume.fs_type
            if volume.size_gib:
                params[f"{prefix}.DiskVolume.DiskSize"] = str(volume.size_gib)
        else:
            raise errors.InvalidSpec(f"volume {volume.name}: ECI does not support volumes of kind {volume.kind!r}")


def size_limit(gib: float) -> str:
    """An emptyDir's SizeLimit as ECI takes it: whole ``Gi``, else whole ``Mi`` rounded up (0.25 -> 256Mi)."""
    if float(gib).is_integer():
        return f"{int(gib)}Gi"
    return f"{math.ceil(gib * 1024 - 1e-9)}Mi"
