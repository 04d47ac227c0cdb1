"""A container group as ARM shows it: the cloud's instance, its states, containers and events, in ARM's JSON.

The cloud's statuses map to ARM's two: ``provisioningState`` (how the PUT is going) and
``instanceView.state`` (what the containers do), ``states`` says how. Events about one
container go to that container's instance view; with several containers, the rest go to the
group's; a Spot eviction (``GROUP_EVENTS``) always goes to the group's. Secure environment
variables are never echoed, as ACI does.
"""

from __future__ import annotations

from typing import Any

from vnode.cloudsim import aci_arm, aci_gpu, aci_probes, aci_volumes, model, spot

#: Events about the whole group, shown on the group's instance view even when it has one container.
GROUP_EVENTS = frozenset({spot.EVICTION, spot.EVICTION_NOTICE})


def states(inst: model.Instance) -> tuple[str, str]:
    """(provisioningState, instanceView.state) of an instance."""
    status = inst.status
    if status == model.SCHEDULING:
        return "Pending", "Pending"
    if status == model.PENDING:
        return "Creating", "Pending"
    if status == model.RUNNING:
        return "Succeeded", "Running"
    if status == model.RESTARTING:
        return "Succeeded", "Pending"
    if status == model.UPDATING:  # only through ECI's UpdateContainerGroup; the containers keep running
        return "Updating", "Running"
    if status == model.SUCCEEDED:
        return "Succeeded", "Succeeded"
    if status == model.TERMINATING:
        return "Deleting", "Stopped"
    if status == model.STOPPED:
        return "Succeeded", "Stopped"
    if status in (model.FAILED, model.EXPIRED) and inst.started_at:
        return "Succeeded", "Failed"
    return "Failed", "Failed"  # Failed before start (image pull), ScheduleFailed


def group(inst: model.Instance, vpc_id: str) -> dict[str, Any]:
    """The container group's JSON (``vpc_id``: the virtual network its subnets belong to)."""
    meta = aci_arm.meta_of(inst)
    sub, rg, name = aci_arm.split_id(meta, inst)
    body: dict[str, Any] = {
        "id": aci_arm.arm_id(sub, rg, name),
        "name": name,
        "type": aci_arm.RESOURCE_TYPE,
        "location": meta.loc,
        "tags": {t.key: t.value for t in inst.spec.tags if t.key not in aci_arm.INTERNAL_TAGS},
        "properties": _properties(inst, meta),
    }
    if meta.subnets:
        subnet = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{vpc_id}"
        body["properties"]["subnetIds"] = [{"id": f"{subnet}/subnets/{inst.vswitch_id}", "name": inst.vswitch_id}]
    if meta.zones:
        body["zones"] = meta.zones
    return body


def _properties(inst: model.Instance, meta: aci_arm.Meta) -> dict[str, Any]:
    provisioning, state = states(inst)
    single = len(inst.spec.containers) == 1
    pairs = zip(inst.spec.containers, inst.containers, strict=True)
    props: dict[str, Any] = {
        "sku": meta.sku,
        **({"priority": meta.prio} if meta.prio else {}),
        "provisioningState": provisioning,
        "containers": [_container(inst, spec, cstate, meta) for spec, cstate in pairs],
        "restartPolicy": inst.spec.restart_policy,
        "osType": meta.os,
        "ipAddress": _ip_address(inst, meta),
        "instanceView": {
            "events": [_event(e) for e in inst.events if _group_event(e, inst, single)],
            "state": state,
        },
    }
    if inst.spec.volumes:
        props["volumes"] = [aci_volumes.render(v) for v in inst.spec.volumes]
    if inst.spec.registry_credentials:  # ACI never returns the passwords
        props["imageRegistryCredentials"] = [
            {"server": c.server, "username": c.user_name} for c in inst.spec.registry_credentials
        ]
    dns = inst.spec.dns_config
    if dns is not None:
        props["dnsConfig"] = {
            "nameServers": list(dns.name_servers),
            **({"searchDomains": " ".join(dns.searches)} if dns.searches else {}),
            **(
                {"options": " ".join(f"{o.name}:{o.value}" if o.value else o.name for o in dns.options)}
                if dns.options
                else {}
            ),
        }
    if inst.spec.init_containers:
        props["initContainers"] = [
            {
                "name": c.name,
                "properties": {
                    "image": c.image,
                    "command": [*c.command, *c.args],
                    "environmentVariables": [_env(e, meta) for e in c.env],
                    **_security(c),
                },
            }
            for c in inst.spec.init_containers
        ]
    return props


def public_address(inst: model.Instance) -> str:
    """The public IP of a group with ``ipAddress.type`` ``Public``: from the simulator's own range
    20.64.0.0/10 (distinct from its vSwitches and from ECI's EIPs), one per instance (by its
    sequence number, so a restart shows the same), never a .0 or .255."""
    rest, host = divmod((inst.seq - 1) % (64 * 256 * 254), 254)
    return f"20.{64 + rest // 256}.{rest % 256}.{host + 1}"


def _ip_address(inst: model.Instance, meta: aci_arm.Meta) -> dict[str, Any]:
    """``ipAddress``: a public group shows its public address (and, with a label, the name ACI
    serves it under); any other its address on the vSwitch it landed on."""
    out: dict[str, Any] = {
        "ports": [{"protocol": proto, "port": port} for port, proto in meta.ports],
        "type": meta.ip or "Private",
        "ip": public_address(inst) if meta.ip == "Public" else inst.ip,
    }
    if meta.dns:
        region = meta.loc.replace(" ", "").lower()
        out |= {"dnsNameLabel": meta.dns, "fqdn": f"{meta.dns}.{region}.azurecontainer.io"}
    return out


def _container(
    inst: model.Instance, spec: model.ContainerSpec, cstate: model.ContainerState, meta: aci_arm.Meta
) -> dict[str, Any]:
    single = len(inst.spec.containers) == 1
    return {
        "name": spec.name,
        "properties": {
            "image": spec.image,
            "command": [*spec.command, *spec.args],
            "ports": [{"protocol": p.protocol, "port": p.port} for p in spec.ports],
            "environmentVariables": [_env(e, meta) for e in spec.env],
            "resources": {"requests": _requests(inst, spec)},
            **_security(spec),
            **_probes(spec),
            **_mounts(spec),
            "instanceView": {
                "restartCount": cstate.restart_count,
                "currentState": _run(cstate.current),
                **({"previousState": _run(cstate.previous)} if cstate.previous else {}),
                "events": [
                    _event(e) for e in inst.events if e.reason not in GROUP_EVENTS and (single or _mentions(e, spec))
                ],
            },
        },
    }


def _mounts(spec: model.ContainerSpec) -> dict[str, Any]:
    kept = [{"name": m.name, "mountPath": m.mount_path, "readOnly": m.read_only} for m in spec.volume_mounts]
    return {"volumeMounts": kept} if kept else {}


def _probes(spec: model.ContainerSpec) -> dict[str, Any]:
    kept = (("livenessProbe", spec.liveness_probe), ("readinessProbe", spec.readiness_probe))
    return {kind: aci_probes.render(probe) for kind, probe in kept if probe is not None}


def _requests(inst: model.Instance, spec: model.ContainerSpec) -> dict[str, Any]:
    gpu = aci_gpu.resource(inst.spec.instance_type, spec.gpu)
    return {"cpu": spec.cpu, "memoryInGB": spec.memory, **({"gpu": gpu} if gpu else {})}


def _security(spec: model.ContainerSpec) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if spec.run_as_user is not None:
        context["runAsUser"] = spec.run_as_user
    if spec.run_as_group is not None:
        context["runAsGroup"] = spec.run_as_group
    capabilities = {k: list(v) for k, v in (("add", spec.capabilities), ("drop", spec.capabilities_drop)) if v}
    if capabilities:
        context["capabilities"] = capabilities
    if spec.allow_privilege_escalation is not None:
        context["allowPrivilegeEscalation"] = spec.allow_privilege_escalation
    return {"securityContext": context} if context else {}


def failure(inst: model.Instance) -> dict[str, str]:
    """ARM's error for a group that failed to provision, from the cloud's first warning event."""
    warning = next((e for e in inst.events if e.type == "Warning"), None)
    if warning is None:
        return {"code": "Failed", "message": f"The container group '{inst.spec.name}' failed to start."}
    if warning.reason == "Failed" and "pull image" in warning.message:
        return {"code": "InaccessibleImage", "message": warning.message}
    if warning.reason == "FailedScheduling":
        return {"code": "InsufficientCapacity", "message": warning.message}
    return {"code": warning.reason, "message": warning.message}


def _env(env: model.EnvVar, meta: aci_arm.Meta) -> dict[str, str]:
    if env.key in meta.secure:
        return {"name": env.key}  # ACI never returns secure values
    return {"name": env.key, "value": env.value}


def _run(run: model.Run) -> dict[str, Any]:
    out: dict[str, Any] = {"state": run.state, "detailStatus": run.reason or run.message}
    if run.started_at:
        out["startTime"] = aci_arm.iso(run.started_at)
    if run.state == "Terminated":
        out["exitCode"] = run.exit_code
        out["finishTime"] = aci_arm.iso(run.finished_at)
    return out


def _event(event: model.Event) -> dict[str, Any]:
    stamp = aci_arm.iso(event.at)
    return {
        "count": event.count,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "name": event.reason,
        "message": event.message,
        "type": event.type,
    }


def _mentions(event: model.Event, spec: model.ContainerSpec) -> bool:
    return f'"{spec.image}"' in event.message or event.message.endswith(f" {spec.name}")


def _group_event(event: model.Event, inst: model.Instance, single: bool) -> bool:
    if event.reason in GROUP_EVENTS:
        return True
    return not single and not any(_mentions(event, spec) for spec in inst.spec.containers)
