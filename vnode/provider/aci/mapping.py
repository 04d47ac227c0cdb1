"""An ``InstanceSpec`` as an ARM container group: its name, its tags (ARM refuses ``/`` in tag
names, so vnode's ``vnode.io/<word>`` tags are stored as ``vnode.io-<word>``) and its PUT body.

A pod's annotation ``vnode.io/aci-priority`` (``Regular`` or ``Spot``) becomes the group's
``properties.priority``: ``Spot`` runs it on ACI's Spot capacity. Neither virtual-kubelet's
azure-aci nor AKS virtual nodes v2 has an annotation for it, so the name is vnode's own. ACI
runs a Spot group only outside a virtual network, so a Spot pod on a node that places its groups
in a subnet is refused with the reason (rather than moved out of the node's network).

A container's ``nvidia.com/gpu`` (limit, else request) becomes its ``resources.requests.gpu``
``{count, sku}``, as virtual-kubelet's azure-aci maps it: the SKU is the pod's annotation
``virtual-kubelet.io/gpu-type`` (K80, P100 or V100, any case), else the first of the profile's
``GPU_SKUS`` (K80). ACI gives a container 1, 2 or 4 GPUs, a group at most the vCPU/GB its SKU
allows for its GPUs, and GPUs only outside a virtual network: anything else is refused naming
the field or annotation, before any container group is made.

A pod's annotation ``virtualkubelet.io/dnsnamelabel`` (virtual-kubelet's azure-aci spelling) gives
the group a public IP with that DNS name label: ``properties.ipAddress`` ``{type: Public,
dnsNameLabel, ports}``, the ports being the containers' ``containerPort`` values. ACI then serves the
group at ``<label>.<location>.azurecontainer.io``; ``states`` writes the address and that name back
to the pod once, as ``vnode.io/aci-public-ip`` and ``vnode.io/aci-fqdn`` (vnode's own names:
azure-aci documents none). A label ACI would refuse, a pod without a port, a pod in a subnet or a
Spot pod is refused naming the annotation.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from vnode import errors, models
from vnode.provider import profile
from vnode.provider.aci import profile as aci_profile

__all__ = [
    "DNS_NAME_LABEL",
    "FQDN",
    "GPU",
    "GPU_TYPE",
    "PRIORITIES",
    "PRIORITY",
    "PUBLIC_IP",
    "TOKEN_TAG",
    "arm_name",
    "decode_tags",
    "encode_tags",
    "gpu_sku",
    "group_body",
    "priority",
]

TOKEN_TAG = "vnode.io-client-token"
PRIORITY = "vnode.io/aci-priority"  # a pod's annotation: the group's properties.priority
PRIORITIES = ("Regular", "Spot")  # ACI's ContainerGroupPriority
_VNODE_PREFIX = "vnode.io/"
GPU_TYPE = "virtual-kubelet.io/gpu-type"  # a pod's annotation: its GPUs' SKU (azure-aci's name)
GPU = "nvidia.com/gpu"
DNS_NAME_LABEL = "virtualkubelet.io/dnsnamelabel"  # azure-aci's annotation: a public IP with this label
# What is written back to the pod once the group has its public IP: vnode's names (azure-aci has none).
PUBLIC_IP = "vnode.io/aci-public-ip"
FQDN = "vnode.io/aci-fqdn"
# ACI's rule, as its refusal words it ("only lowercase letters, numbers and hyphens. The first
# character must be a letter. The last character must be a letter or number. The value must be
# between 5 and 63 characters long.", quoted in github.com/derekbekoe/vscode-spot/issues/38).
_DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{3,61}[a-z0-9]$")


def arm_name(name: str) -> str:
    """A container group name ARM accepts (1-63 lowercase letters, digits, single dashes) for
    ``name``: the same name when it already is one, else a cleaned one with a hash of the original
    at the end, so that two long names never share a group."""
    clean = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-") or "group"
    if clean == name and len(clean) <= 63:
        return clean
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{clean[:54].strip('-')}-{digest}"


def encode_tags(tags: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in tags.items():
        name = "vnode.io-" + key[len(_VNODE_PREFIX) :] if key.startswith(_VNODE_PREFIX) else key
        if "/" in name:
            raise errors.InvalidSpec(f"ACI: tag name {key!r} has a '/', which ARM refuses")
        out[name] = value
    return out


def decode_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """ARM's tags as vnode's (``vnode.io-x`` back to ``vnode.io/x``), their strings shared between instances."""
    shared = models.shared
    return {shared(_decode_key(key)): shared(value) for key, value in tags.items() if key != TOKEN_TAG}


def _decode_key(key: str) -> str:
    return _VNODE_PREFIX + key[len("vnode.io-") :] if key.startswith("vnode.io-") else key


def priority(annotations: Mapping[str, str]) -> str:
    """The ``properties.priority`` the pod's annotation asks for ("" when it asks none)."""
    value = annotations.get(PRIORITY, "").strip()
    if not value:
        return ""
    chosen = next((p for p in PRIORITIES if p.lower() == value.lower()), None)
    if chosen is None:
        raise errors.InvalidSpec(f"annotation {PRIORITY}: {value!r} is not one of {', '.join(PRIORITIES)}")
    return chosen


def gpu_sku(annotations: Mapping[str, str]) -> profile.GpuSku:
    """The GPU SKU the pod's annotation names (any case), else the default (the table's first)."""
    value = annotations.get(GPU_TYPE, "").strip()
    if not value:
        return aci_profile.GPU_SKUS[0]
    chosen = next((s for s in aci_profile.GPU_SKUS if s.name.lower() == value.lower()), None)
    if chosen is None:
        names = ", ".join(s.name for s in aci_profile.GPU_SKUS)
        raise errors.InvalidSpec(f"annotation {GPU_TYPE}: {value!r} is not an ACI GPU SKU ({names})")
    return chosen


def _gpus(spec: models.InstanceSpec, shares: list[tuple[float, float]], subnet: str) -> dict[str, dict[str, Any]]:
    """Container name -> its ``resources.requests.gpu``; ``InvalidSpec`` for what ACI cannot run."""
    asked = [c for c in spec.containers if c.gpus]
    if not asked:
        return {}
    sku = gpu_sku(spec.annotations)
    counts = sku.counts()
    for c in asked:
        if c.gpus not in counts:
            raise errors.InvalidSpec(
                f"container {c.name}: {GPU} {c.gpus}: ACI gives a container {_either(counts)} GPUs, not {c.gpus}"
            )
    if subnet:
        raise errors.InvalidSpec(
            f"{GPU}: ACI runs GPU container groups only outside a virtual network, and this node puts its "
            f"groups in subnet {subnet.rsplit('/', 1)[-1]} (ACI_SUBNET): run the pod on a node without a subnet"
        )
    total = sum(c.gpus for c in asked)
    # ACI's maxima are per GPU count of the group's host: vnode holds the group's total to the
    # smallest count covering it (its reading of the published table).
    count = next((n for n in counts if n >= total), None)
    if count is None:
        raise errors.InvalidSpec(f"{GPU}: the containers ask for {total} GPUs together, more than ACI's {counts[-1]}")
    cpu, memory = sum(s[0] for s in shares), sum(s[1] for s in shares)
    most = sku.maxima[count]
    if cpu > most.cpu + 1e-9 or memory > most.memory_gib + 1e-9:
        raise errors.InvalidSpec(
            f"{GPU}: the pod asks for {cpu:g} vCPU / {memory:g} GB with {total} {sku.name} GPUs; "
            f"ACI allows at most {most.cpu:g} vCPU / {most.memory_gib:g} GB with {count}"
        )
    return {c.name: {"count": c.gpus, "sku": sku.name} for c in asked}


def _either(counts: tuple[int, ...]) -> str:
    return ", ".join(map(str, counts[:-1])) + f" or {counts[-1]}" if len(counts) > 1 else str(counts[0])


def _probe(probe: models.Probe, container: str, kind: str) -> dict[str, Any]:
    """A probe as ACI's ``ContainerProbe``; ACI has exec and httpGet only, so a TCP probe is refused (never
    dropped: a container would run unchecked, or be Ready before it listens)."""
    if probe.tcp_port is not None:
        raise errors.InvalidSpec(
            f"container {container}: {kind}.tcpSocket: ACI has no TCP probe (only exec and httpGet); "
            "use an httpGet or exec probe on this node"
        )
    out: dict[str, Any] = {
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "successThreshold": probe.success_threshold,
        "failureThreshold": probe.failure_threshold,
    }
    if probe.exec_command:
        out["exec"] = {"command": list(probe.exec_command)}
    elif probe.http_port is not None:
        out["httpGet"] = {"path": probe.http_path or "/", "port": probe.http_port, "scheme": probe.http_scheme.lower()}
    return out


def _env(c: models.ContainerSpec) -> list[dict[str, str]]:
    for e in c.env:
        # ACI's environmentVariables take a value or a secureValue, nothing filled in by the
        # cloud, and a group's private IP is known only after the PUT: refuse the pod with the
        # reason rather than run it with an empty or wrong value (or leave it Pending forever).
        if e.field_path:
            raise errors.InvalidSpec(
                f"container {c.name}: env {e.name} from fieldRef {e.field_path}: ACI cannot put the "
                "container group's own IP into its env (it is allocated after creation)"
            )
    return [{"name": e.name, "value": e.value} for e in c.env]


def _container(c: models.ContainerSpec, cpu: float, memory: float, gpu: dict[str, Any] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "image": c.image,
        # ACI has one command list and no working directory: args follow the command.
        "command": [*c.command, *c.args],
        "environmentVariables": _env(c),
        "ports": [{"port": p.container_port, "protocol": p.protocol} for p in c.ports],
        "resources": {"requests": {"cpu": cpu, "memoryInGB": memory, **({"gpu": gpu} if gpu else {})}},
    }
    if c.volume_mounts:
        props["volumeMounts"] = [
            {"name": m.name, "mountPath": m.mount_path, "readOnly": m.read_only} for m in c.volume_mounts
        ]
    context = _security(c)
    if context:
        props["securityContext"] = context
    if c.liveness_probe is not None:
        props["livenessProbe"] = _probe(c.liveness_probe, c.name, "livenessProbe")
    if c.readiness_probe is not None:
        props["readinessProbe"] = _probe(c.readiness_probe, c.name, "readinessProbe")
    return {"name": c.name, "properties": props}


def _security(c: models.ContainerSpec) -> dict[str, Any]:
    """The container's ``securityContext`` (SecurityContextDefinition): ``runAsUser`` and
    ``runAsGroup`` (the container's over the pod's), ``capabilities`` ``add`` and ``drop``, and
    ``allowPrivilegeEscalation``; nothing else of it is mapped (the profile says so)."""
    out: dict[str, Any] = {}
    if c.run_as_user is not None:
        out["runAsUser"] = c.run_as_user
    if c.run_as_group is not None:
        out["runAsGroup"] = c.run_as_group
    capabilities = {k: list(v) for k, v in (("add", c.capabilities_add), ("drop", c.capabilities_drop)) if v}
    if capabilities:
        out["capabilities"] = capabilities
    if c.allow_privilege_escalation is not None:
        out["allowPrivilegeEscalation"] = c.allow_privilege_escalation
    return out


def _shares(spec: models.InstanceSpec) -> list[tuple[float, float]]:
    """Each container's (cpu, memory): its own request, the rest of the instance split evenly."""
    given_cpu = sum(c.cpu for c in spec.containers)
    given_mem = sum(c.memory_gib for c in spec.containers)
    open_cpu = [c for c in spec.containers if not c.cpu]
    open_mem = [c for c in spec.containers if not c.memory_gib]
    spare_cpu = max(spec.cpu - given_cpu, 0.0) / len(open_cpu) if open_cpu else 0.0
    spare_mem = max(spec.memory_gib - given_mem, 0.0) / len(open_mem) if open_mem else 0.0
    return [
        (c.cpu or round(max(spare_cpu, 0.01), 2), c.memory_gib or round(max(spare_mem, 0.1), 1))
        for c in spec.containers
    ]


ACCOUNT_NAME, ACCOUNT_KEY = "azurestorageaccountname", "azurestorageaccountkey"  # the Secret's keys (the CSI driver's)


def azure_file(volume: models.VolumeSpec) -> dict[str, Any]:
    """A ``file.csi.azure.com`` volume (a pod's inline one, or a claim's PersistentVolume) as ACI's
    ``azureFile``: the share its ``shareName`` attribute names (else the third field of the CSI
    driver's ``volumeHandle``, ``<resource group>#<account>#<share>...``, as dynamic provisioning
    leaves it), the storage account and key from the Secret it names."""
    secret = {item.path: item.content.decode(errors="replace").strip() for item in volume.files}
    handle = volume.attributes.get("volumeHandle", "").split("#")
    share = volume.attributes.get("shareName", "").strip() or (handle[2] if len(handle) > 2 else "")
    account = secret.get(ACCOUNT_NAME) or (handle[1] if len(handle) > 2 else "")
    lacking = [what for what, value in (("volumeAttributes.shareName", share),
               (f"a Secret with {ACCOUNT_NAME}", account), (f"a Secret with {ACCOUNT_KEY}", secret.get(ACCOUNT_KEY)))
               if not value]  # fmt: skip
    if lacking:
        raise errors.InvalidSpec(f"volume {volume.name}: an Azure Files volume needs {' and '.join(lacking)}")
    return {"shareName": share, "storageAccountName": account, "storageAccountKey": secret[ACCOUNT_KEY],
            "readOnly": volume.read_only}  # fmt: skip


def _volumes(spec: models.InstanceSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = []
    for volume in spec.volumes:
        if volume.kind == "emptyDir":
            if volume.medium or volume.size_limit_gib is not None:
                asked = ", ".join(f for f, v in (("medium", volume.medium), ("sizeLimit", volume.size_limit_gib)) if v)
                raise errors.InvalidSpec(
                    f"volume {volume.name}: emptyDir.{asked}: ACI's emptyDir has neither a medium (no memory-backed "
                    "volume) nor a size limit; drop it to run on this node"
                )
            volumes.append({"name": volume.name, "emptyDir": {}})
        elif volume.kind == "files":
            # ACI's secret volume: file name -> base64 content, mounted read-only.
            files = {item.path: _b64(item.content) for item in volume.files}
            volumes.append({"name": volume.name, "secret": files})
        elif volume.kind == "share":
            volumes.append({"name": volume.name, "azureFile": azure_file(volume)})
        else:
            raise errors.InvalidSpec(f"volume {volume.name}: ACI does not support volumes of kind {volume.kind!r}")
    return volumes


def group_body(spec: models.InstanceSpec, *, location: str, subnet: str = "") -> dict[str, Any]:
    """The PUT body of a container group for ``spec`` (in ``subnet``, if given)."""
    prio = priority(spec.annotations)
    if prio == "Spot" and subnet:
        raise errors.InvalidSpec(
            f"annotation {PRIORITY}=Spot: ACI runs Spot container groups only outside a virtual network, "
            f"and this node puts its groups in subnet {subnet.rsplit('/', 1)[-1]} (ACI_SUBNET): "
            "run the pod on a node without a subnet, or drop the annotation"
        )
    shares = _shares(spec)
    gpus = _gpus(spec, shares, subnet)
    props: dict[str, Any] = {
        "osType": "Linux",
        "sku": "Standard",
        "restartPolicy": spec.restart_policy,
        "containers": [
            _container(c, cpu, mem, gpus.get(c.name)) for c, (cpu, mem) in zip(spec.containers, shares, strict=True)
        ],
    }
    if spec.init_containers:
        props["initContainers"] = [
            {
                "name": c.name,
                "properties": {
                    "image": c.image,
                    "command": [*c.command, *c.args],
                    "environmentVariables": _env(c),
                    **({"securityContext": _security(c)} if _security(c) else {}),
                },
            }
            for c in spec.init_containers
        ]
    volumes = _volumes(spec)
    if volumes:
        props["volumes"] = volumes
    if spec.registry_credentials:
        props["imageRegistryCredentials"] = [_login(c) for c in spec.registry_credentials]
    public = _public_ip(spec, subnet=subnet, prio=prio)
    if public:
        props["ipAddress"] = public
    if subnet:
        props["subnetIds"] = [{"id": subnet}]
        ports = [{"port": p.container_port, "protocol": p.protocol} for c in spec.containers for p in c.ports]
        props["ipAddress"] = {"type": "Private", "ports": ports}
    if prio:
        props["priority"] = prio
    dns = _dns(spec)
    if dns:
        props["dnsConfig"] = dns
    tags = encode_tags(spec.tags)
    tags[TOKEN_TAG] = spec.client_token
    return {"location": location, "tags": tags, "properties": props}


def _public_ip(spec: models.InstanceSpec, *, subnet: str, prio: str) -> dict[str, Any]:
    """``ipAddress`` ``{type: Public, dnsNameLabel, ports}`` for a pod with the DNS name label
    annotation ({} without it); ``InvalidSpec`` naming the annotation when ACI could not give it."""
    label = spec.annotations.get(DNS_NAME_LABEL, "").strip()
    if not label:  # azure-aci also takes an empty value as no label
        return {}
    where = f"annotation {DNS_NAME_LABEL}={label!r}"
    if not _DNS_LABEL.match(label):
        raise errors.InvalidSpec(
            f"{where}: not a DNS name label ACI accepts (5 to 63 lowercase letters, digits and hyphens, "
            "starting with a letter and ending with a letter or digit)"
        )
    ports: list[dict[str, Any]] = []
    for c in spec.containers:
        for p in c.ports:
            if p.protocol not in ("TCP", "UDP"):
                raise errors.InvalidSpec(
                    f"{where}: container {c.name} port {p.container_port}/{p.protocol}: "
                    "ACI opens only TCP and UDP ports on a public IP"
                )
            port = {"port": p.container_port, "protocol": p.protocol}
            if port not in ports:
                ports.append(port)
    if not ports:
        raise errors.InvalidSpec(
            f"{where}: ACI gives a container group a public IP only with ports to open, and no container "
            "of the pod declares a containerPort: add one (ports[].containerPort)"
        )
    if subnet:
        raise errors.InvalidSpec(
            f"{where}: ACI gives a public IP only to container groups outside a virtual network, and this "
            f"node puts its groups in subnet {subnet.rsplit('/', 1)[-1]} (ACI_SUBNET): run the pod on a node "
            "without a subnet, or drop the annotation"
        )
    if prio == "Spot":
        raise errors.InvalidSpec(
            f"{where} with {PRIORITY}=Spot: ACI's Spot container groups cannot have a public IP "
            "(SpotPriorityContainerGroupNotSupportedForInboundConnectivity): drop one of the two"
        )
    return {"type": "Public", "dnsNameLabel": label, "ports": ports}


def _dns(spec: models.InstanceSpec) -> dict[str, Any]:
    """``dnsConfig``: ACI's search domains and options are one space-separated string each, and
    it refuses a ``dnsConfig`` without name servers, so a resolver with searches or options but
    no server (``dnsPolicy: Default`` or no cluster DNS, plus a ``dnsConfig`` without
    ``nameservers``) is refused naming the field rather than sent without them."""
    if not spec.dns_nameservers:
        given = [name for name, value in (("searches", spec.dns_searches), ("options", spec.dns_options)) if value]
        if given:
            raise errors.InvalidSpec(
                f"spec.dnsConfig.{given[0]}: ACI's dnsConfig needs a name server and the pod's dnsPolicy "
                "gives none (Default, or no cluster DNS known): add spec.dnsConfig.nameservers"
            )
        return {}
    out: dict[str, Any] = {"nameServers": list(spec.dns_nameservers)}
    if spec.dns_searches:
        out["searchDomains"] = " ".join(spec.dns_searches)
    if spec.dns_options:
        out["options"] = " ".join(f"{o.name}:{o.value}" if o.value else o.name for o in spec.dns_options)
    return out


def _login(credential: models.RegistryCredential) -> dict[str, str]:
    """An ``ImageRegistryCredential``; Docker Hub (``docker.io`` in the model) is ``index.docker.io`` in ACI's docs."""
    server = "index.docker.io" if credential.server == "docker.io" else credential.server
    return {"server": server, "username": credential.username, "password": credential.password}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
