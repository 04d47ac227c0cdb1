"""The ECI dialect's answers: an instance as DescribeContainerGroups, DescribeContainerGroupStatus
and DescribeContainerGroupEvents show it, with the field names the SDK's models read.

The status follows Kubernetes' shape (phase, conditions, container statuses), as ECI's
``DescribeContainerGroupStatus`` does; ``STATUS_PHASE`` maps the cloud's statuses to phases.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from vnode.cloudsim import model, timefmt

STATUS_PHASE = {
    model.SCHEDULING: "Pending",
    model.PENDING: "Pending",
    model.RESTARTING: "Pending",
    model.UPDATING: "Pending",
    model.RUNNING: "Running",
    model.TERMINATING: "Running",
    model.SUCCEEDED: "Succeeded",
    model.FAILED: "Failed",
    model.EXPIRED: "Failed",
    model.SCHEDULE_FAILED: "Failed",
    model.STOPPED: "Failed",  # only through ACI's stop; the containers were killed
}


def _container(spec: model.ContainerSpec, state: model.ContainerState) -> dict[str, Any]:
    return {
        "Name": spec.name,
        "Image": spec.image,
        "Cpu": spec.cpu,
        "Memory": spec.memory,
        "Gpu": spec.gpu,
        "Commands": list(spec.command),
        "Args": list(spec.args),
        "EnvironmentVars": [_env_var(e) for e in spec.env],
        "Ports": [{"Port": port.port, "Protocol": port.protocol} for port in spec.ports],
        "WorkingDir": spec.working_dir,
        "ImagePullPolicy": spec.image_pull_policy,
        "Ready": state.ready,
        "RestartCount": state.restart_count,
        "CurrentState": _state(state.current),
        "PreviousState": _state(state.previous) if state.previous else {},
        "VolumeMounts": [
            {"Name": v.name, "MountPath": v.mount_path, "ReadOnly": v.read_only, "SubPath": v.sub_path}
            for v in spec.volume_mounts
        ],
        "SecurityContext": {
            **({"RunAsUser": spec.run_as_user} if spec.run_as_user is not None else {}),
            "ReadOnlyRootFilesystem": spec.read_only_root_filesystem,
            "Capability": {"Adds": list(spec.capabilities)},
        },
        **_hook_json("LifecyclePostStartHandler", spec.post_start),
        **_hook_json("LifecyclePreStopHandler", spec.pre_stop),
        **_probe_json("LivenessProbe", spec.liveness_probe),
        **_probe_json("ReadinessProbe", spec.readiness_probe),
        "TerminationMessagePath": spec.termination_message_path or "/dev/termination-log",
        "TerminationMessagePolicy": spec.termination_message_policy or "File",
    }


def _probe_json(name: str, probe: model.Probe | None) -> dict[str, Any]:
    """A probe as DescribeContainerGroups returns it (``LivenessProbe: {Execs, HttpGet, TcpSocket, ...}``)."""
    if probe is None:
        return {}
    check: dict[str, Any] = {"Execs": list(probe.exec)} if probe.exec else {}
    if probe.http_port is not None:
        check = {"HttpGet": {"Path": probe.http_path, "Port": probe.http_port, "Scheme": probe.http_scheme}}
    elif probe.tcp_port is not None:
        check = {"TcpSocket": {"Port": probe.tcp_port}}
    return {name: {**check, "InitialDelaySeconds": probe.initial_delay_seconds, "PeriodSeconds": probe.period_seconds,
                   "TimeoutSeconds": probe.timeout_seconds, "SuccessThreshold": probe.success_threshold,
                   "FailureThreshold": probe.failure_threshold}}  # fmt: skip


def _hook_json(name: str, hook: model.Hook | None) -> dict[str, Any]:
    """A lifecycle handler as DescribeContainerGroups' flat container fields (``LifecyclePreStopHandlerExecs``...)."""
    if hook is None:
        return {}
    if hook.exec:
        return {f"{name}Execs": list(hook.exec)}
    if hook.http_port is not None:
        return {
            f"{name}HttpGetPath": hook.http_path,
            f"{name}HttpGetPort": hook.http_port,
            f"{name}HttpGetScheme": hook.http_scheme,
            f"{name}HttpGetHost": hook.http_host,
            f"{name}HttpGetHttpHeaders": [{"Name": h.name, "Value": h.value} for h in hook.http_headers],
        }
    return {f"{name}TcpSocketPort": hook.tcp_port, f"{name}TcpSocketHost": hook.tcp_host}


def _event(inst: model.Instance, event: model.Event, n: int) -> dict[str, Any]:
    return {
        "Count": event.count,
        "Type": event.type,
        "Name": f"{inst.spec.name}.{n}",
        "Message": event.message,
        "FirstTimestamp": timefmt.rfc3339(event.at),
        "LastTimestamp": timefmt.rfc3339(event.at),
        "Reason": event.reason,
    }


def group(inst: model.Instance, vpc_id: str, with_events: bool) -> dict[str, Any]:
    """An instance as DescribeContainerGroups shows it."""
    containers = [_container(spec, state) for spec, state in zip(inst.spec.containers, inst.containers, strict=True)]
    events = [_event(inst, e, n) for n, e in enumerate(inst.events)] if with_events else []
    return {
        "ContainerGroupId": inst.id,
        "ContainerGroupName": inst.spec.name,
        "RegionId": inst.region,
        "ZoneId": inst.zone,
        "VSwitchId": inst.vswitch_id,
        "SecurityGroupId": inst.spec.security_group_id,
        "VpcId": vpc_id,
        "IntranetIp": inst.ip,
        "InternetIp": inst.eip_address,
        "Status": inst.status,
        "Cpu": inst.cpu,
        "Memory": inst.memory,
        "InstanceType": inst.spec.instance_type,
        "SpotStrategy": inst.spec.spot_strategy or "NoSpot",
        "SpotPriceLimit": inst.spec.spot_price_limit,
        "RestartPolicy": inst.spec.restart_policy,
        "CreationTime": timefmt.rfc3339(inst.created_at),
        "SucceededTime": timefmt.rfc3339(inst.succeeded_at),
        "FailedTime": timefmt.rfc3339(inst.failed_at),
        "ExpiredTime": "",
        "Discount": 0.0,
        "Tags": [{"Key": t.key, "Value": t.value} for t in inst.spec.tags],
        "Containers": containers,
        "InitContainers": [],
        "Volumes": [_volume_json(v) for v in inst.spec.volumes],
        "Events": events,
        "EniInstanceId": f"eni-{inst.id[4:]}",
        "ComputeCategory": "economy",
        "HostAliases": [{"Ip": a.ip, "Hostnames": list(a.hostnames)} for a in inst.spec.host_aliases],
        "DnsConfig": _dns_json(inst.spec.dns_config),
        "EciSecurityContext": {"Sysctls": [{"Name": s.name, "Value": s.value} for s in inst.spec.sysctls]},
    }


def _dns_json(config: model.DnsConfig | None) -> dict[str, Any]:
    if config is None:
        return {}
    return {
        "NameServers": list(config.name_servers),
        "Searches": list(config.searches),
        "Options": [{"Name": o.name, "Value": o.value} for o in config.options],
    }


def _state(run: model.Run) -> dict[str, Any]:
    return {
        "State": run.state,
        "DetailStatus": run.reason,
        "Reason": run.reason,
        "Message": run.message,
        "ExitCode": run.exit_code,
        "StartTime": timefmt.rfc3339(run.started_at),
        "FinishTime": timefmt.rfc3339(run.finished_at),
        "Signal": 9 if run.exit_code == 137 else 0,
    }


def _k8s_state(inst: model.Instance, run: model.Run) -> dict[str, Any]:
    if run.state == "Running":
        started = timefmt.rfc3339(run.started_at)
        # The SDK model reads the oddly named key StartedAtstartedAt; send both spellings.
        return {"Running": {"StartedAt": started, "StartedAtstartedAt": started}}
    if run.state == "Terminated":
        return {
            "Terminated": {
                "ExitCode": run.exit_code,
                "Reason": run.reason,
                "Message": run.message,
                "StartedAt": timefmt.rfc3339(run.started_at),
                "FinishedAt": timefmt.rfc3339(run.finished_at),
                "ContainerID": f"eci://{inst.id[4:]}",
                "Signal": 9 if run.exit_code == 137 else 0,
            }
        }
    return {"Waiting": {"Reason": run.reason, "Message": run.message}}


def status(inst: model.Instance) -> dict[str, Any]:
    phase = STATUS_PHASE[inst.status]
    ready = inst.status == model.RUNNING and all(c.ready for c in inst.containers)
    scheduled = inst.status != model.SCHEDULING and inst.status != model.SCHEDULE_FAILED
    stamp = timefmt.rfc3339(inst.status_at)
    conditions = [
        {"type": "PodScheduled", "status": str(scheduled), "lastTransitionTime": stamp, "Reason": "", "Message": ""},
        {"type": "Initialized", "status": str(scheduled), "lastTransitionTime": stamp, "Reason": "", "Message": ""},
        {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": stamp, "Reason": "", "Message": ""},
        {"type": "Ready", "status": str(ready), "lastTransitionTime": stamp, "Reason": "", "Message": ""},
    ]
    statuses = [
        {
            "Name": spec.name,
            "Image": spec.image,
            "ImageID": _image_id(spec.image),
            "Ready": state.ready,
            "Started": state.current.state == "Running",
            "RestartCount": state.restart_count,
            "State": _k8s_state(inst, state.current),
            "LastState": _k8s_state(inst, state.previous) if state.previous else {},
        }
        for spec, state in zip(inst.spec.containers, inst.containers, strict=True)
    ]
    return {
        "ContainerGroupId": inst.id,
        "Name": inst.spec.name,
        "Namespace": "default",
        "uuid": inst.id,
        "Annotations": "",
        "Status": inst.status,
        "PodStatus": {
            "Phase": phase,
            "Conditions": conditions,
            "ContainerStatuses": statuses,
            "PodIp": inst.ip,
            "PodIps": [{"Ip": inst.ip}],
            "HostIp": inst.ip,
            "QosClass": "Guaranteed",
            "StartTime": timefmt.rfc3339(inst.started_at or inst.created_at),
        },
    }


def k8s_event(inst: model.Instance, event: model.Event, n: int) -> dict[str, Any]:
    stamp = timefmt.rfc3339(event.at)
    return {
        "Count": event.count,
        "Type": event.type,
        "Reason": event.reason,
        "Message": event.message,
        "FirstTimestamp": stamp,
        "LastTimestamp": stamp,
        "Metadata": {"Name": f"{inst.spec.name}.{n}", "Namespace": "default"},
        "Source": {"Component": "EciService", "Host": ""},
        "involvedObject": {
            "Kind": "Pod",
            "Name": inst.spec.name,
            "Namespace": "default",
            "Uid": inst.id,
            "ApiVersion": "v1",
        },
        "ReportingComponent": "EciService",
        "ReportingInstance": "",
    }


@functools.lru_cache(maxsize=4096)
def _image_id(image: str) -> str:
    return f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _env_var(env: model.EnvVar) -> dict[str, Any]:
    """As DescribeContainerGroups shows it: the reference, not the filled-in value (an empty
    ``Value`` and ``ValueFrom.FieldRef.FieldPath``, as the SDK's response model has it)."""
    if env.field_path:
        return {"Key": env.key, "Value": "", "ValueFrom": {"FieldRef": {"FieldPath": env.field_path}}}
    return {"Key": env.key, "Value": env.value}


def _volume_json(volume: model.Volume) -> dict[str, Any]:
    """A volume as DescribeContainerGroups shows it (file contents in base64, as they were sent)."""
    out: dict[str, Any] = {"Name": volume.name, "Type": volume.type}
    if volume.type == "ConfigFileVolume":
        out["ConfigFileVolumeConfigFileToPaths"] = [{"Path": f.path, "Content": f.content} for f in volume.files]
    elif volume.type == "NFSVolume":
        out.update(NFSVolumeServer=volume.server, NFSVolumePath=volume.path, NFSVolumeReadOnly=volume.read_only)
    elif volume.type == "DiskVolume":
        out.update(DiskVolumeDiskId=volume.disk_id, DiskVolumeFsType=volume.fs_type)
    else:
        out["EmptyDirVolumeMedium"] = volume.medium
        out["EmptyDirVolumeSizeLimit"] = volume.size_limit
    return out
