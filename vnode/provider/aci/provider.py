"""The Azure ACI provider: pods as container groups through ARM (``Microsoft.ContainerInstance``).

A lean aiohttp client, not ``azure-mgmt-containerinstance``, measured by ``python -m
bench.eci_client --cloud aci`` (docs/benchmarks.md, section ``aci-client``): against the
simulator's ARM dialect over TLS, 16 calls in flight, the SDK (``aio`` or sync in threads) spent
5.3x to 5.6x the lean client's CPU per container group PUT and 24x to 31x per page of 100 groups
listed, at a fifth or less of its calls per second. ``create`` returns once ARM accepted the PUT
(``201``, ``provisioningState`` ``Pending``) and ``list`` reports the progress, so the
long-running operation is never waited on and the SDK's poller would be unused weight.

Choices ARM forces:

* **Tag names** may not contain ``/``: vnode's ``vnode.io/<word>`` tags are stored as
  ``vnode.io-<word>`` (the spelling the simulator's console also reads) and translated back,
  so ``InstanceState.tags`` are exactly the ones given. Other keys with ``/`` are refused.
* **Names**: a group's name (its instance id here) is ``spec.name`` when ARM accepts it
  (1-63 lowercase letters, digits and single dashes), else a cleaned prefix plus a hash.
* **Idempotency** in ARM is by name (a PUT of a different body *replaces* the group), so a
  create first GETs the group: one made with the same client token (kept in the tag
  ``vnode.io-client-token``) is returned as it is; one of another token still alive is a
  ``Retryable`` error until it is gone.
* **Failover**: a container group has one subnet. The candidates of ``spec.placement`` (or
  ``ACI_SUBNET``, comma-separated) are tried in order; a capacity refusal (``409``
  ``ServiceUnavailable``, ``InsufficientSubnetSize``) moves to the next.
* **Exec**: ARM's exec takes one command *string* and streams output over a WebSocket. The
  argv is joined with ``shlex.join`` (so ``sh -c 'echo "a b"'`` keeps its argument), and ACI
  reports no exit status: ``exit_code`` is always 0.
* **Stats**: Azure Monitor's metrics of each container group (``CpuUsage`` in millicores,
  ``MemoryUsage`` in bytes, per container, one-minute averages), one GET per group per scrape,
  16 at a time: the ARM endpoint has no call for many resources (Azure Monitor's batch API is a
  separate regional data-plane host the simulator does not serve). Azure reports rates, not
  cumulative CPU, so the provider keeps the cumulative counter metrics-server needs by
  integrating each container's rate over the time between its own reads.
* **Credentials**: a bearer token from the Azure AD client-credentials flow when
  ``ACI_TENANT_ID``/``ACI_CLIENT_ID``/``ACI_CLIENT_SECRET`` are set, or the fixed one in
  ``ACI_TOKEN`` (the simulator's ``cloud.json`` ``aci.token``); the settings refuse both, or
  part of the three. The Azure AD flow is written but untested here (loopback only).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import logging
import re
import shlex
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from vnode import errors, models, settings
from vnode.provider import base, polling
from vnode.provider.aci import config as aci_config
from vnode.provider.eci import throttle

__all__ = ["AciProvider", "arm_name", "create", "decode_tags", "encode_tags", "group_body", "state_of"]

API_VERSION = "2023-05-01"
ARM = "https://management.azure.com"
LOGIN = "https://login.microsoftonline.com"
PROVIDER = "Microsoft.ContainerInstance"
TOKEN_TAG = "vnode.io-client-token"
MONITOR_API_VERSION = "2023-10-01"
STATS_CONCURRENCY = 16

log = logging.getLogger(__name__)
_VNODE_PREFIX = "vnode.io/"
_CAPACITY_CODES = {"ServiceUnavailable", "InsufficientSubnetSize", "ContainerGroupQuotaReached", "InsufficientCapacity"}


# -- names and tags -------------------------------------------------------------------------


def arm_name(name: str) -> str:
    """A container group name ARM accepts (1-63 lowercase letters, digits, single dashes) for
    ``name``: the same name when it already is one, else a cleaned one with a hash of the original
    at the end, so that two long names never share a group."""
    clean = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-") or "group"
    if clean == name and len(clean) <= 63:
        return clean
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{clean[:54].strip('-')}-{digest}"


# -- tags -------------------------------------------------------------------------------------


def encode_tags(tags: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in tags.items():
        name = "vnode.io-" + key[len(_VNODE_PREFIX) :] if key.startswith(_VNODE_PREFIX) else key
        if "/" in name:
            raise errors.InvalidSpec(f"ACI: tag name {key!r} has a '/', which ARM refuses")
        out[name] = value
    return out


def decode_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {
        (_VNODE_PREFIX + key[len("vnode.io-") :] if key.startswith("vnode.io-") else key): value
        for key, value in tags.items()
        if key != TOKEN_TAG
    }


# -- InstanceSpec -> container group ---------------------------------------------------------


def _probe(probe: models.Probe) -> dict[str, Any]:
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
    # ACI has no TCP probe; such a probe is left out (the container still runs).
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


def _container(c: models.ContainerSpec, cpu: float, memory: float) -> dict[str, Any]:
    props: dict[str, Any] = {
        "image": c.image,
        # ACI has one command list and no working directory: args follow the command.
        "command": [*c.command, *c.args],
        "environmentVariables": _env(c),
        "ports": [{"port": p.container_port, "protocol": p.protocol} for p in c.ports],
        "resources": {"requests": {"cpu": cpu, "memoryInGB": memory}},
    }
    if c.volume_mounts:
        props["volumeMounts"] = [
            {"name": m.name, "mountPath": m.mount_path, "readOnly": m.read_only} for m in c.volume_mounts
        ]
    if c.liveness_probe is not None:
        props["livenessProbe"] = _probe(c.liveness_probe)
    if c.readiness_probe is not None:
        props["readinessProbe"] = _probe(c.readiness_probe)
    return {"name": c.name, "properties": props}


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


def group_body(spec: models.InstanceSpec, *, location: str, subnet: str = "") -> dict[str, Any]:
    """The PUT body of a container group for ``spec`` (in ``subnet``, if given)."""
    shares = _shares(spec)
    props: dict[str, Any] = {
        "osType": "Linux",
        "sku": "Standard",
        "restartPolicy": spec.restart_policy,
        "containers": [_container(c, cpu, mem) for c, (cpu, mem) in zip(spec.containers, shares, strict=True)],
    }
    if spec.init_containers:
        props["initContainers"] = [
            {
                "name": c.name,
                "properties": {
                    "image": c.image,
                    "command": [*c.command, *c.args],
                    "environmentVariables": _env(c),
                },
            }
            for c in spec.init_containers
        ]
    volumes = []
    for volume in spec.volumes:
        if volume.kind == "emptyDir":
            volumes.append({"name": volume.name, "emptyDir": {}})
        elif volume.kind == "files":
            # ACI's secret volume: file name -> base64 content, mounted read-only.
            files = {item.path: _b64(item.content) for item in volume.files}
            volumes.append({"name": volume.name, "secret": files})
        else:
            raise errors.InvalidSpec(f"volume {volume.name}: ACI does not support volumes of kind {volume.kind!r}")
    if volumes:
        props["volumes"] = volumes
    if subnet:
        props["subnetIds"] = [{"id": subnet}]
        ports = [{"port": p.container_port, "protocol": p.protocol} for c in spec.containers for p in c.ports]
        props["ipAddress"] = {"type": "Private", "ports": ports}
    if spec.dns_nameservers:
        props["dnsConfig"] = {"nameServers": list(spec.dns_nameservers)}
    tags = encode_tags(spec.tags)
    tags[TOKEN_TAG] = spec.client_token
    return {"location": location, "tags": tags, "properties": props}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- container group -> InstanceState --------------------------------------------------------


def _time(text: Any) -> datetime.datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.UTC)


def _status(provisioning: str, state: str) -> models.InstanceStatus:
    s = models.InstanceStatus
    if provisioning == "Pending":
        return s.SCHEDULING
    if provisioning in ("Creating", "Accepted", "Updating", "Repairing"):
        return s.PENDING
    if provisioning == "Deleting":
        return s.TERMINATING
    if provisioning in ("Failed", "Canceled"):
        return s.FAILED
    return {
        "Running": s.RUNNING,
        "Pending": s.RESTARTING,
        "Succeeded": s.SUCCEEDED,
        "Failed": s.FAILED,
        "Stopped": s.TERMINATING,
    }.get(state, s.PENDING)


_CONTAINER = {s.value: s for s in models.ContainerState}


def _container_status(raw: Mapping[str, Any]) -> tuple[models.ContainerStatus, list[models.InstanceEvent]]:
    props = raw.get("properties") or {}
    view = props.get("instanceView") or {}
    current = view.get("currentState") or {}
    previous = view.get("previousState") or {}
    name = str(raw.get("name", ""))
    terminated = current.get("state") == "Terminated"
    status = models.ContainerStatus(
        name=name,
        state=_CONTAINER.get(str(current.get("state", "")), models.ContainerState.WAITING),
        image=str(props.get("image", "")),
        reason=str(current.get("detailStatus") or ""),
        exit_code=int(current["exitCode"]) if terminated and current.get("exitCode") is not None else None,
        started_at=_time(current.get("startTime")),
        finished_at=_time(current.get("finishTime")) if terminated else None,
        restart_count=int(view.get("restartCount") or 0),
        ready=current.get("state") == "Running",  # ACI reports no readiness
        last_exit_code=int(previous["exitCode"]) if previous.get("exitCode") is not None else None,
        last_reason=str(previous.get("detailStatus") or ""),
        last_started_at=_time(previous.get("startTime")),
        last_finished_at=_time(previous.get("finishTime")),
    )
    return status, [_event(e, name) for e in view.get("events") or ()]


def _event(raw: Mapping[str, Any], container: str = "") -> models.InstanceEvent:
    return models.InstanceEvent(
        reason=str(raw.get("name", "")),
        message=str(raw.get("message", "")),
        type=models.EventType.WARNING if raw.get("type") == "Warning" else models.EventType.NORMAL,
        timestamp=_time(raw.get("lastTimestamp") or raw.get("firstTimestamp")),
        container=container,
        count=int(raw.get("count") or 1),
    )


def state_of(group: Mapping[str, Any]) -> models.InstanceState:
    """One ARM container group as an ``InstanceState``; its id is the group's name."""
    props = group.get("properties") or {}
    view = props.get("instanceView") or {}
    status = _status(str(props.get("provisioningState", "")), str(view.get("state", "")))
    containers, events = [], [_event(e) for e in view.get("events") or ()]
    for raw in props.get("containers") or ():
        container, its_events = _container_status(raw)
        containers.append(container)
        events += its_events
    events.sort(key=lambda e: e.timestamp or datetime.datetime.min.replace(tzinfo=datetime.UTC))
    starts = [c.started_at for c in containers if c.started_at is not None]
    ends = [c.finished_at for c in containers if c.finished_at is not None]
    terminal = status in (models.InstanceStatus.SUCCEEDED, models.InstanceStatus.FAILED)
    warning = next((e for e in reversed(events) if e.type is models.EventType.WARNING), None)
    subnets = props.get("subnetIds") or []
    cpu = sum(
        float(((c.get("properties") or {}).get("resources") or {}).get("requests", {}).get("cpu") or 0)
        for c in props.get("containers") or ()
    )
    memory = sum(
        float(((c.get("properties") or {}).get("resources") or {}).get("requests", {}).get("memoryInGB") or 0)
        for c in props.get("containers") or ()
    )
    return models.InstanceState(
        id=str(group.get("name", "")),
        status=status,
        tags=decode_tags(group.get("tags") or {}),
        containers=tuple(containers),
        ip=str((props.get("ipAddress") or {}).get("ip") or ""),
        zone=",".join(group.get("zones") or ()),
        vswitch=str(subnets[0].get("name") or str(subnets[0].get("id", "")).rsplit("/", 1)[-1]) if subnets else "",
        started_at=min(starts) if starts else None,
        finished_at=max(ends) if terminal and ends else None,
        reason=warning.reason if status is models.InstanceStatus.FAILED and warning else "",
        message=warning.message if status is models.InstanceStatus.FAILED and warning else "",
        events=tuple(events),
        cpu=cpu,
        memory_gib=memory,
    )


def error_of(what: str, status: int, code: str, message: str, retry_after: str | None) -> errors.ApiError:
    text = f"ACI {what}: {code or status}: {message}"
    if status == 429:
        try:
            hint = float(retry_after) if retry_after else 1.0
        except ValueError:
            hint = 1.0
        return errors.Throttled(text, code=code or "TooManyRequests", retry_after=hint)
    if status >= 500:
        return errors.Unavailable(text, code=code or str(status))
    if status in (401, 403):
        return errors.Forbidden(text, code=code or str(status))
    if status == 404:
        return errors.NotFound(text, code=code or "ResourceNotFound")
    if code in _CAPACITY_CODES:
        return errors.CapacityError(text, code=code)
    if status == 409:
        return errors.Conflict(text, code=code or "Conflict")
    if status == 400:
        return errors.InvalidSpec(text, code=code or "BadRequest")
    return errors.Unavailable(text, code=code or str(status))


# -- credentials ----------------------------------------------------------------------------


class _Token:
    """A bearer token: fixed, or from Azure AD's client-credentials flow, renewed 5 min early."""

    def __init__(self, config: aci_config.AciSettings) -> None:
        self.config = config
        self._token = config.token
        self._expires = float("inf") if self._token else 0.0
        self._lock = asyncio.Lock()

    async def get(self, session: aiohttp.ClientSession) -> str:
        if self._token and time.monotonic() < self._expires:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._expires:
                return self._token
            form = {
                "grant_type": "client_credentials",
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
                "scope": f"{ARM}/.default",
            }
            url = f"{LOGIN}/{self.config.tenant_id}/oauth2/v2.0/token"
            try:
                async with session.post(url, data=form) as response:
                    body = await response.json(content_type=None)
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise errors.Unavailable(f"ACI: token endpoint: {exc}", code="TokenEndpoint") from exc
            if status != 200 or not isinstance(body, dict) or "access_token" not in body:
                raise errors.Forbidden(f"ACI: token refused ({status})", code="InvalidClient")
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 3600)) - 300
            return self._token


# -- the provider ----------------------------------------------------------------------------


class AciProvider:
    """``base.Provider`` + ``SupportsLogs`` + ``SupportsExec`` + ``SupportsStats`` on Azure Container Instances."""

    name = "aci"
    container_id_scheme = "aci"

    def __init__(
        self,
        config: aci_config.AciSettings,
        *,
        location: str = "",
        create_limit: tuple[float, float] | None = (100.0, 20.0),
        log_poll_interval: float = 2.0,
        timeout: float = 30.0,
    ) -> None:
        if not config.subscription_id or not config.resource_group:
            raise errors.ConfigError("ACI_SUBSCRIPTION_ID and ACI_RESOURCE_GROUP: both must be set for --provider aci")
        if not (config.token or config.client_secret):
            raise errors.ConfigError(
                "ACI_TOKEN, or ACI_TENANT_ID, ACI_CLIENT_ID and ACI_CLIENT_SECRET: one must be set for --provider aci"
            )
        self.config = config
        self.location = location or config.region
        self.base = (config.endpoint or ARM).rstrip("/")
        self.groups_url = (
            f"{self.base}/subscriptions/{config.subscription_id}/resourceGroups/{config.resource_group}"
            f"/providers/{PROVIDER}/containerGroups"
        )
        self._token = _Token(config)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._session: aiohttp.ClientSession | None = None
        self._buckets = (
            {action: throttle.TokenBucket(*create_limit) for action in ("create", "delete")} if create_limit else {}
        )
        self._log_poll_interval = log_poll_interval
        # (group, container) -> (monotonic time of the last read, cumulative core-nanoseconds)
        self._cpu_totals: dict[tuple[str, str], tuple[float, float]] = {}

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.config.ca_file:
            return ssl.create_default_context(cafile=self.config.ca_file)
        return True

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=64, ssl=self._ssl())
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def _request(
        self, method: str, url: str, what: str, body: Any = None, query: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        session = self._open()
        token = await self._token.get(session)
        params = {"api-version": API_VERSION, **(query or {})}
        if "api-version=" in url:
            params = {}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with session.request(method, url, params=params, data=data, headers=headers) as response:
                raw = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise errors.Unavailable(f"ACI {what}: timed out", code="Timeout") from exc
        except aiohttp.ClientError as exc:
            raise errors.Unavailable(f"ACI {what}: {exc}", code="ConnectionError") from exc
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        if status < 300:
            return status, decoded
        error = (decoded or {}).get("error") if isinstance(decoded, dict) else None
        code = str((error or {}).get("code", "")) if isinstance(error, dict) else ""
        message = str((error or {}).get("message", raw[:200])) if isinstance(error, dict) else str(raw[:200])
        raise error_of(what, status, code, message, retry_after)

    def _subnet_id(self, candidate: str) -> str:
        if candidate.startswith("/"):
            return candidate
        return (
            f"/subscriptions/{self.config.subscription_id}/resourceGroups/{self.config.resource_group}"
            f"/providers/Microsoft.Network/virtualNetworks/vnode/subnets/{candidate}"
        )

    # --- Provider ---

    async def _existing(self, name: str) -> dict[str, Any] | None:
        try:
            _, group = await self._request("GET", f"{self.groups_url}/{name}", "get")
        except errors.NotFound:
            return None
        return group if isinstance(group, dict) else None

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        name = arm_name(spec.name)
        existing = await self._existing(name)
        if existing is not None:
            state = state_of(existing)
            if (existing.get("tags") or {}).get(TOKEN_TAG) == spec.client_token:
                return state
            if state.status is not models.InstanceStatus.TERMINATING:
                raise errors.Unavailable(
                    f"ACI: a container group named {name} made for another pod still exists", code="NameInUse"
                )
        candidates = spec.placement.vswitches or tuple(s for s in self.config.subnet.split(",") if s.strip())
        refused: list[str] = []
        code = "ServiceUnavailable"
        for subnet in candidates or ("",):
            body = group_body(spec, location=self.location, subnet=self._subnet_id(subnet.strip()) if subnet else "")
            if "create" in self._buckets:
                self._buckets["create"].take("PUT containerGroups")
            try:
                _, group = await self._request("PUT", f"{self.groups_url}/{name}", "create", body)
            except errors.CapacityError as exc:
                refused.append(f"{subnet or 'default'}: {exc.code}")
                code = exc.code
                continue
            return (
                state_of(group)
                if isinstance(group, dict)
                else models.InstanceState(id=name, status=models.InstanceStatus.SCHEDULING, tags=dict(spec.tags))
            )
        raise errors.CapacityError(f"ACI: no candidate subnet could take it ({'; '.join(refused)})", code=code)

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        if "delete" in self._buckets:
            self._buckets["delete"].take("DELETE containerGroups")
        try:
            await self._request("DELETE", f"{self.groups_url}/{instance_id}", "delete")
        except errors.NotFound:
            return
        except (errors.InvalidSpec, errors.Conflict, errors.CapacityError) as exc:
            raise errors.Unavailable(exc.message, code=exc.code) from exc

    async def get(self, instance_id: str) -> models.InstanceState:
        _, group = await self._request("GET", f"{self.groups_url}/{instance_id}", "get")
        return state_of(group)

    async def list(self, tags: Mapping[str, str]) -> Sequence[models.InstanceState]:
        """Every group of the resource group, paged by ``nextLink``; ARM's list has no tag filter,
        so the tags are matched here."""
        states: list[models.InstanceState] = []
        url = self.groups_url
        while url:
            try:
                _, body = await self._request("GET", url, "list")
            except (errors.InvalidSpec, errors.NotFound, errors.Conflict, errors.CapacityError) as exc:
                raise errors.Unavailable(exc.message, code=exc.code) from exc
            body = body if isinstance(body, dict) else {}
            for group in body.get("value") or ():
                state = state_of(group)
                if all(state.tags.get(k) == v for k, v in tags.items()):
                    states.append(state)
            url = str(body.get("nextLink") or "")
            if url and self.config.endpoint and not url.startswith(self.base):
                # The simulator and ARM answer with absolute links on their own host.
                parts = urllib.parse.urlsplit(url)
                url = self.base + parts.path + ("?" + parts.query if parts.query else "")
        return states

    async def changes(self, tags: Mapping[str, str], cursor: base.Cursor | None) -> base.Changes:
        """``base.Provider.changes``: every instance, every time (the node tells what changed)."""
        return base.Changes.listing(await self.list(tags))

    async def quota(self) -> models.Quota:
        # ARM's usage API (locations/{loc}/usages) is not modelled by the simulator: settings only.
        return models.Quota(
            cpu=self.config.quota_cpu, memory_gib=self.config.quota_memory_gib, pods=self.config.quota_pods
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- SupportsLogs ---

    async def _log(self, instance_id: str, container: str, options: base.LogOptions, *, tail: bool) -> bytes:
        query: dict[str, str] = {}
        if tail and options.tail_lines is not None:
            query["tail"] = str(options.tail_lines)
        if options.timestamps:
            query["timestamps"] = "true"
        url = f"{self.groups_url}/{instance_id}/containers/{container}/logs"
        _, body = await self._request("GET", url, "logs", query=query)
        content = str((body or {}).get("content") or "").encode()
        if options.limit_bytes is not None and not options.follow:
            content = content[: options.limit_bytes]
        return content

    async def logs(self, instance_id: str, container: str, options: base.LogOptions) -> AsyncIterator[bytes]:
        """ARM's logs call (tail, timestamps); ``follow`` polls it and yields what was appended."""

        async def read(tail: bool) -> bytes:
            return await self._log(instance_id, container, options, tail=tail)

        async for chunk in polling.follow_log(read, follow=options.follow, interval=self._log_poll_interval):
            yield chunk

    # --- SupportsExec ---

    async def exec(
        self, instance_id: str, container: str, command: Sequence[str], *, stdin: bytes = b"", tty: bool = False
    ) -> base.ExecOutput:
        if stdin:
            raise errors.InvalidSpec("ACI exec through the provider takes no stdin")
        url = f"{self.groups_url}/{instance_id}/containers/{container}/exec"
        body = {"command": shlex.join(command), "terminalSize": {"rows": 24, "cols": 80}}
        try:
            _, answer = await self._request("POST", url, "exec", body)
        except errors.Conflict as exc:
            raise errors.Unavailable(exc.message, code=exc.code) from exc
        uri, password = str(answer["webSocketUri"]), str(answer["password"])
        output = bytearray()
        try:
            async with self._open().ws_connect(uri) as socket:
                await socket.send_str(password)
                async for message in socket:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        output += message.data.encode()
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        output += message.data
                    else:
                        break
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise errors.Unavailable(f"ACI exec: {exc}", code="ExecSocket") from exc
        return base.ExecOutput(exit_code=0, stdout=bytes(output))

    # --- SupportsStats ---

    async def stats(self, instance_ids: Sequence[str]) -> Mapping[str, Mapping[str, Mapping[str, float]]]:
        """Azure Monitor per group, ``STATS_CONCURRENCY`` at a time. A group ARM does not know is
        left out; failed calls too (logged), and only when every call failed does it raise."""
        ids = list(dict.fromkeys(instance_ids))
        gate = asyncio.Semaphore(STATS_CONCURRENCY)

        async def one(instance_id: str) -> dict[str, dict[str, float]] | None:
            async with gate:
                try:
                    return await self._metrics(instance_id)
                except errors.NotFound:
                    return None

        results = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
        answer: dict[str, dict[str, dict[str, float]]] = {}
        failures: list[Exception] = []
        for instance_id, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                failures.append(result)
            elif result is not None:
                answer[instance_id] = result
        if failures and not answer:
            raise failures[0]
        if failures:
            log.warning("ACI metrics: %d of %d groups failed: %s", len(failures), len(ids), failures[0])
        asked = set(ids)
        for key in [k for k in self._cpu_totals if k[0] not in asked]:
            del self._cpu_totals[key]  # a group no longer on the node
        return answer

    async def _metrics(self, instance_id: str) -> dict[str, dict[str, float]]:
        """The latest one-minute averages of each container (the default timespan: the last hour,
        up to the cloud's own now), and the cumulative CPU kept here."""
        url = f"{self.groups_url}/{instance_id}/providers/Microsoft.Insights/metrics"
        query = {
            "api-version": MONITOR_API_VERSION,
            "metricnames": "CpuUsage,MemoryUsage",
            "interval": "PT1M",
            "aggregation": "Average",
            "$filter": "containerName eq '*'",
        }
        try:
            _, body = await self._request("GET", url, "metrics", query=query)
        except (errors.InvalidSpec, errors.Conflict, errors.CapacityError) as exc:
            raise errors.Unavailable(exc.message, code=exc.code) from exc
        latest: dict[str, dict[str, float]] = {}
        for metric in (body or {}).get("value") or ():
            name = str((metric.get("name") or {}).get("value", ""))
            for series in metric.get("timeseries") or ():
                container = ""
                for item in series.get("metadatavalues") or ():
                    if str((item.get("name") or {}).get("value", "")).lower() == "containername":
                        container = str(item.get("value", ""))
                points = [p for p in series.get("data") or () if p.get("average") is not None]
                if container and points:
                    latest.setdefault(container, {})[name] = float(points[-1]["average"])
        now = time.monotonic()
        answer: dict[str, dict[str, float]] = {}
        for container, figures in latest.items():
            nanocores = figures.get("CpuUsage", 0.0) * 1e6  # millicores
            last, total = self._cpu_totals.get((instance_id, container), (now, 0.0))
            total += nanocores * (now - last)
            self._cpu_totals[(instance_id, container)] = (now, total)
            answer[container] = {
                "cpu_nanocores": nanocores,
                "cpu_usage_core_nanoseconds": total,
                "memory_working_set_bytes": figures.get("MemoryUsage", 0.0),
            }
        return answer


def create(config: settings.Settings) -> AciProvider:
    """The ``vnode.providers`` entry point: no I/O here, the first call connects."""
    if not isinstance(config.cloud, aci_config.AciSettings):
        raise errors.ConfigError(f"--provider=aci: settings of another provider ({type(config.cloud).__name__})")
    return AciProvider(config.cloud)
