"""A container group's spec from ARM's PUT body: the request structs, ARM's rules, the cloud's spec.

What the SDK serializes is decoded with msgspec into the structs below (ARM's camelCase field
names: msgspec decodes by attribute name), checked against ARM's rules (names, tags, zones,
subnets), and turned into the dialect-neutral ``model.InstanceSpec``, with the ARM fields the
cloud does not model kept in the ``aci/meta`` tag.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from vnode.cloudsim import aci_arm, aci_gpu, aci_probes, aci_volumes, model
from vnode.cloudsim import cloud as cloudmod

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,61}[a-z0-9]$|^[a-z0-9]$")
_RESERVED_TAG_CHARS = re.compile(r"[<>%&\\?/\x00-\x1f\x7f]")
# ACI's rule for a DNS name label, as its refusal words it (quoted below).
_DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{3,61}[a-z0-9]$")
# An Azure region, by name or display name ("westeurope", "West Europe"); the simulator takes any such.
_LOCATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ]{0,63}$")


# Field names are ARM's camelCase spelling: msgspec decodes by attribute name.
class _Requests(msgspec.Struct):
    cpu: float
    memoryInGB: float
    gpu: aci_gpu.Gpu | None = None


class _Limits(msgspec.Struct):
    cpu: float | None = None
    memoryInGB: float | None = None
    gpu: aci_gpu.Gpu | None = None


class _Resources(msgspec.Struct):
    requests: _Requests
    limits: _Limits | None = None


class _Port(msgspec.Struct):
    port: int
    protocol: str = "TCP"


class _Env(msgspec.Struct):
    name: str
    value: str | None = None
    secureValue: str | None = None


class _Capabilities(msgspec.Struct):
    add: list[str] = []
    drop: list[str] = []


class _SecurityContext(msgspec.Struct):
    """SecurityContextDefinition; the simulator keeps all but ``privileged`` and ``seccompProfile``."""

    privileged: bool | None = None
    allowPrivilegeEscalation: bool | None = None
    capabilities: _Capabilities | None = None
    runAsGroup: int | None = None
    runAsUser: int | None = None
    seccompProfile: str | None = None


class _ContainerProps(msgspec.Struct):
    image: str
    resources: _Resources
    command: list[str] = []
    ports: list[_Port] = []
    environmentVariables: list[_Env] = []
    securityContext: _SecurityContext | None = None
    livenessProbe: aci_probes.ContainerProbe | None = None
    readinessProbe: aci_probes.ContainerProbe | None = None
    volumeMounts: list[aci_volumes.Mount] = []


class _Container(msgspec.Struct):
    name: str
    properties: _ContainerProps


class _InitProps(msgspec.Struct):
    image: str
    command: list[str] = []
    environmentVariables: list[_Env] = []
    securityContext: _SecurityContext | None = None


class _InitContainer(msgspec.Struct):
    name: str
    properties: _InitProps


class _IpAddress(msgspec.Struct):
    ports: list[_Port] = []
    type: str = "Private"
    dnsNameLabel: str | None = None


class _SubnetId(msgspec.Struct):
    id: str
    name: str | None = None


class _RegistryCredential(msgspec.Struct):
    server: str = ""
    username: str | None = None
    password: str | None = None
    identity: str | None = None
    identityUrl: str | None = None


class _DnsConfig(msgspec.Struct):
    nameServers: list[str] = []
    searchDomains: str | None = None  # one string, the domains separated by spaces
    options: str | None = None  # one string: "ndots:2 edns0"


class _GroupProps(msgspec.Struct):
    containers: list[_Container]
    osType: str
    restartPolicy: str = "Always"
    ipAddress: _IpAddress | None = None
    initContainers: list[_InitContainer] = []
    subnetIds: list[_SubnetId] = []
    sku: str = "Standard"
    priority: str | None = None
    imageRegistryCredentials: list[_RegistryCredential] = []
    dnsConfig: _DnsConfig | None = None
    volumes: list[aci_volumes.Volume] = []


class _GroupBody(msgspec.Struct):
    properties: _GroupProps
    location: str | None = None
    tags: dict[str, str] = {}
    zones: list[str] = []


class PatchBody(msgspec.Struct):
    """What the SDK's ``update`` sends: a Resource, of which only ``tags`` may change."""

    tags: dict[str, str] | None = None
    location: str | None = None


decode_group = msgspec.json.Decoder(_GroupBody)
decode_patch = msgspec.json.Decoder(PatchBody)


def spec_from(cloud: cloudmod.Cloud, sub: str, rg: str, name: str, raw: bytes) -> model.InstanceSpec:
    """The cloud's spec for a PUT of group ``name`` (raises ``ArmError`` for what ARM refuses)."""
    body = aci_arm.decode_body(decode_group, raw)
    props = body.properties
    _check_group(body)
    _check_ip_address(props, name)
    secure: list[str] = []  # names of secure environment variables, filled by _env_tag
    declared = aci_volumes.volumes(props.volumes)
    containers = tuple(_container(c, secure, declared) for c in props.containers)
    inits = tuple(
        model.ContainerSpec(
            name=c.name,
            image=c.properties.image,
            command=tuple(c.properties.command),
            env=tuple(_env_tag(e, secure) for e in c.properties.environmentVariables),
            **_security(c.name, c.properties.securityContext),
        )
        for c in props.initContainers
    )
    zone = _zone(cloud, body.zones)
    vswitches = _vswitches(cloud, props.subnetIds)
    ip = props.ipAddress
    meta = aci_arm.Meta(
        loc=body.location or "",
        id=aci_arm.arm_id(sub, rg, name),
        os=props.osType,
        ip=ip.type if ip else "",
        ports=[(p.port, p.protocol) for p in ip.ports] if ip else [],
        dns=(ip.dnsNameLabel or "") if ip else "",
        secure=sorted(set(secure)),
        zones=list(body.zones),
        subnets=bool(props.subnetIds),
        sku=props.sku,
        prio=props.priority or "",
    )
    tags = [model.Tag(k, v) for k, v in sorted(body.tags.items())]
    tags += [
        model.Tag(aci_arm.TAG_ID, aci_arm.arm_id(sub, rg, name).lower()),
        model.Tag(aci_arm.TAG_GROUP, aci_arm.group_key(sub, rg)),
        model.Tag(aci_arm.TAG_SUBSCRIPTION, sub.lower()),
        model.Tag(aci_arm.TAG_META, aci_arm.encode(meta).decode()),
    ]
    if meta.dns:
        tags.append(model.Tag(aci_arm.TAG_DNS, aci_arm.dns_key(meta.loc, meta.dns)))
    group = next((g for g in cloud.groups.values() if g.kind == "enterprise"), next(iter(cloud.groups.values())))
    return model.InstanceSpec(
        name=name,
        containers=containers,
        init_containers=inits,
        vswitch_ids=vswitches,
        security_group_id=group.id,
        restart_policy=props.restartPolicy,
        zone=zone,
        tags=tuple(tags),
        registry_credentials=_logins(props.imageRegistryCredentials),
        dns_config=_dns(props.dnsConfig),
        instance_type=_gpu_type(props),
        volumes=declared,
        priority=props.priority or "Regular",  # ACI's default
    )


def _gpu_type(props: _GroupProps) -> str:
    """The group's GPU type from its containers' ``resources.*.gpu`` (see ``aci_gpu``)."""
    asked = []
    for c in props.containers:
        res = c.properties.resources
        limit = res.limits.gpu if res.limits else None
        asked.append((c.name, res.requests.gpu, limit, res.requests.cpu, res.requests.memoryInGB))
    return aci_gpu.check(asked, os_type=props.osType, priority=props.priority, subnets=bool(props.subnetIds))


def _check_group(body: _GroupBody) -> None:
    props = body.properties
    if not body.location:
        raise aci_arm.ArmError(400, "LocationRequired", "The location property is required for this definition.")
    if not _LOCATION.match(body.location):  # it goes into the operation URLs: a huge one broke the answer's headers
        raise aci_arm.ArmError(
            400,
            "LocationNotAvailableForResourceType",
            f"The provided location '{body.location[:64]}' is not available for resource type "
            f"'{aci_arm.RESOURCE_TYPE}'.",
        )
    if not props.containers:
        raise aci_arm.ArmError(
            400, "ContainerGroupContainersRequired", "The container group must have at least one container."
        )
    if props.osType not in ("Linux", "Windows"):
        raise aci_arm.ArmError(
            400, "InvalidOsType", f"The 'osType' '{props.osType}' is not valid: 'Linux' or 'Windows'."
        )
    if props.restartPolicy not in model.RESTART_POLICIES:
        raise aci_arm.ArmError(
            400,
            "InvalidRestartPolicy",
            f"The restart policy '{props.restartPolicy}' is not valid: one of {', '.join(model.RESTART_POLICIES)}.",
        )
    _check_priority(body)
    check_tag_count(body.tags)
    check_tags(body.tags)


def _check_priority(body: _GroupBody) -> None:
    """ContainerGroupPriority (Regular, Spot) and what a Spot group may not have: ACI's error codes for a
    SKU other than Standard and a public IP; for a virtual network and zones, which ACI's Spot overview
    also rules out without publishing a code, the simulator's own (``SpotPriorityContainerGroupNotSupported
    WithVirtualNetwork``, ``...WithZones``)."""
    props = body.properties
    if props.priority is not None and props.priority not in ("Regular", "Spot"):
        raise aci_arm.ArmError(
            400, "PriorityNotSpecified", f"The priority '{props.priority}' is not valid: must be one of 'Regular,Spot'."
        )
    if props.priority != "Spot":
        return
    if props.sku != "Standard":
        raise aci_arm.ArmError(
            400, "SpotPriorityContainerGroupNotSupportedInSku", f"Spot priority is not supported in SKU '{props.sku}'."
        )
    if props.ipAddress is not None and props.ipAddress.type == "Public":
        raise aci_arm.ArmError(
            400,
            "SpotPriorityContainerGroupNotSupportedForInboundConnectivity",
            "Spot priority container groups cannot have a public IP address.",
        )
    if props.subnetIds:
        raise aci_arm.ArmError(
            400,
            "SpotPriorityContainerGroupNotSupportedWithVirtualNetwork",
            "Spot priority container groups cannot be deployed into a virtual network (subnetIds).",
        )
    if body.zones:
        raise aci_arm.ArmError(
            400,
            "SpotPriorityContainerGroupNotSupportedWithZones",
            "Spot priority container groups cannot be pinned to a zone.",
        )


def _check_ip_address(props: _GroupProps, name: str) -> None:
    """``ipAddress``: its type, its ports (those of the containers; a public IP needs one) and its
    DNS name label. ``MissingIpAddressPorts`` and the label's message are ACI's; the codes
    ``InvalidIpAddressType``, ``InvalidIpAddressPorts`` and ``InvalidDnsNameLabel`` are the
    simulator's (ACI's are not published)."""
    ip = props.ipAddress
    if ip is None:
        return
    if ip.type not in ("Public", "Private"):
        raise aci_arm.ArmError(
            400,
            "InvalidIpAddressType",
            f"The IP address type '{ip.type}' of container group '{name}' is invalid: 'Public' or 'Private'.",
        )
    if ip.type == "Public" and not ip.ports:
        raise aci_arm.ArmError(
            400, "MissingIpAddressPorts", f"The ports in the 'ipAddress' of container group '{name}' cannot be empty."
        )
    exposed = {(p.port, p.protocol.upper()) for c in props.containers for p in c.properties.ports}
    for port in ip.ports:
        if (port.port, port.protocol.upper()) not in exposed:
            raise aci_arm.ArmError(
                400,
                "InvalidIpAddressPorts",
                f"The port '{port.port}/{port.protocol}' in the 'ipAddress' of container group '{name}' is not "
                "a port of any of its containers.",
            )
    label = ip.dnsNameLabel
    if label and not _DNS_LABEL.match(label):
        raise aci_arm.ArmError(
            400,
            "InvalidDnsNameLabel",
            f"The DNS name label '{label}' in container group '{name}' is invalid. It can contain only lowercase "
            "letters, numbers and hyphens. The first character must be a letter. The last character must be a "
            "letter or number. The value must be between 5 and 63 characters long.",
        )


def _container(c: _Container, secure: list[str], declared: tuple[model.Volume, ...]) -> model.ContainerSpec:
    check_name(c.name, "container")
    req = c.properties.resources.requests
    if req.cpu <= 0 or req.memoryInGB <= 0:
        raise aci_arm.ArmError(
            400,
            "InvalidContainerResourceRequest",
            f"The resource requests of container '{c.name}' must be positive: {req.cpu:g} CPU, {req.memoryInGB:g} GB.",
        )
    return model.ContainerSpec(
        name=c.name,
        image=c.properties.image,
        command=tuple(c.properties.command),
        env=tuple(_env_tag(e, secure) for e in c.properties.environmentVariables),
        ports=tuple(model.Port(p.port, p.protocol) for p in c.properties.ports),
        cpu=req.cpu,
        memory=req.memoryInGB,
        gpu=req.gpu.count if req.gpu else 0,
        liveness_probe=aci_probes.probe(c.properties.livenessProbe, c.name, "livenessProbe"),
        readiness_probe=aci_probes.probe(c.properties.readinessProbe, c.name, "readinessProbe"),
        volume_mounts=aci_volumes.mounts(c.properties.volumeMounts, c.name, declared),
        **_security(c.name, c.properties.securityContext),
    )


def _logins(given: list[_RegistryCredential]) -> tuple[model.RegistryCredential, ...]:
    """``imageRegistryCredentials``: each names its server and a username with a password (or a
    managed identity, which the simulator accepts without checking); one per server."""
    seen: set[str] = set()
    for n, login in enumerate(given):
        if not login.server:
            raise aci_arm.ArmError(
                400, "InvalidImageRegistryCredential", f"The image registry credential {n} has no server."
            )
        if not login.identity and not login.username:
            raise aci_arm.ArmError(
                400,
                "InvalidImageRegistryCredential",
                f"The image registry credential of server '{login.server}' needs a username or an identity.",
            )
        if login.server.lower() in seen:
            raise aci_arm.ArmError(
                400,
                "DuplicateImageRegistryCredential",
                f"The image registry server '{login.server}' has more than one credential.",
            )
        seen.add(login.server.lower())
    return tuple(model.RegistryCredential(c.server, c.username or "", c.password or "") for c in given)


def _dns(given: _DnsConfig | None) -> model.DnsConfig | None:
    """``dnsConfig``, which must name at least one server (search domains and options are optional)."""
    if given is None:
        return None
    if not given.nameServers:
        raise aci_arm.ArmError(
            400, "InvalidDnsConfig", "The dnsConfig of the container group must have at least one name server."
        )
    options = (model.NameValue(*o.split(":", 1)) for o in (given.options or "").split())
    return model.DnsConfig(tuple(given.nameServers), tuple((given.searchDomains or "").split()), tuple(options))


def _security(name: str, given: _SecurityContext | None) -> dict[str, Any]:
    """The container spec's user, group, capabilities and privilege escalation from its ``securityContext``."""
    if given is None:
        return {}
    for field, value in (("runAsUser", given.runAsUser), ("runAsGroup", given.runAsGroup)):
        if value is not None and value < 0:
            raise aci_arm.ArmError(
                400, "InvalidContainerSecurityContext", f"The {field} of container '{name}' must not be negative."
            )
    caps = given.capabilities or _Capabilities()
    return {
        "run_as_user": given.runAsUser,
        "run_as_group": given.runAsGroup,
        "capabilities": tuple(caps.add),
        "capabilities_drop": tuple(caps.drop),
        "allow_privilege_escalation": given.allowPrivilegeEscalation,
    }


def _zone(cloud: cloudmod.Cloud, wanted: list[str]) -> str:
    """The cloud's zone for ARM's ``zones`` (``["1"]`` is the first zone); "" when none is asked for."""
    if not wanted:
        return ""
    zones = cloud.world.zones
    # ASCII digits, at most 2 of them: str.isdigit() says yes to "²", which int() refuses (a 500 once).
    number = wanted[0] if len(wanted) == 1 and wanted[0].isascii() and wanted[0].isdigit() else ""
    if not number or len(number) > 2 or not 1 <= int(number) <= len(zones):
        raise aci_arm.ArmError(
            400,
            "InvalidAvailabilityZones",
            f"Exactly one zone of 1..{len(zones)} may be given, not {[w[:20] for w in wanted[:3]]}.",
        )
    return zones[int(number) - 1]


def _vswitches(cloud: cloudmod.Cloud, subnets: list[_SubnetId]) -> tuple[str, ...]:
    """The vSwitches a group may use: those its ``subnetIds`` name (by last segment), else all."""
    vswitches = tuple(cloud.vswitches)
    if not subnets:
        return vswitches
    wanted = tuple(s.id.rstrip("/").rsplit("/", 1)[-1] for s in subnets)
    unknown = [w for w in wanted if w not in cloud.vswitches]
    if unknown:
        raise aci_arm.ArmError(
            400,
            "InvalidSubnetId",
            f"The subnet {unknown[0]} does not exist; the simulator's subnets are {', '.join(vswitches)}.",
        )
    return wanted


def check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise aci_arm.ArmError(
            400,
            "InvalidResourceName" if what == "container group" else "InvalidContainerName",
            f"The {what} name '{name}' is invalid: 1 to 63 lowercase letters, digits and single dashes, "
            "beginning and ending with a letter or digit.",
        )


def check_tag_count(tags: dict[str, str]) -> None:
    if len(tags) > aci_arm.MAX_USER_TAGS:
        raise aci_arm.ArmError(
            400, "InvalidTagCount", f"At most {aci_arm.MAX_USER_TAGS} tags are supported by the simulator."
        )


def check_tags(tags: dict[str, str]) -> None:
    """ARM's rules for tags: names without ``<>%&\\?/`` or control characters, at most 512
    characters (values 256), no ``microsoft``/``azure``/``windows`` prefix. A provider that tags
    with ``vnode.io/node`` on ECI must spell it differently on ACI, as on the real cloud."""
    bad = sorted(k for k in tags if _RESERVED_TAG_CHARS.search(k))
    if bad:
        raise aci_arm.ArmError(
            400,
            "InvalidTagNameCharacters",
            f"The tag names '{','.join(bad)}' have reserved characters '<,>,%,&,\\,?,/' or control characters.",
        )
    for key, value in tags.items():
        if key in aci_arm.INTERNAL_TAGS:
            raise aci_arm.ArmError(400, "InvalidTagName", f"The tag name '{key}' is reserved by the simulator.")
        if not key or len(key) > 512 or key.lower().startswith(("microsoft", "azure", "windows")):
            raise aci_arm.ArmError(
                400,
                "InvalidTagName",
                f"The tag name '{key}' is invalid: 1 to 512 characters, not starting with microsoft, azure or windows.",
            )
        if len(value) > 256:
            raise aci_arm.ArmError(
                400, "InvalidTagValueLength", f"The value of tag '{key}' is longer than 256 characters."
            )


def _env_tag(env: _Env, secure: list[str]) -> model.EnvVar:
    if env.secureValue is not None:
        secure.append(env.name)
        return model.EnvVar(env.name, env.secureValue)
    return model.EnvVar(env.name, env.value or "")
