"""The Azure Container Instances dialect: ARM routes of Microsoft.ContainerInstance over HTTPS.

``azure-mgmt-containerinstance`` works against it unchanged, given ``base_url`` and
``connection_verify=<ca.pem>``: the SDK refuses bearer tokens over plain HTTP, so this dialect
serves TLS with a CA of its own (``ensure_tls``). A request carries ``Authorization: Bearer
<token>``; the tokens this simulator accepts are given to ``create_app`` (``default_token``
derives one from the seed, so it survives restarts and can be written to cloud.json).

ARM has no client token: a PUT names the resource, so a repeated PUT is idempotent by name.
A container group is an instance of the dialect-neutral cloud, tagged with its ARM identity
(``aci/id``, ``aci/group``, ``aci/subscription``) and the few ARM fields the cloud does not
model (``aci/meta``); the tags live in the store, so ARM state survives a restart like the rest.

PUT and DELETE are long-running operations as ARM does them: 201/202 with an
``Azure-AsyncOperation`` URL whose ``status`` the SDK's ``ARMPolling`` follows (and, for DELETE,
a ``Location`` URL that answers 202 until done). A PUT with a different spec replaces the group
(delete, then create), the nearest the cloud gets to ACI's in-place update.

Errors are ARM's ``{"error": {"code", "message"}}``; ``_ARM_ERRORS`` maps the cloud's kinds to
ARM codes and statuses. Every handler ticks the cloud first and flushes the store after a
change, so the dialect is correct even without the server's background ticker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import ipaddress
import itertools
import math
import pathlib
import re
import secrets
import shlex
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

import msgspec
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vnode.cloudsim import cloud as cloudmod
from vnode.cloudsim import errors, model, usage

PROVIDER = "Microsoft.ContainerInstance"
RESOURCE_TYPE = f"{PROVIDER}/containerGroups"
TAG_ID = "aci/id"
TAG_GROUP = "aci/group"
TAG_SUBSCRIPTION = "aci/subscription"
TAG_META = "aci/meta"
INTERNAL_TAGS = (TAG_ID, TAG_GROUP, TAG_SUBSCRIPTION, TAG_META)
MAX_USER_TAGS = cloudmod.MAX_TAGS - len(INTERNAL_TAGS)
DEFAULT_PAGE_SIZE = 100
EXEC_SESSION_SECONDS = 300.0
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,61}[a-z0-9]$|^[a-z0-9]$")
_RESERVED_TAG_CHARS = re.compile(r"[<>%&\\?/\x00-\x1f\x7f]")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
# Azure Monitor metrics of a container group: name -> (display name, unit, description)
METRICS = {
    "CpuUsage": ("CPU Usage", "Count", "CPU usage on all cores in millicores."),
    "MemoryUsage": ("Memory Usage", "Bytes", "Total memory usage in byte."),
}
METRIC_GRAINS = {"PT1M": 60, "PT5M": 300, "PT15M": 900, "PT30M": 1800, "PT1H": 3600, "PT6H": 21600, "PT12H": 43200}
MAX_METRIC_POINTS = 1440
_CONTAINER_FILTER = re.compile(r"^\s*containerName\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


# -- credentials and TLS -------------------------------------------------------------------


def default_token(seed: int) -> str:
    """The bearer token a simulator with this seed accepts (stable across restarts)."""
    return "vnode-sim." + hashlib.sha256(f"aci-token/{seed}".encode()).hexdigest()[:40]


def default_subscription(seed: int) -> str:
    """A subscription id for cloud.json; the simulator accepts any subscription."""
    return str(uuid.UUID(hashlib.sha256(f"aci-subscription/{seed}".encode()).hexdigest()[:32]))


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    ca: pathlib.Path  # what clients pass as connection_verify
    cert: pathlib.Path
    key: pathlib.Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def ensure_tls(directory: pathlib.Path) -> TlsFiles:
    """A CA and a serving certificate for 127.0.0.1 and localhost in ``directory``; made once, kept.

    Kept across restarts so that clients holding the CA file keep trusting the simulator.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "aci-ca.pem", directory / "aci-server.pem", directory / "aci-server-key.pem")
    if files.ca.exists() and files.cert.exists() and files.key.exists():
        return files
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vnode cloudsim ACI CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.key.chmod(0o600)
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


# -- request bodies (what the SDK serializes) ----------------------------------------------


# Field names are ARM's camelCase spelling: msgspec decodes by attribute name.
class _Requests(msgspec.Struct):
    cpu: float
    memoryInGB: float


class _Limits(msgspec.Struct):
    cpu: float | None = None
    memoryInGB: float | None = None


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


class _ContainerProps(msgspec.Struct):
    image: str
    resources: _Resources
    command: list[str] = []
    ports: list[_Port] = []
    environmentVariables: list[_Env] = []


class _Container(msgspec.Struct):
    name: str
    properties: _ContainerProps


class _InitProps(msgspec.Struct):
    image: str
    command: list[str] = []
    environmentVariables: list[_Env] = []


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


class _GroupProps(msgspec.Struct):
    containers: list[_Container]
    osType: str
    restartPolicy: str = "Always"
    ipAddress: _IpAddress | None = None
    initContainers: list[_InitContainer] = []
    subnetIds: list[_SubnetId] = []
    sku: str = "Standard"
    priority: str | None = None


class _GroupBody(msgspec.Struct):
    properties: _GroupProps
    location: str | None = None
    tags: dict[str, str] = {}
    zones: list[str] = []


class _PatchBody(msgspec.Struct):
    """What the SDK's ``update`` sends: a Resource, of which only ``tags`` may change."""

    tags: dict[str, str] | None = None
    location: str | None = None


class _ExecBody(msgspec.Struct):
    command: str = ""


class _Meta(msgspec.Struct, omit_defaults=True):
    """ARM fields the cloud does not model, kept in the ``aci/meta`` tag (short keys: tags are small)."""

    loc: str
    id: str = ""  # the ARM id as the creator spelled it (``aci/id`` is lowercased for lookups)
    os: str = "Linux"
    ip: str = ""  # ipAddress.type; "" when the request had no ipAddress
    ports: list[tuple[int, str]] = []
    dns: str = ""
    secure: list[str] = []  # names of secure environment variables (never echoed)
    zones: list[str] = []
    subnets: bool = False
    sku: str = "Standard"


_decode_group = msgspec.json.Decoder(_GroupBody).decode
_decode_exec = msgspec.json.Decoder(_ExecBody).decode
_decode_patch = msgspec.json.Decoder(_PatchBody).decode
_decode_meta = msgspec.json.Decoder(_Meta).decode
_encode = msgspec.json.Encoder().encode


# -- errors --------------------------------------------------------------------------------


class ArmError(Exception):
    """An ARM error answer: HTTP status, code, message, and extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _from_cloud(exc: errors.CloudError) -> ArmError:
    """ARM's name and status for one of the cloud's errors."""
    if isinstance(exc, errors.Throttled):
        seconds = max(1, math.ceil(exc.retry_after))
        message = (
            f"The request is being throttled as the limit has been reached for operation type - {exc.action}. "
            f"Please try again after '{seconds}' seconds."
        )
        return ArmError(429, "TooManyRequests", message, {"Retry-After": str(seconds)})
    if isinstance(exc, errors.InjectedFault):
        return ArmError(exc.status, exc.code, exc.message)
    if isinstance(exc, errors.NoStock):
        return ArmError(
            409, "ServiceUnavailable", f"The requested resource is not available at this moment. {exc.message}"
        )
    if isinstance(exc, errors.AddressExhausted):
        return ArmError(409, "InsufficientSubnetSize", exc.message)
    if isinstance(exc, errors.SecurityGroupFull | errors.QuotaExceeded):
        return ArmError(409, "ContainerGroupQuotaReached", exc.message)
    if isinstance(exc, errors.SpecNotSupported):
        return ArmError(400, "InvalidContainerGroupResourceRequest", exc.message)
    if isinstance(exc, errors.InvalidRequest):
        return ArmError(400, "InvalidRequestContent", exc.message)
    if isinstance(exc, errors.NotFound):
        return ArmError(404, "ResourceNotFound", exc.message)
    if isinstance(exc, errors.IncorrectStatus):
        return ArmError(409, "ContainerGroupTransitioning", exc.message)
    if isinstance(exc, errors.Conflict):
        return ArmError(409, "Conflict", exc.message)
    return ArmError(500, "InternalServerError", exc.message)


def _not_found(sub: str, rg: str, name: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{RESOURCE_TYPE}/{name}' under resource group '{rg}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


# -- the dialect -----------------------------------------------------------------------------


def _iso(at: float) -> str | None:
    return cloudmod.rfc3339_millis(at) if at else None


def _plain_iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timespan(text: str | None, now: float) -> tuple[float, float]:
    """Azure Monitor's ``timespan``: ``<start>/<end>`` in ISO 8601 (default: the hour before now);
    the end is capped at now."""
    if not text:
        return now - 3600, now
    try:
        first, _, second = text.partition("/")
        start = datetime.datetime.fromisoformat(first.replace("Z", "+00:00")).timestamp()
        end = datetime.datetime.fromisoformat(second.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ArmError(400, "BadRequest", f"Invalid timespan {text!r}: expected <start>/<end> in ISO 8601") from exc
    end = min(end, now)
    if start >= end:
        raise ArmError(400, "BadRequest", f"Invalid timespan {text!r}: the start is not before the end (or now)")
    return start, end


def _group_key(sub: str, rg: str) -> str:
    return f"{sub}/{rg}".lower()


def _arm_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{RESOURCE_TYPE}/{name}"


# instance status -> (provisioningState, instanceView.state)
def _states(inst: model.Instance) -> tuple[str, str]:
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


@dataclasses.dataclass
class _ExecSession:
    instance_id: str
    container: str
    command: str
    password: str
    expires: float


class Dialect:
    """The ARM handlers over one cloud. One per app; state beyond the cloud is only exec sessions."""

    def __init__(
        self,
        cloud: cloudmod.Cloud,
        *,
        tokens: Collection[str],
        page_size: int = DEFAULT_PAGE_SIZE,
        poll_interval: float = 1.0,
        commit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.cloud = cloud
        self.commit = commit
        self.tokens = frozenset(tokens)
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.exec_sessions: dict[str, _ExecSession] = {}
        self.requests = 0
        self.throttled = 0
        # Request ids shaped like ARM's (a UUID), unique without a system call per request.
        self._id_prefix = str(uuid.uuid4())[:24]
        self._ids = itertools.count(1)

    def request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):012x}"

    # -- plumbing --------------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if not header:
            raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ArmError(
                401,
                "AuthenticationFailedInvalidHeader",
                "Authentication failed. The 'Authorization' header is invalid.",
            )
        if token.strip() not in self.tokens:
            raise ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token is invalid."'},
            )

    async def admit(self, operation: str) -> None:
        latency = self.cloud.faults.latency(operation)
        if latency:
            await asyncio.sleep(latency)
        self.cloud.tick()
        self.cloud.admit(operation)

    async def changed(self) -> None:
        """Make what this call changed durable before answering (the server's group commit if given)."""
        if self.commit is not None:
            await self.commit()
        else:
            self.cloud.store.flush()

    def retry_after(self) -> str:
        seconds = self.poll_interval
        return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"

    # -- lookups ---------------------------------------------------------------------------

    def lookup(self, sub: str, rg: str, name: str) -> model.Instance | None:
        """The live group of that name (the newest, if a replaced one is still terminating)."""
        where = cloudmod.ListFilter(tags=(model.Tag(TAG_ID, _arm_id(sub, rg, name).lower()),))
        found = list(self.cloud.find(where))
        if not found:
            return None
        alive = [i for i in found if i.status != model.TERMINATING]
        return max(alive or found, key=lambda i: i.seq)

    # -- rendering -------------------------------------------------------------------------

    def render(self, inst: model.Instance) -> dict[str, Any]:
        meta = _meta_of(inst)
        sub, rg, name = _split_id(meta, inst)
        provisioning, state = _states(inst)
        user_tags = {t.key: t.value for t in inst.spec.tags if t.key not in INTERNAL_TAGS}
        containers = []
        single = len(inst.spec.containers) == 1
        for spec, cstate in zip(inst.spec.containers, inst.containers, strict=True):
            containers.append(
                {
                    "name": spec.name,
                    "properties": {
                        "image": spec.image,
                        "command": [*spec.command, *spec.args],
                        "ports": [{"protocol": p.protocol, "port": p.port} for p in spec.ports],
                        "environmentVariables": [_env(e, meta) for e in spec.env],
                        "resources": {"requests": {"cpu": spec.cpu, "memoryInGB": spec.memory}},
                        "instanceView": {
                            "restartCount": cstate.restart_count,
                            "currentState": _run(cstate.current),
                            **({"previousState": _run(cstate.previous)} if cstate.previous else {}),
                            "events": [_event(e) for e in inst.events if single or _mentions(e, spec)],
                        },
                    },
                }
            )
        props: dict[str, Any] = {
            "sku": meta.sku,
            "provisioningState": provisioning,
            "containers": containers,
            "restartPolicy": inst.spec.restart_policy,
            "osType": meta.os,
            "ipAddress": {
                "ports": [{"protocol": proto, "port": port} for port, proto in meta.ports],
                "type": meta.ip or "Private",
                "ip": inst.ip,
                **({"dnsNameLabel": meta.dns, "fqdn": f"{meta.dns}.{meta.loc}.azurecontainer.io"} if meta.dns else {}),
            },
            "instanceView": {
                "events": [_event(e) for e in inst.events if not single and _group_event(e, inst)],
                "state": state,
            },
        }
        if inst.spec.init_containers:
            props["initContainers"] = [
                {
                    "name": c.name,
                    "properties": {
                        "image": c.image,
                        "command": [*c.command, *c.args],
                        "environmentVariables": [_env(e, meta) for e in c.env],
                    },
                }
                for c in inst.spec.init_containers
            ]
        if meta.subnets:
            vpc = self.cloud.world.vpc_id
            props["subnetIds"] = [
                {
                    "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{vpc}"
                    f"/subnets/{inst.vswitch_id}",
                    "name": inst.vswitch_id,
                }
            ]
        body: dict[str, Any] = {
            "id": _arm_id(sub, rg, name),
            "name": name,
            "type": RESOURCE_TYPE,
            "location": meta.loc,
            "tags": user_tags,
            "properties": props,
        }
        if meta.zones:
            body["zones"] = meta.zones
        return body

    # -- building a spec from a PUT ---------------------------------------------------------

    def spec_from(self, sub: str, rg: str, name: str, raw: bytes) -> model.InstanceSpec:
        try:
            body = _decode_group(raw)
        except msgspec.ValidationError as exc:
            raise ArmError(
                400, "InvalidRequestContent", f"The request content was invalid and could not be deserialized: {exc}"
            ) from exc
        except msgspec.DecodeError as exc:
            raise ArmError(400, "InvalidRequestContent", f"The request content is not valid JSON: {exc}") from exc
        props = body.properties
        if not body.location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        if not props.containers:
            raise ArmError(
                400, "ContainerGroupContainersRequired", "The container group must have at least one container."
            )
        if props.osType not in ("Linux", "Windows"):
            raise ArmError(400, "InvalidOsType", f"The 'osType' '{props.osType}' is not valid: 'Linux' or 'Windows'.")
        if props.restartPolicy not in model.RESTART_POLICIES:
            raise ArmError(
                400,
                "InvalidRestartPolicy",
                f"The restart policy '{props.restartPolicy}' is not valid: one of {', '.join(model.RESTART_POLICIES)}.",
            )
        if len(body.tags) > MAX_USER_TAGS:
            raise ArmError(400, "InvalidTagCount", f"At most {MAX_USER_TAGS} tags are supported by the simulator.")
        _check_tags(body.tags)
        secure: list[str] = []
        containers = []
        for c in props.containers:
            _check_name(c.name, "container")
            req = c.properties.resources.requests
            if req.cpu <= 0 or req.memoryInGB <= 0:
                raise ArmError(
                    400,
                    "InvalidContainerResourceRequest",
                    f"The resource requests of container '{c.name}' must be positive: "
                    f"{req.cpu:g} CPU, {req.memoryInGB:g} GB.",
                )
            containers.append(
                model.ContainerSpec(
                    name=c.name,
                    image=c.properties.image,
                    command=tuple(c.properties.command),
                    env=tuple(_env_tag(e, secure) for e in c.properties.environmentVariables),
                    ports=tuple(model.Port(p.port, p.protocol) for p in c.properties.ports),
                    cpu=req.cpu,
                    memory=req.memoryInGB,
                )
            )
        inits = tuple(
            model.ContainerSpec(
                name=c.name,
                image=c.properties.image,
                command=tuple(c.properties.command),
                env=tuple(_env_tag(e, secure) for e in c.properties.environmentVariables),
            )
            for c in props.initContainers
        )
        zone = ""
        if body.zones:
            zones = self.cloud.world.zones
            if len(body.zones) != 1 or not body.zones[0].isdigit() or not 1 <= int(body.zones[0]) <= len(zones):
                raise ArmError(
                    400,
                    "InvalidAvailabilityZones",
                    f"Exactly one zone of 1..{len(zones)} may be given, not {body.zones}.",
                )
            zone = zones[int(body.zones[0]) - 1]
        vswitches = tuple(self.cloud.vswitches)
        if props.subnetIds:
            wanted = tuple(s.id.rstrip("/").rsplit("/", 1)[-1] for s in props.subnetIds)
            unknown = [w for w in wanted if w not in self.cloud.vswitches]
            if unknown:
                raise ArmError(
                    400,
                    "InvalidSubnetId",
                    f"The subnet {unknown[0]} does not exist; the simulator's subnets are {', '.join(vswitches)}.",
                )
            vswitches = wanted
        ip = props.ipAddress
        meta = _Meta(
            loc=body.location,
            id=_arm_id(sub, rg, name),
            os=props.osType,
            ip=ip.type if ip else "",
            ports=[(p.port, p.protocol) for p in ip.ports] if ip else [],
            dns=(ip.dnsNameLabel or "") if ip else "",
            secure=sorted(set(secure)),
            zones=list(body.zones),
            subnets=bool(props.subnetIds),
            sku=props.sku,
        )
        tags = [model.Tag(k, v) for k, v in sorted(body.tags.items())]
        tags += [
            model.Tag(TAG_ID, _arm_id(sub, rg, name).lower()),
            model.Tag(TAG_GROUP, _group_key(sub, rg)),
            model.Tag(TAG_SUBSCRIPTION, sub.lower()),
            model.Tag(TAG_META, _encode(meta).decode()),
        ]
        groups = self.cloud.groups.values()
        group = next((g for g in groups if g.kind == "enterprise"), next(iter(groups)))
        return model.InstanceSpec(
            name=name,
            containers=tuple(containers),
            init_containers=inits,
            vswitch_ids=vswitches,
            security_group_id=group.id,
            restart_policy=props.restartPolicy,
            zone=zone,
            tags=tuple(tags),
        )

    # -- handlers --------------------------------------------------------------------------

    async def put_group(self, request: web.Request) -> web.Response:
        sub, rg, name = _path(request)
        _check_name(name, "container group")
        spec = self.spec_from(sub, rg, name, await request.read())
        existing = self.lookup(sub, rg, name)
        if existing is not None and existing.status != model.TERMINATING:
            if existing.spec == spec:
                return _json(self.render(existing), 200)
            if msgspec.structs.replace(existing.spec, tags=spec.tags) == spec:  # only the tags differ
                self.cloud.retag(existing.id, spec.tags)  # ARM updates tags in place
                await self.changed()
                return _json(self.render(existing), 200)
        await self.admit("create")
        if existing is not None and existing.status != model.TERMINATING:
            self.cloud.admit("delete")
            self.cloud.delete(existing.id)
        inst = self.cloud.create(spec)
        await self.changed()
        op = self._operation_url(request, sub, inst, "create")
        headers = {"Azure-AsyncOperation": op, "Retry-After": self.retry_after()}
        return _json(self.render(inst), 201, headers)

    async def get_group(self, request: web.Request) -> web.Response:
        sub, rg, name = _path(request)
        await self.admit("describe")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise _not_found(sub, rg, name)
        return _json(self.render(inst))

    async def delete_group(self, request: web.Request) -> web.Response:
        sub, rg, name = _path(request)
        await self.admit("delete")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            return web.Response(status=204)
        self.cloud.delete(inst.id)
        await self.changed()
        headers = {
            "Azure-AsyncOperation": self._operation_url(request, sub, inst, "delete"),
            "Location": self._operation_url(request, sub, inst, "delete", results=True),
            "Retry-After": self.retry_after(),
        }
        return web.Response(status=202, headers=headers)

    async def list_groups(self, request: web.Request) -> web.Response:
        sub = request.match_info["sub"]
        rg = request.match_info.get("rg")
        await self.admit("describe")
        tag = model.Tag(TAG_GROUP, _group_key(sub, rg)) if rg else model.Tag(TAG_SUBSCRIPTION, sub.lower())
        token = request.query.get("$skipToken", "")
        page = self.cloud.page(cloudmod.ListFilter(tags=(tag,)), limit=self.page_size, token=token)
        body: dict[str, Any] = {"value": [self.render(i) for i in page.items]}
        if page.next_token:
            url = request.url.with_query({"api-version": request.query["api-version"], "$skipToken": page.next_token})
            body["nextLink"] = str(url.with_scheme("https"))
        return _json(body)

    async def restart_group(self, request: web.Request) -> web.Response:
        sub, rg, name = _path(request)
        await self.admit("restart")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise _not_found(sub, rg, name)
        self.cloud.restart(inst.id)
        await self.changed()
        return web.Response(status=204)

    async def stop_group(self, request: web.Request) -> web.Response:
        """Stop: synchronous in ARM (``204``). Containers end, billing and the vCPU quota are released;
        the group and its address stay, ``instanceView.state`` is ``Stopped``."""
        sub, rg, name = _path(request)
        await self.admit("restart")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise _not_found(sub, rg, name)
        self.cloud.stop(inst.id)
        await self.changed()
        return web.Response(status=204)

    async def start_group(self, request: web.Request) -> web.Response:
        """Start a stopped (or finished) group: a long-running operation, ``202`` with
        ``Azure-AsyncOperation`` that succeeds once the containers run again."""
        sub, rg, name = _path(request)
        await self.admit("restart")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise _not_found(sub, rg, name)
        self.cloud.start(inst.id)
        await self.changed()
        headers = {
            "Azure-AsyncOperation": self._operation_url(request, sub, inst, "start"),
            "Retry-After": self.retry_after(),
        }
        return web.Response(status=202, headers=headers)

    async def patch_group(self, request: web.Request) -> web.Response:
        """PATCH: update the group's tags (the SDK's ``update``; ARM replaces the whole tag set)."""
        sub, rg, name = _path(request)
        try:
            body = _decode_patch(await request.read())
        except msgspec.ValidationError as exc:
            raise ArmError(
                400, "InvalidRequestContent", f"The request content was invalid and could not be deserialized: {exc}"
            ) from exc
        except msgspec.DecodeError as exc:
            raise ArmError(400, "InvalidRequestContent", f"The request content is not valid JSON: {exc}") from exc
        await self.admit("update")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise _not_found(sub, rg, name)
        if body.tags is not None:
            self._retag(inst, body.tags)
            await self.changed()
        return _json(self.render(inst))

    def _retag(self, inst: model.Instance, tags: dict[str, str]) -> None:
        if len(tags) > MAX_USER_TAGS:
            raise ArmError(400, "InvalidTagCount", f"At most {MAX_USER_TAGS} tags are supported by the simulator.")
        _check_tags(tags)
        internal = tuple(t for t in inst.spec.tags if t.key in INTERNAL_TAGS)
        self.cloud.retag(inst.id, tuple(model.Tag(k, v) for k, v in sorted(tags.items())) + internal)

    async def logs(self, request: web.Request) -> web.Response:
        sub, rg, name = _path(request)
        container = request.match_info["container"]
        await self.admit("logs")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise _not_found(sub, rg, name)
        tail = _int_query(request, "tail")
        timestamps = request.query.get("timestamps", "false").lower() == "true"
        if container not in {c.name for c in inst.spec.containers}:
            raise ArmError(404, "ContainerNotFound", f"The container '{container}' does not exist in '{name}'.")
        _, text = self.cloud.logs(inst.id, cloudmod.LogQuery(container=container, tail=tail, timestamps=timestamps))
        return _json({"content": text})

    async def metrics(self, request: web.Request) -> web.Response:
        """Azure Monitor's metrics of a container group (``{group}/providers/Microsoft.Insights/metrics``):
        ``CpuUsage`` (millicores) and ``MemoryUsage`` (bytes), one data point per ``interval`` over
        ``timespan`` (default the last hour, at PT1M), averages over the time a container ran in
        each interval; ``$filter=containerName eq '*'`` splits the series by container."""
        sub, rg, name = _path(request)
        query = request.query
        names = [n.strip() for n in query.get("metricnames", "CpuUsage").split(",") if n.strip()]
        for metric in names:
            if metric not in METRICS:
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Failed to find metric configuration for provider: {PROVIDER}, resource Type: containerGroups, "
                    f"metric: {metric}, Valid metrics: {','.join(METRICS)}",
                )
        interval = query.get("interval", "PT1M").upper()
        step = METRIC_GRAINS.get(interval)
        if step is None:
            raise ArmError(400, "BadRequest", f"Invalid interval {interval!r}: one of {', '.join(METRIC_GRAINS)}")
        aggregations = [a.strip().lower() for a in query.get("aggregation", "average").split(",") if a.strip()]
        for aggregation in aggregations:
            if aggregation not in ("average", "minimum", "maximum"):
                raise ArmError(
                    400, "BadRequest", f"Aggregation {aggregation!r} is not supported: Average, Minimum, Maximum"
                )
        split: str | None = None
        if query.get("$filter"):
            match = _CONTAINER_FILTER.match(query["$filter"])
            if match is None:
                raise ArmError(
                    400, "BadRequest", f"Invalid $filter {query['$filter']!r}: only containerName eq '<name>|*'"
                )
            split = match.group(1)
        await self.admit("metrics")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise _not_found(sub, rg, name)
        now = self.cloud.now()
        start, end = _timespan(query.get("timespan"), now)
        first = math.floor(start / step) * step
        buckets = [(float(a), min(a + step, end)) for a in range(int(first), math.ceil(end), step)]
        if len(buckets) > MAX_METRIC_POINTS:
            raise ArmError(
                400, "BadRequest", f"The query asks for {len(buckets)} data points, at most {MAX_METRIC_POINTS}"
            )
        runs = usage.of_instance(inst)
        if split is not None and split != "*":
            runs = [run for run in runs if run.name == split]
        groups = [[run] for run in runs] if split is not None else [runs]
        resource_id = _meta_of(inst).id or _arm_id(sub, rg, name)
        value = []
        for metric in names:
            display, unit, description = METRICS[metric]
            series = []
            for group in groups:
                data = []
                for a, b in buckets:
                    point: dict[str, Any] = {"timeStamp": _plain_iso(a)}
                    ran = [run for run in group if run.overlap(a, b) > 0]
                    if ran:
                        if metric == "CpuUsage":
                            figure = sum(1000 * run.core_seconds(b, a) / run.overlap(a, b) for run in ran)
                        else:
                            figure = float(sum(run.memory_bytes for run in ran))
                        for aggregation in aggregations:
                            point[aggregation] = figure
                    data.append(point)
                entry: dict[str, Any] = {"metadatavalues": [], "data": data}
                if split is not None:
                    dimension = {"value": "containername", "localizedValue": "containername"}
                    entry["metadatavalues"] = [{"name": dimension, "value": group[0].name}]
                series.append(entry)
            value.append(
                {
                    "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{metric}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": metric, "localizedValue": display},
                    "displayDescription": description,
                    "unit": unit,
                    "timeseries": series,
                    "errorCode": "Success",
                }
            )
        return _json(
            {
                "cost": 0,
                "timespan": f"{_plain_iso(start)}/{_plain_iso(end)}",
                "interval": interval,
                "value": value,
                "namespace": RESOURCE_TYPE,
                "resourceregion": _meta_of(inst).loc,
            }
        )

    async def exec(self, request: web.Request) -> web.Response:
        sub, rg, name = _path(request)
        container = request.match_info["container"]
        try:
            body = _decode_exec(await request.read())
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ArmError(400, "InvalidRequestContent", f"The request content was invalid: {exc}") from exc
        await self.admit("exec")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise _not_found(sub, rg, name)
        names = [c.name for c in inst.spec.containers]
        if container not in names:
            raise ArmError(404, "ContainerNotFound", f"The container '{container}' does not exist in '{name}'.")
        if inst.containers[names.index(container)].current.state != "Running":
            raise ArmError(409, "ContainerGroupTransitioning", f"The container '{container}' is not running.")
        now = time.monotonic()
        for key in [k for k, s in self.exec_sessions.items() if s.expires < now]:
            del self.exec_sessions[key]
        session_id = secrets.token_urlsafe(18)
        password = secrets.token_urlsafe(24)
        self.exec_sessions[session_id] = _ExecSession(
            inst.id, container, body.command, password, now + EXEC_SESSION_SECONDS
        )
        uri = request.url.with_scheme("wss").with_path(f"/aci-exec/{session_id}").with_query(None)
        return _json({"webSocketUri": str(uri), "password": password})

    async def exec_socket(self, request: web.Request) -> web.StreamResponse:
        """The exec WebSocket: the first message is the password; then the command's output.

        A bare shell (``/bin/sh``) is interactive: each message is a command line, ``exit`` ends.
        """
        session = self.exec_sessions.pop(request.match_info["session"], None)
        if session is None or session.expires < time.monotonic():
            raise ArmError(404, "ExecSessionNotFound", "The exec session does not exist or has expired.")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        first = await socket.receive(timeout=30)
        if first.type != web.WSMsgType.TEXT or first.data != session.password:
            await socket.close(code=4401, message=b"bad password")
            return socket
        argv = shlex.split(session.command) if session.command else ["/bin/sh"]
        if len(argv) == 1 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash", "dash"):
            async for message in socket:
                if message.type != web.WSMsgType.TEXT:
                    break
                line = message.data.strip()
                if line in ("exit", "logout"):
                    break
                await socket.send_str(self._run(session, ["/bin/sh", "-c", line]))
        else:
            await socket.send_str(self._run(session, argv))
        await socket.close()
        return socket

    def _run(self, session: _ExecSession, argv: list[str]) -> str:
        self.cloud.tick()
        try:
            return self.cloud.exec(session.instance_id, session.container, argv).output
        except errors.CloudError as exc:
            return f"error: {exc.message}\n"

    async def operation(self, request: web.Request) -> web.Response:
        """An operation's status (``Azure-AsyncOperation``) or result (``Location``) for a PUT or DELETE."""
        sub = request.match_info["sub"]
        kind, _, instance_id = request.match_info["op"].partition("~")
        await self.admit("status")
        inst = self.cloud.live.get(instance_id)
        record = inst
        if record is None:
            try:
                record = self.cloud.instance_record(instance_id)
            except errors.NotFound:
                raise ArmError(404, "OperationNotFound", "The operation does not exist.") from None
        if record.tag(TAG_SUBSCRIPTION) != sub.lower() or kind not in ("create", "delete", "start"):
            raise ArmError(404, "OperationNotFound", "The operation does not exist.")
        arm_id = _arm_id(*_split_id(_meta_of(record), record))
        status, error = "InProgress", None
        if kind == "delete":
            status = "InProgress" if inst is not None else "Succeeded"
        elif inst is None or inst.status == model.TERMINATING:
            status = "Canceled"
        else:
            provisioning, _ = _states(inst)
            if provisioning == "Succeeded":
                status = "Succeeded"
            elif provisioning == "Failed":
                status = "Failed"
                error = _failure(inst)
        if request.match_info["kind"] == "operationResults":
            if status == "InProgress":
                return web.Response(status=202, headers={"Retry-After": self.retry_after()})
            return web.Response(status=204)
        body: dict[str, Any] = {"id": arm_id, "name": request.match_info["op"], "status": status}
        body["startTime"] = _iso(record.created_at if kind == "create" else (record.status_at or record.created_at))
        if status != "InProgress":
            body["endTime"] = _iso(record.deleted_at or record.status_at)
        if error:
            body["error"] = error
        headers = {"Retry-After": self.retry_after()} if status == "InProgress" else {}
        return _json(body, 200, headers)

    def _operation_url(
        self, request: web.Request, sub: str, inst: model.Instance, kind: str, *, results: bool = False
    ) -> str:
        meta = _meta_of(inst)
        segment = "operationResults" if results else "operations"
        path = f"/subscriptions/{sub}/providers/{PROVIDER}/locations/{meta.loc}/{segment}/{kind}~{inst.id}"
        version = urllib.parse.quote(request.query.get("api-version", ""), safe="")
        return f"https://{request.host}{path}?api-version={version}"  # yarl's URL building costs more than the rest


_APP_KEY = web.AppKey("aci", Dialect)


# -- helpers ---------------------------------------------------------------------------------


def _failure(inst: model.Instance) -> dict[str, str]:
    """ARM's error for a group that failed to provision, from the cloud's first warning event."""
    warning = next((e for e in inst.events if e.type == "Warning"), None)
    if warning is None:
        return {"code": "Failed", "message": f"The container group '{inst.spec.name}' failed to start."}
    if warning.reason == "Failed" and "pull image" in warning.message:
        return {"code": "InaccessibleImage", "message": warning.message}
    if warning.reason == "FailedScheduling":
        return {"code": "InsufficientCapacity", "message": warning.message}
    return {"code": warning.reason, "message": warning.message}


def _meta_of(inst: model.Instance) -> _Meta:
    raw = inst.tag(TAG_META)
    if raw:
        try:
            return _decode_meta(raw)
        except msgspec.MsgspecError:
            pass
    return _Meta(loc=inst.region)  # an instance made through another dialect


def _split_id(meta: _Meta, inst: model.Instance) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a group; placeholders for one made by another dialect."""
    parts = meta.id.split("/")
    if len(parts) >= 9:
        return parts[2], parts[4], inst.spec.name
    return "00000000-0000-0000-0000-000000000000", "default", inst.spec.name


def _path(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["sub"], info["rg"], info["name"]


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise ArmError(
            400,
            "InvalidResourceName" if what == "container group" else "InvalidContainerName",
            f"The {what} name '{name}' is invalid: 1 to 63 lowercase letters, digits and single dashes, "
            "beginning and ending with a letter or digit.",
        )


def _check_tags(tags: dict[str, str]) -> None:
    """ARM's rules for tags: names without ``<>%&\\?/`` or control characters, at most 512
    characters (values 256), no ``microsoft``/``azure``/``windows`` prefix. A provider that tags
    with ``vnode.io/node`` on ECI must spell it differently on ACI, as on the real cloud."""
    bad = sorted(k for k in tags if _RESERVED_TAG_CHARS.search(k))
    if bad:
        raise ArmError(
            400,
            "InvalidTagNameCharacters",
            f"The tag names '{','.join(bad)}' have reserved characters '<,>,%,&,\\,?,/' or control characters.",
        )
    for key, value in tags.items():
        if key in INTERNAL_TAGS:
            raise ArmError(400, "InvalidTagName", f"The tag name '{key}' is reserved by the simulator.")
        if not key or len(key) > 512 or key.lower().startswith(("microsoft", "azure", "windows")):
            raise ArmError(
                400,
                "InvalidTagName",
                f"The tag name '{key}' is invalid: 1 to 512 characters, not starting with microsoft, azure or windows.",
            )
        if len(value) > 256:
            raise ArmError(400, "InvalidTagValueLength", f"The value of tag '{key}' is longer than 256 characters.")


def _int_query(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ArmError(400, "InvalidQueryParameterValue", f"The query parameter '{key}' must be an integer.") from None
    if value < 0:
        raise ArmError(400, "InvalidQueryParameterValue", f"The query parameter '{key}' must not be negative.")
    return value


def _env_tag(env: _Env, secure: list[str]) -> model.EnvVar:
    if env.secureValue is not None:
        secure.append(env.name)
        return model.EnvVar(env.name, env.secureValue)
    return model.EnvVar(env.name, env.value or "")


def _env(env: model.EnvVar, meta: _Meta) -> dict[str, str]:
    if env.key in meta.secure:
        return {"name": env.key}  # ACI never returns secure values
    return {"name": env.key, "value": env.value}


def _run(run: model.Run) -> dict[str, Any]:
    out: dict[str, Any] = {"state": run.state, "detailStatus": run.reason or run.message}
    if run.started_at:
        out["startTime"] = _iso(run.started_at)
    if run.state == "Terminated":
        out["exitCode"] = run.exit_code
        out["finishTime"] = _iso(run.finished_at)
    return out


def _event(event: model.Event) -> dict[str, Any]:
    stamp = _iso(event.at)
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


def _group_event(event: model.Event, inst: model.Instance) -> bool:
    return not any(_mentions(event, spec) for spec in inst.spec.containers)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error_response(error: ArmError) -> web.Response:
    return _json({"error": {"code": error.code, "message": error.message}}, error.status, error.headers)


# -- the app ---------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _arm_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    dialect = request.app[_APP_KEY]
    dialect.requests += 1
    request_id = dialect.request_id()
    try:
        if not request.path.startswith("/aci-exec/"):
            dialect.authenticate(request)
            version = request.query.get("api-version")
            if not version:
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            if not _API_VERSION.match(version):
                raise ArmError(400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid.")
        response = await handler(request)
    except ArmError as exc:
        response = _error_response(exc)
    except errors.CloudError as exc:
        response = _error_response(_from_cloud(exc))
    except web.HTTPNotFound:
        response = _error_response(
            ArmError(404, "NotFound", f"No route for {request.method} {request.path} in the ACI dialect of cloudsim.")
        )
    except web.HTTPMethodNotAllowed:
        response = _error_response(
            ArmError(405, "MethodNotAllowed", f"The method {request.method} is not supported for {request.path}.")
        )
    if response.status == 429:
        dialect.throttled += 1
    if not response.prepared:
        response.headers["x-ms-request-id"] = request_id
        response.headers["x-ms-correlation-request-id"] = request_id
    return response


def create_app(
    cloud: cloudmod.Cloud,
    *,
    tokens: Collection[str],
    page_size: int = DEFAULT_PAGE_SIZE,
    poll_interval: float = 1.0,
    commit: Callable[[], Awaitable[None]] | None = None,
) -> web.Application:
    """The ACI dialect as an aiohttp app; serve it over TLS (``serve``, or ``TlsFiles.server_context``)."""
    dialect = Dialect(cloud, tokens=tokens, page_size=page_size, poll_interval=poll_interval, commit=commit)
    app = web.Application(middlewares=[_arm_middleware])
    app[_APP_KEY] = dialect
    groups = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups"
    group = groups + "/{name}"
    app.router.add_put(group, dialect.put_group)
    app.router.add_get(group, dialect.get_group)
    app.router.add_delete(group, dialect.delete_group)
    app.router.add_get(groups, dialect.list_groups)
    app.router.add_get(
        "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/containerGroups", dialect.list_groups
    )
    app.router.add_post(group + "/restart", dialect.restart_group)
    app.router.add_patch(group, dialect.patch_group)
    app.router.add_post(group + "/stop", dialect.stop_group)
    app.router.add_post(group + "/start", dialect.start_group)
    app.router.add_get(group + "/containers/{container}/logs", dialect.logs)
    app.router.add_post(group + "/containers/{container}/exec", dialect.exec)
    # ARM paths are case-insensitive; clients spell the namespace either way.
    app.router.add_get(group + "/providers/{insights:[Mm]icrosoft\\.[Ii]nsights}/metrics", dialect.metrics)
    app.router.add_get(
        "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{location}/{kind:operations|operationResults}/{op}",
        dialect.operation,
    )
    app.router.add_get("/aci-exec/{session}", dialect.exec_socket)
    return app


def dialect_of(app: web.Application) -> Dialect:
    """The dialect behind an app made by ``create_app`` (tests read its counters)."""
    return app[_APP_KEY]


@dataclasses.dataclass
class Served:
    """A running ACI endpoint: ``base_url`` for the SDK, ``close()`` to stop it."""

    runner: web.AppRunner
    port: int
    tls: TlsFiles

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def close(self) -> None:
        """Stop serving. TLS connections whose client never says goodbye are aborted, not awaited
        (asyncio would otherwise wait its SSL shutdown timeout, 30 s, for each)."""
        server = self.runner.server
        transports = [h.transport for h in server.connections] if server is not None else []
        await self.runner.cleanup()
        for transport in transports:
            if transport is not None:
                transport.abort()


async def serve(
    cloud: cloudmod.Cloud,
    *,
    tls_dir: pathlib.Path,
    tokens: Collection[str],
    host: str = "127.0.0.1",
    port: int = 0,
    page_size: int = DEFAULT_PAGE_SIZE,
    poll_interval: float = 1.0,
) -> Served:
    """Start the ACI dialect on ``host:port`` over HTTPS (port 0: any free port)."""
    tls = ensure_tls(tls_dir)
    app = create_app(cloud, tokens=tokens, page_size=page_size, poll_interval=poll_interval)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls.server_context())
    await site.start()
    server = site._server  # aiohttp exposes the bound port only here
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return Served(runner, int(bound), tls)


def connection_info(endpoint: str, tls: TlsFiles, *, seed: int, resource_group: str = "vnode") -> dict[str, str]:
    """The ``aci`` section of cloud.json: what a client needs to reach the endpoint."""
    return {
        "endpoint": endpoint,
        "ca_file": str(tls.ca),
        "token": default_token(seed),
        "subscription_id": default_subscription(seed),
        "resource_group": resource_group,
        "location": "westeurope",
        "api_version": "2023-05-01",
    }


class Host(Protocol):
    """What ``mount`` needs of the simulator's server (``vnode.cloudsim.server.Server``)."""

    cloud: cloudmod.Cloud
    host: str
    extra_ports: list[int]

    def add_site(self, app: web.Application, *, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None: ...

    async def commit(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Mounted:
    """The ACI dialect added to a server; ``connection_info()`` once the server listens."""

    host: Host
    index: int  # which of the server's extra sites is ours
    tls: TlsFiles

    @property
    def port(self) -> int:
        return self.host.extra_ports[self.index]

    def connection_info(self) -> dict[str, str]:
        return connection_info(f"https://{self.host.host}:{self.port}", self.tls, seed=self.host.cloud.seed)


def mount(host: Host, state_dir: pathlib.Path, *, port: int = 0, index: int = 0) -> Mounted:
    """Add the ACI dialect over HTTPS to the server: a CA in ``state_dir`` and the seed's token.

    ``index`` is the position of this site among the server's extra sites (0 if it is the only one).
    """
    tls = ensure_tls(state_dir)
    app = create_app(host.cloud, tokens=[default_token(host.cloud.seed)], commit=host.commit)
    host.add_site(app, port=port, ssl_context=tls.server_context())
    return Mounted(host, index, tls)
