"""The Alibaba ECI provider: pods as Elastic Container Instances through the 2018-08-08 RPC API.

It speaks the wire protocol the official SDK ``alibabacloud-eci20180808`` speaks (``POST
/?<flat parameters>`` with ``x-acs-action``/``x-acs-version`` and an ACS3-HMAC-SHA256
signature), through a lean client of its own on aiohttp rather than the SDK. That choice was
measured, not assumed (``python -m bench.eci_client``, figures in docs/benchmarks.md, section
``eci-client``): against the simulator, 16 calls in flight, the SDK's ``*_async`` methods spent
2.0x to 2.8x the lean client's CPU per call (a DescribeContainerGroupStatus page of 100, a
CreateContainerGroup), the sync SDK in a thread pool 3.4x to 6.1x, and the lean client made
more calls per second than either (1.2x to 3.9x; the machine is shared, so ratios move between
runs, never the order). On a daemon that lists thousands of instances every
interval, CPU per call is the budget that matters; the wire and signature are the SDK's.

What the provider does beyond translating calls:

* **Failover.** All candidate vSwitches of ``spec.placement`` go into one call (ECI's
  ``VSwitchId`` takes up to 10, tried in ``ScheduleStrategy`` order, so the cloud itself skips a
  zone without stock); beyond 10 candidates the next batch is tried after a capacity error.
  Only when every batch is refused does ``create`` raise ``CapacityError``.
* **Idempotency** is the cloud's: every create carries ``ClientToken`` = ``spec.client_token``.
* **No retries**; a client-side token bucket with the cloud's create/delete limits (burst 100,
  20/s) answers ``Throttled`` with the time to the next token instead of spending a call that
  the cloud would refuse.
* **Listing** pages ECI's bulk ``DescribeContainerGroupStatus`` by the node's tags (200 per
  page) as the change detector; it carries no tags, zone or events, so an instance is described
  in full (``DescribeContainerGroups`` by id, 20 per call) when it is new or its status item
  changed, and its last full state is reused otherwise.
* **Stats** read ``DescribeMultiContainerGroupMetric`` (the latest record of up to 20 instances a
  call, the calls of one scrape concurrently): a node's pods cost ``ceil(n / 20)`` calls per
  metrics-server scrape, never one per pod.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec

from vnode import errors, models, percent, settings
from vnode.provider import base, polling
from vnode.provider.eci import config as eci_config

__all__ = ["EciClient", "EciProvider", "ExecOutput", "TokenBucket", "create"]

VERSION = "2018-08-08"
ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_VSWITCHES_PER_CALL = 10
PAGE = 20  # DescribeContainerGroups' largest page (and most ids per call)
STATUS_PAGE = 200  # DescribeContainerGroupStatus' page
SINCE_MARGIN = 1  # seconds added to SinceSecond (rounded up) beyond the time since the last listing began

# Codes that mean "this zone/vSwitch cannot take it, another may" (ECI and the VPC/ECS ones it uses).
_CAPACITY = re.compile(r"NoStock|StockExhaust|IpNotEnough|InsufficientIp|QuotaExceed\.SecurityGroup|ZoneNotAvailable")
_QUOTA = re.compile(r"QuotaExceed|InsufficientBalance|AccountArrearage")
_AUTH = re.compile(
    r"^(InvalidAccessKeyId|SignatureDoesNotMatch|IncompleteSignature|InvalidSecurityToken|Forbidden|NoPermission"
    r"|InvalidTimeStamp|MissingSignatureNonce|Unauthorized)"
)
_EXIT = re.compile(rb"command terminated with non-zero exit code: exit status (\d+)\n?$")

log = logging.getLogger(__name__)


# -- the lean client ---------------------------------------------------------------------------


def canonical_query(params: Mapping[str, str]) -> str:
    """The query as ACS3 signs it (and as we send it): sorted keys, values quoted with ``~`` safe."""
    return "&".join(f"{key}={percent.quote(params[key])}" for key in sorted(params))


def sign(
    secret: str, method: str, path: str, query: str, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """``(signed header names, signature)`` of ACS3-HMAC-SHA256, as ``alibabacloud_openapi_util`` builds it."""
    names = sorted(headers)
    lines = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    signed = ";".join(names)
    canonical = f"{method}\n{path}\n{query}\n{lines}\n{signed}\n{payload_hash}"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return signed, hmac.new(secret.encode(), f"{ALGORITHM}\n{digest}".encode(), hashlib.sha256).hexdigest()


class EciClient:
    """Signed ECI RPC calls over one pooled aiohttp session (made on first use, in the running loop).

    ``call`` returns the decoded JSON body or raises the :mod:`vnode.errors` kind of the cloud's
    answer. It never retries.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        timeout: float = 30.0,
        connections: int = 64,
    ) -> None:
        if "://" in endpoint:
            parts = urllib.parse.urlsplit(endpoint)
            self.scheme, self.host = parts.scheme, parts.netloc
        else:
            self.host = endpoint
            self.scheme = "http" if _is_loopback(endpoint) else "https"
        self.access_key = access_key
        self.secret_key = secret_key
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, skip_auto_headers=("User-Agent",)
            )
        return self._session

    def signed_request(self, action: str, params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """The URL and headers of one call (pure: used by ``call`` and by tests of the signature)."""
        query = canonical_query(params)
        headers = {
            "host": self.host,
            "x-acs-action": action,
            "x-acs-content-sha256": EMPTY_SHA256,
            "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-version": VERSION,
        }
        signed, signature = sign(self.secret_key, "POST", "/", query, headers, EMPTY_SHA256)
        headers["Authorization"] = (
            f"{ALGORITHM} Credential={self.access_key},SignedHeaders={signed},Signature={signature}"
        )
        headers["accept"] = "application/json"
        return f"{self.scheme}://{self.host}/?{query}", headers

    async def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        raw = await self.call_raw(action, params)
        try:  # msgspec: a node's listing decodes thousands of items a second, at 2.5x json's speed
            body = msgspec.json.decode(raw) if raw else {}
        except msgspec.DecodeError:
            body = {}
        return body if isinstance(body, dict) else {}

    async def call_raw(self, action: str, params: Mapping[str, str]) -> bytes:
        """The answer's body as bytes, for a caller that decodes it into its own type; errors as in ``call``."""
        url, headers = self.signed_request(action, params)
        session = self._open()
        try:
            async with session.post(url, headers=headers, data=b"") as response:
                raw = await response.read()
                status = response.status
        except TimeoutError as exc:
            raise errors.Unavailable(f"ECI {action}: timed out", code="Timeout") from exc
        except aiohttp.ClientError as exc:
            raise errors.Unavailable(f"ECI {action}: {exc}", code="ConnectionError") from exc
        if status < 300:
            return raw
        try:
            body = msgspec.json.decode(raw) if raw else {}
        except msgspec.DecodeError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        raise error_of(action, status, str(body.get("Code", "")), str(body.get("Message", raw[:200])))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _is_loopback(host_port: str) -> bool:
    host = host_port.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_of(action: str, status: int, code: str, message: str) -> errors.ApiError:
    """The error kind of one ECI error answer; the node acts on the kind, logs show ``code``."""
    text = f"ECI {action}: {code or status}: {message}"
    if code.startswith("Throttling") or status == 429:
        return errors.Throttled(text, code=code or "Throttling", retry_after=1.0)
    if status >= 500 or code in ("ServiceUnavailable", "InternalError", "UnknownError", "SignatureNonceUsed"):
        return errors.Unavailable(text, code=code or str(status))
    if _CAPACITY.search(code) or _QUOTA.search(code):
        return errors.CapacityError(text, code=code)
    if _AUTH.match(code) or status in (401, 403):
        return errors.Forbidden(text, code=code or str(status))
    if code.endswith("NotFound") or status == 404:
        return errors.NotFound(text, code=code or "NotFound")
    if code in ("IncorrectStatus", "IdempotentParameterMismatch") or code.startswith("IncorrectStatus"):
        return errors.Conflict(text, code=code)
    if status == 400:
        return errors.InvalidSpec(text, code=code or "InvalidParameter")
    return errors.Unavailable(text, code=code or str(status))


# -- InstanceSpec -> CreateContainerGroup ----------------------------------------------------


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


def _container(params: dict[str, str], prefix: str, c: models.ContainerSpec) -> None:
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
        params[f"{prefix}.VolumeMount.{n}.ReadOnly"] = "true" if mount.read_only else "false"
        if mount.sub_path:
            params[f"{prefix}.VolumeMount.{n}.SubPath"] = mount.sub_path
    if c.working_dir:
        params[f"{prefix}.WorkingDir"] = c.working_dir
    if c.cpu:
        params[f"{prefix}.Cpu"] = _num(c.cpu)
    if c.memory_gib:
        params[f"{prefix}.Memory"] = _num(c.memory_gib)
    if c.stdin:
        params[f"{prefix}.Stdin"] = "true"
    if c.tty:
        params[f"{prefix}.Tty"] = "true"
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
    for n, server in enumerate(spec.dns_nameservers, 1):
        params[f"DnsConfig.NameServer.{n}"] = server
    for n, (key, value) in enumerate(sorted(spec.tags.items()), 1):
        params[f"Tag.{n}.Key"] = key
        params[f"Tag.{n}.Value"] = value
    for n, c in enumerate(spec.containers, 1):
        _container(params, f"Container.{n}", c)
    for n, c in enumerate(spec.init_containers, 1):
        _container(params, f"InitContainer.{n}", c)
    _volumes(params, spec.volumes)
    return params


def _volumes(params: dict[str, str], volumes: Sequence[models.VolumeSpec]) -> None:
    """``Volume.N.*`` as CreateContainerGroup and UpdateContainerGroup take them."""
    for n, volume in enumerate(volumes, 1):
        prefix = f"Volume.{n}"
        params[f"{prefix}.Name"] = volume.name
        if volume.kind == "emptyDir":
            params[f"{prefix}.Type"] = "EmptyDirVolume"
            if volume.medium:
                params[f"{prefix}.EmptyDirVolume.Medium"] = volume.medium
            if volume.size_limit_gib is not None:
                params[f"{prefix}.EmptyDirVolume.SizeLimit"] = f"{_num(volume.size_limit_gib)}Gi"
        elif volume.kind == "files":
            params[f"{prefix}.Type"] = "ConfigFileVolume"
            for m, item in enumerate(volume.files, 1):
                params[f"{prefix}.ConfigFileVolume.ConfigFileToPath.{m}.Path"] = item.path
                params[f"{prefix}.ConfigFileVolume.ConfigFileToPath.{m}.Content"] = base64.b64encode(
                    item.content
                ).decode()
                if item.mode is not None:
                    params[f"{prefix}.ConfigFileVolume.ConfigFileToPath.{m}.Mode"] = str(item.mode)
        else:
            raise errors.InvalidSpec(f"volume {volume.name}: ECI does not support volumes of kind {volume.kind!r}")


# -- DescribeContainerGroups -> InstanceState -----------------------------------------------


def _time(text: Any) -> datetime.datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.UTC)


_STATUS = {s.value: s for s in models.InstanceStatus}
_CONTAINER = {s.value: s for s in models.ContainerState}


def _container_status(raw: Mapping[str, Any]) -> models.ContainerStatus:
    current = raw.get("CurrentState") or {}
    previous = raw.get("PreviousState") or {}
    exit_code = current.get("ExitCode")
    terminated = current.get("State") == "Terminated"
    return models.ContainerStatus(
        name=str(raw.get("Name", "")),
        state=_CONTAINER.get(str(current.get("State", "")), models.ContainerState.WAITING),
        image=str(raw.get("Image", "")),
        reason=str(current.get("Reason") or current.get("DetailStatus") or ""),
        message=str(current.get("Message") or ""),
        exit_code=int(exit_code) if terminated and exit_code is not None else None,
        started_at=_time(current.get("StartTime")),
        finished_at=_time(current.get("FinishTime")) if terminated else None,
        restart_count=int(raw.get("RestartCount") or 0),
        ready=bool(raw.get("Ready")),
        last_exit_code=int(previous["ExitCode"]) if previous.get("State") == "Terminated" else None,
        last_reason=str(previous.get("Reason") or ""),
        last_started_at=_time(previous.get("StartTime")),
        last_finished_at=_time(previous.get("FinishTime")),
    )


_EVENT_CONTAINER = re.compile(r"\bcontainer (?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\b")


def _event(raw: Mapping[str, Any]) -> models.InstanceEvent:
    mention = _EVENT_CONTAINER.search(str(raw.get("Message", "")))
    return models.InstanceEvent(
        container=mention["name"] if mention else "",
        reason=str(raw.get("Reason", "")),
        message=str(raw.get("Message", "")),
        type=models.EventType.WARNING if raw.get("Type") == "Warning" else models.EventType.NORMAL,
        timestamp=_time(raw.get("LastTimestamp") or raw.get("FirstTimestamp")),
        count=int(raw.get("Count") or 1),
    )


def state_of(group: Mapping[str, Any]) -> models.InstanceState:
    """One ``ContainerGroups`` item of DescribeContainerGroups as an ``InstanceState``."""
    status = _STATUS.get(str(group.get("Status", "")), models.InstanceStatus.PENDING)
    containers = tuple(_container_status(c) for c in group.get("Containers") or ())
    starts = [c.started_at for c in containers if c.started_at is not None]
    finished = _time(group.get("SucceededTime")) or _time(group.get("FailedTime"))
    events = tuple(_event(e) for e in group.get("Events") or ())
    warning = next((e for e in reversed(events) if e.type is models.EventType.WARNING), None)
    failed = status in (models.InstanceStatus.FAILED, models.InstanceStatus.SCHEDULE_FAILED)
    return models.InstanceState(
        id=str(group["ContainerGroupId"]),
        status=status,
        tags={str(t.get("Key", "")): str(t.get("Value", "")) for t in group.get("Tags") or ()},
        containers=containers,
        init_containers=tuple(_container_status(c) for c in group.get("InitContainers") or ()),
        ip=str(group.get("IntranetIp") or ""),
        zone=str(group.get("ZoneId") or ""),
        vswitch=str(group.get("VSwitchId") or ""),
        created_at=_time(group.get("CreationTime")),
        started_at=min(starts) if starts else None,
        finished_at=finished,
        reason=warning.reason if failed and warning else "",
        message=warning.message if failed and warning else "",
        events=events,
        cpu=float(group.get("Cpu") or 0.0),
        memory_gib=float(group.get("Memory") or 0.0),
    )


# -- the provider -------------------------------------------------------------------------------


class _StatusItem(msgspec.Struct, rename="pascal"):
    container_group_id: str = ""
    status: str = ""
    pod_status: msgspec.Raw = msgspec.Raw(b"null")


class _StatusPage(msgspec.Struct, rename="pascal"):
    data: list[_StatusItem] | None = None
    next_token: str | None = ""


_status_page = msgspec.json.Decoder(_StatusPage)
_TERMINATING = models.InstanceStatus.TERMINATING


@dataclasses.dataclass
class _Feed:
    """The last listing of one node's tags: what it held, when it began, when the last full one began."""

    ids: dict[str, None]  # every id listed, described or not, in listing order
    states: dict[str, models.InstanceState]  # those described, with the node's tags
    began: float
    full_at: float


@dataclasses.dataclass
class TokenBucket:
    """A client-side token bucket (the cloud's create/delete limits) on the monotonic clock."""

    burst: float
    rate: float
    tokens: float = -1.0
    updated: float = dataclasses.field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, action: str) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            wait = (1.0 - self.tokens) / self.rate if self.rate else 1.0
            raise errors.Throttled(f"ECI {action}: client-side rate limit", code="Throttling.Client", retry_after=wait)
        self.tokens -= 1.0


@dataclasses.dataclass(frozen=True)
class ExecOutput:
    exit_code: int
    stdout: bytes
    stderr: bytes = b""


class EciProvider:
    """``base.Provider`` + ``SupportsLogs`` + ``SupportsExec`` + ``SupportsStats`` on Alibaba ECI."""

    name = "eci"
    container_id_scheme = "eci"

    def __init__(
        self,
        config: eci_config.EciSettings,
        *,
        client: EciClient | None = None,
        create_limit: tuple[float, float] | None = (100.0, 20.0),
        log_poll_interval: float = 2.0,
        full_list_interval: float = 0.0,
    ) -> None:
        self.config = config
        endpoint = config.endpoint or f"eci.{config.region}.aliyuncs.com"
        self.client = client or EciClient(endpoint, config.access_key, config.secret_key)
        self._buckets = (
            {action: TokenBucket(*create_limit) for action in ("create", "delete")} if create_limit is not None else {}
        )
        self._log_poll_interval = log_poll_interval
        # instance id -> (fingerprint of its last status item, its full state): the listing
        # describes an instance again only when its status item changed.
        self._known: dict[str, tuple[bytes, models.InstanceState]] = {}
        self.full_list_interval = full_list_interval  # 0: every listing of the node is a full one
        self._feeds: dict[tuple[tuple[str, str], ...] | None, _Feed] = {}  # a node's tags -> its last listing
        # Ids the incremental listing asks for by id: deleted here or Terminating (until seen gone), or
        # listed but not described yet.
        self._by_id: set[str] = set()
        self._deleted: set[str] = set()  # ids deleted here and not yet seen gone

    async def _call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        params.setdefault("RegionId", self.config.region)
        return await self.client.call(action, params)

    # --- Provider ---

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        vswitches = spec.placement.vswitches or self.config.vswitches
        security_group = spec.placement.security_group or self.config.security_group
        if not vswitches:
            raise errors.InvalidSpec("ECI: no vSwitch to place the instance in (set ECI_VSWITCH)")
        if not security_group:
            raise errors.InvalidSpec("ECI: no security group (set ECI_SECURITY_GROUP)")
        strategy = spec.placement.strategy or "VSwitchOrdered"
        batches = [vswitches[i : i + MAX_VSWITCHES_PER_CALL] for i in range(0, len(vswitches), MAX_VSWITCHES_PER_CALL)]
        refused: list[str] = []
        code = "NoStock"
        for batch in batches:
            params = create_params(
                spec, region=self.config.region, vswitches=batch, security_group=security_group, strategy=strategy
            )
            if "create" in self._buckets:
                self._buckets["create"].take("CreateContainerGroup")
            try:
                body = await self._call("CreateContainerGroup", params)
            except errors.NotFound as exc:  # an unknown vSwitch or security group: a setting is wrong
                raise errors.InvalidSpec(exc.message, code=exc.code) from exc
            except errors.CapacityError as exc:
                refused.append(f"{','.join(batch)}: {exc.code}")
                code = exc.code
                continue
            except errors.Conflict as exc:
                # The token made an instance from other parameters (the eci-profile changed
                # between a lost answer and this retry): that instance is the pod's.
                found = await self.list(spec.tags) if spec.tags else []
                if found:
                    return found[0]
                raise errors.Unavailable(exc.message, code=exc.code) from exc
            return models.InstanceState(
                id=str(body["ContainerGroupId"]),
                status=models.InstanceStatus.SCHEDULING,
                tags=dict(spec.tags),
                cpu=spec.cpu,
                memory_gib=spec.memory_gib,
            )
        raise errors.CapacityError(f"ECI: no candidate vSwitch could take it ({'; '.join(refused)})", code=code)

    async def update_volumes(
        self, instance_id: str, volumes: Sequence[models.VolumeSpec], *, client_token: str
    ) -> None:
        """``base.SupportsVolumeUpdate`` by UpdateContainerGroup: the instance goes Updating, then back to
        Running with the new files; the ClientToken makes a retry a no-op."""
        params = {"ContainerGroupId": instance_id, "ClientToken": client_token}
        _volumes(params, volumes)
        await self._call("UpdateContainerGroup", params)

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        # ECI's DeleteContainerGroup stops with the grace period given at create
        # (TerminationGracePeriodSeconds); the call itself takes none.
        if "delete" in self._buckets:
            self._buckets["delete"].take("DeleteContainerGroup")
        self._by_id.add(instance_id)  # the incremental listing asks for it by id until it is gone
        self._deleted.add(instance_id)
        try:
            await self._call("DeleteContainerGroup", {"ContainerGroupId": instance_id})
        except errors.NotFound:
            return
        except errors.Conflict as exc:
            if exc.code.startswith("IncorrectStatus"):  # already terminating
                return
            raise errors.Unavailable(exc.message, code=exc.code) from exc
        except (errors.InvalidSpec, errors.CapacityError) as exc:
            raise errors.Unavailable(exc.message, code=exc.code) from exc

    async def get(self, instance_id: str) -> models.InstanceState:
        body = await self._call("DescribeContainerGroups", {"ContainerGroupIds": json.dumps([instance_id])})
        groups = body.get("ContainerGroups") or []
        for group in groups:
            if group.get("ContainerGroupId") == instance_id:
                return state_of(group)
        raise errors.NotFound(f"ECI: no container group {instance_id}", code="InvalidContainerGroupId.NotFound")

    async def _pages(self, action: str, params: dict[str, str], key: str) -> AsyncIterator[dict[str, Any]]:
        token = ""
        while True:
            page = dict(params, NextToken=token) if token else dict(params)
            try:
                body = await self._call(action, page)
            except (errors.InvalidSpec, errors.NotFound, errors.Conflict, errors.CapacityError) as exc:
                raise errors.Unavailable(exc.message, code=exc.code) from exc
            for item in body.get(key) or ():
                yield item
            token = str(body.get("NextToken") or "")
            if not token:
                return

    async def _status_feed(self, params: dict[str, str]) -> AsyncIterator[_StatusItem]:
        """``DescribeContainerGroupStatus``'s items, page after page, decoded only as far as needed:
        a full listing reads every one of a node's instances, so this is its hottest loop."""
        params = dict(params, RegionId=self.config.region)
        token = ""
        while True:
            page = dict(params, NextToken=token) if token else params
            try:
                raw = await self.client.call_raw("DescribeContainerGroupStatus", page)
                body = _status_page.decode(raw) if raw else _StatusPage()
            except msgspec.DecodeError as exc:
                raise errors.Unavailable(f"ECI DescribeContainerGroupStatus: {exc}", code="BadAnswer") from exc
            except (errors.InvalidSpec, errors.NotFound, errors.Conflict, errors.CapacityError) as exc:
                raise errors.Unavailable(exc.message, code=exc.code) from exc
            for item in body.data or ():
                yield item
            token = body.next_token or ""
            if not token:
                return

    async def list(self, tags: Mapping[str, str]) -> Sequence[models.InstanceState]:
        """The status feed: ``DescribeContainerGroupStatus`` (200 a page) finds the instances and
        tells which changed; only those (and new ones) are described in full, 20 per
        ``DescribeContainerGroups`` call by id. A node's 3,000 steady instances cost 15 calls.

        A node's own listing (tags without a pod UID) is incremental between full ones, which come
        every ``full_list_interval`` seconds: it asks only for the instances changed since the last
        listing began (``SinceSecond``, with a margin) and, by id, for those being deleted (an
        instance that is gone is no longer listed at all, so only asking for it by id shows that
        it went). What the two miss (an instance removed with no status change on the way, a
        cloud clock that jumps) the next full listing finds.
        """
        params: dict[str, str] = {"Limit": str(STATUS_PAGE)}
        for n, (key, value) in enumerate(sorted(tags.items()), 1):
            params[f"Tag.{n}.Key"] = key
            params[f"Tag.{n}.Value"] = value
        began = time.monotonic()
        feed_key = tuple(sorted(tags.items())) if models.TAG_POD_UID not in tags else None
        feed = self._feeds.get(feed_key) if feed_key is not None else None
        checked: list[str] = []
        if feed is not None and self.full_list_interval > 0 and began - feed.full_at < self.full_list_interval:
            # By id: instances being deleted (to see them go), and any listed but not described yet.
            checked = list(self._by_id)
            if -(-len(checked) // PAGE) > -(-len(feed.ids) // STATUS_PAGE):
                feed = None  # asking by id would take more calls than listing everything (a mass delete)
        else:
            feed = None
        listed: dict[str, None] = {}  # ids seen in this listing, in order
        stale: dict[str, bytes] = {}

        def note(item: _StatusItem) -> None:
            instance_id = item.container_group_id
            if not instance_id or instance_id in listed:
                return
            # PodStatus is kept as the cloud's bytes, never parsed: it only tells whether to describe again.
            fingerprint = item.status.encode() + b"\0" + bytes(item.pod_status)
            listed[instance_id] = None
            cached = self._known.get(instance_id)
            if cached is None or cached[0] != fingerprint:
                stale[instance_id] = fingerprint

        if feed is None:
            async for item in self._status_feed(params):
                note(item)
            gone = [
                i for i, (_, state) in self._known.items() if i not in listed and state.tags.items() >= tags.items()
            ]  # gone from the cloud
            if feed_key is not None:
                self._by_id.intersection_update(listed)
                self._deleted.intersection_update(listed)
        else:
            since = math.ceil(began - feed.began) + SINCE_MARGIN
            async for item in self._status_feed(dict(params, SinceSecond=str(since))):
                note(item)
            for start in range(0, len(checked), PAGE):
                batch = {"ContainerGroupIds": json.dumps(checked[start : start + PAGE])}
                async for item in self._status_feed(batch):
                    note(item)
            gone = [i for i in checked if i not in listed]
        await self._describe(stale)
        for instance_id in gone:
            self._known.pop(instance_id, None)
            self._by_id.discard(instance_id)
            self._deleted.discard(instance_id)
        wanted = tags.items()
        ids: dict[str, None] = listed
        states: dict[str, models.InstanceState] = {}
        if feed is not None:
            # Only what this listing saw can have changed: the rest of the last listing stands as it was.
            ids, states = feed.ids, feed.states
            for instance_id in gone:
                ids.pop(instance_id, None)
                states.pop(instance_id, None)
            ids.update(listed)
        for instance_id in listed:
            entry = self._known.get(instance_id)
            if entry is not None and entry[1].tags.items() >= wanted:
                states[instance_id] = entry[1]
            else:
                states.pop(instance_id, None)
        if feed_key is not None:
            previous = self._feeds.get(feed_key)
            full_at = began if feed is None else feed.full_at
            self._feeds[feed_key] = _Feed(ids=ids, states=states, began=began, full_at=full_at)
            if previous is None and len(self._feeds) > 8:  # only a node's own tags come here; a guard
                self._feeds = {feed_key: self._feeds[feed_key]}
        return list(states.values())

    async def _describe(self, stale: Mapping[str, bytes]) -> None:
        """Describe ``stale`` instances in full (20 per call) and remember them with their fingerprints."""
        missing = list(stale)
        for start in range(0, len(missing), PAGE):
            batch = missing[start : start + PAGE]
            described = self._pages(
                "DescribeContainerGroups", {"ContainerGroupIds": json.dumps(batch)}, "ContainerGroups"
            )
            async for group in described:
                state = state_of(group)
                if state.id in stale:
                    self._known[state.id] = (stale[state.id], state)
                    if state.status is _TERMINATING:
                        self._by_id.add(state.id)
                    elif state.id not in self._deleted:
                        self._by_id.discard(state.id)
        self._by_id.update(i for i in stale if i not in self._known)  # not described: ask again by id

    async def quota(self) -> models.Quota:
        body = await self._call("ListUsage", {})
        attributes = body.get("Attributes") or {}
        cpu: float | None = None
        if attributes.get("MaxCpu") is not None:
            cpu = max(0.0, float(attributes["MaxCpu"]) - float(attributes.get("UsedCpu") or 0.0))
        if self.config.quota_cpu is not None:
            cpu = self.config.quota_cpu if cpu is None else min(cpu, self.config.quota_cpu)
        return models.Quota(cpu=cpu, memory_gib=self.config.quota_memory_gib, pods=self.config.quota_pods)

    async def close(self) -> None:
        await self.client.close()

    # --- SupportsLogs ---

    async def _log(self, instance_id: str, container: str, options: base.LogOptions, *, tail: bool) -> bytes:
        params = {"ContainerGroupId": instance_id, "ContainerName": container}
        if tail and options.tail_lines is not None:
            params["Tail"] = str(options.tail_lines)
        if options.since is not None:
            since = datetime.datetime.now(datetime.UTC) - options.since
            params["SinceSeconds"] = str(max(1, int(since.total_seconds())))
        if options.timestamps:
            params["Timestamps"] = "true"
        if options.limit_bytes is not None and not options.follow:
            params["LimitBytes"] = str(options.limit_bytes)
        if options.previous:
            params["LastTime"] = "true"
        body = await self._call("DescribeContainerLog", params)
        return str(body.get("Content") or "").encode()

    async def logs(self, instance_id: str, container: str, options: base.LogOptions) -> AsyncIterator[bytes]:
        """DescribeContainerLog; ``follow`` polls it and yields what was appended since the last read."""

        async def read(tail: bool) -> bytes:
            return await self._log(instance_id, container, options, tail=tail)

        async for chunk in polling.follow_log(read, follow=options.follow, interval=self._log_poll_interval):
            yield chunk

    # --- SupportsExec ---

    async def exec(
        self, instance_id: str, container: str, command: Sequence[str], *, stdin: bytes = b"", tty: bool = False
    ) -> ExecOutput:
        """ExecContainerCommand in Sync mode: argv as a JSON array (never re-split); stdout and
        stderr come back merged; a non-zero status is the cloud's trailing ``exit status N`` line."""
        if stdin:
            raise errors.InvalidSpec("ECI exec in Sync mode takes no stdin")
        params = {
            "ContainerGroupId": instance_id,
            "ContainerName": container,
            "Command": json.dumps(list(command)),
            "Sync": "true",
            "TTY": "true" if tty else "false",
            "Stdin": "false",
        }
        body = await self._call("ExecContainerCommand", params)
        output = str(body.get("SyncResponse") or "").encode()
        match = _EXIT.search(output)
        if match is not None:
            output = output[: match.start()]
        exit_code = body.get("ExitCode")
        if exit_code is None:
            exit_code = int(match.group(1)) if match else 0
        return ExecOutput(exit_code=int(exit_code), stdout=output)

    # --- SupportsStats ---

    async def stats(self, instance_ids: Sequence[str]) -> Mapping[str, Mapping[str, Mapping[str, float]]]:
        """``DescribeMultiContainerGroupMetric``, 20 instances a call, the calls concurrently. A
        failed call leaves its instances out (logged); only when every call failed does it raise."""
        ids = list(dict.fromkeys(instance_ids))
        batches = [ids[i : i + PAGE] for i in range(0, len(ids), PAGE)]
        results = await asyncio.gather(*(self._metrics(batch) for batch in batches), return_exceptions=True)
        answer: dict[str, dict[str, dict[str, float]]] = {}
        failures: list[Exception] = []
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                failures.append(result)
            else:
                answer.update(result)
        if failures and not answer:
            raise failures[0]
        if failures:
            log.warning("ECI metrics: %d of %d calls failed: %s", len(failures), len(batches), failures[0])
        return answer

    async def _metrics(self, batch: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
        params = {"ContainerGroupIds": json.dumps(list(batch)), "MetricType": "summary"}
        try:
            body = await self._call("DescribeMultiContainerGroupMetric", params)
        except (errors.InvalidSpec, errors.NotFound, errors.Conflict, errors.CapacityError) as exc:
            raise errors.Unavailable(exc.message, code=exc.code) from exc
        answer: dict[str, dict[str, dict[str, float]]] = {}
        for data in body.get("MonitorDatas") or ():
            records = data.get("Records") or []
            if not records:
                continue
            latest = max(records, key=lambda record: str(record.get("Timestamp") or ""))
            containers: dict[str, dict[str, float]] = {}
            for item in latest.get("Containers") or ():
                cpu, memory = item.get("CPU") or {}, item.get("Memory") or {}
                containers[str(item.get("Name", ""))] = {
                    "cpu_nanocores": float(cpu.get("UsageNanoCores") or 0),
                    "cpu_usage_core_nanoseconds": float(cpu.get("UsageCoreNanoSeconds") or 0),
                    "memory_working_set_bytes": float(memory.get("WorkingSet") or 0),
                }
            answer[str(data.get("ContainerGroupId", ""))] = containers
        return answer


def create(config: settings.Settings) -> EciProvider:
    """The ``vnode.providers`` entry point: no I/O here, the first call connects.

    ``vnode run`` has filled the keys from ``ECI_CREDENTIALS_SECRET`` before calling it."""
    eci = config.cloud
    if not isinstance(eci, eci_config.EciSettings):
        raise errors.ConfigError(f"--provider=eci: settings of another provider ({type(eci).__name__})")
    if not eci.access_key or not eci.secret_key:
        raise errors.ConfigError(
            "ECI_ACCESS_KEY/ECI_SECRET_KEY: the AccessKey pair is required (or ECI_CREDENTIALS_SECRET naming a Secret)"
        )
    return EciProvider(
        eci,
        create_limit=(eci.create_burst, eci.create_rate) if eci.create_rate > 0 else None,
        full_list_interval=eci.full_list_interval,
    )
