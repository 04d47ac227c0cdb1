"""The ECI dialect: Alibaba Elastic Container Instance's OpenAPI 2018-08-08, RPC style.

What the official SDK ``alibabacloud-eci20180808`` sends: ``POST /?<parameters>`` with the
action in ``x-acs-action``, the version in ``x-acs-version`` and an ACS3-HMAC-SHA256
signature (see ``acs3``). Parameters are flat (``Container.1.Command.2``, ``Tag.1.Key``);
this module parses them into the cloud's typed calls and renders the results with the field
names the SDK's models read. Errors come back as ``{"RequestId", "HostId", "Code",
"Message", "Recommend"}`` with the cloud's HTTP status; ``ERROR_CODES`` is the mapping.

Every call is checked in this order, and a refused call changes nothing: action and version,
signature (key, nonce, time, signature), rate limit and injected faults, parameters.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import dataclasses
import datetime
import functools
import hashlib
import itertools
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from vnode.cloudsim import acs3, catalog, errors, model, usage
from vnode.cloudsim import cloud as cloudmod

VERSION = "2018-08-08"
HOST_ID = "eci.aliyuncs.com"
NONCE_WINDOW = 900.0  # seconds a nonce is remembered and a request date is accepted
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # the SDK's body hash for a bodyless POST

# error kind -> (Code, HTTP status). Auth and routing codes are the OpenAPI gateway's common ones.
# Where each ECI-specific one comes from (checked 2026-11; docs/cloudsim.md has the table):
ERROR_CODES: dict[type[errors.CloudError], tuple[str, int]] = {
    errors.MissingParameter: ("MissingParameter", 400),  # gateway common code
    errors.InvalidParameter: ("InvalidParameter", 400),  # gateway common code
    # UNCONFIRMED: ECI's page for a spec no size covers was not found; the generic code stands in.
    errors.SpecNotSupported: ("InvalidParameter", 400),
    # UNCONFIRMED: the code and status ECI answers for an unknown ContainerGroupId were not found
    # (DeleteContainerGroup's published table lists IncorrectStatus and OperationConflict only).
    errors.NotFound: ("InvalidContainerGroupId.NotFound", 404),
    errors.IdempotentMismatch: ("IdempotentParameterMismatch", 400),  # gateway common code
    errors.IncorrectStatus: ("IncorrectStatus", 400),  # DeleteContainerGroup's error table: 400 IncorrectStatus
    errors.Throttled: ("Throttling.User", 400),  # gateway common code
    # Code confirmed for ECI creates (Alibaba's developer Q&A 274162); 403 as ECS answers the same code.
    errors.NoStock: ("OperationDenied.NoStock", 403),
    errors.AddressExhausted: ("InvalidVSwitchId.IpNotEnough", 400),  # VPC/ECS code
    # UNCONFIRMED: ECI's code for a full security group was not found; an ECS-style quota code stands in.
    errors.SecurityGroupFull: ("QuotaExceed.SecurityGroupInstance", 403),
    errors.QuotaExceeded: ("QuotaExceed.ElasticQuota", 403),  # ECS elastic quota code
}

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


class ApiError(Exception):
    """An error answered as-is (routing and authentication, decided before the cloud sees the call)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


Handler = Callable[["Params"], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Action:
    operation: str  # the cloud's neutral operation (rate limits, faults)
    handler: str  # method name on Eci
    mutating: bool = False


ACTIONS: dict[str, Action] = {
    "CreateContainerGroup": Action("create", "create", mutating=True),
    "DescribeContainerGroups": Action("describe", "describe"),
    "DescribeContainerGroupStatus": Action("status", "status"),
    "DescribeContainerGroupEvents": Action("events", "events"),
    "DeleteContainerGroup": Action("delete", "delete", mutating=True),
    "RestartContainerGroup": Action("restart", "restart", mutating=True),
    "UpdateContainerGroup": Action("update", "update", mutating=True),
    "DescribeContainerLog": Action("logs", "logs"),
    "ExecContainerCommand": Action("exec", "exec"),
    "DescribeContainerGroupPrice": Action("price", "price"),
    "ListUsage": Action("usage", "usage"),
    "DescribeAvailableResource": Action("resources", "resources"),
    "DescribeRegions": Action("regions", "regions"),
    "DescribeMultiContainerGroupMetric": Action("metrics", "metrics_multi"),
    "DescribeContainerGroupMetric": Action("metrics", "metrics_one"),
}
METRIC_PERIODS = (15, 30, 60, 600)  # DescribeContainerGroupMetric's Period values
MAX_METRIC_RECORDS = 50


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
            index, _, rest = key[len(lead) :].partition(".")
            if not index.isdigit() or int(index) < 1 or (not rest and prefix not in _SCALAR_LISTS):
                raise errors.InvalidParameter(key, f"expected {prefix}.N.<Field> with N >= 1")
            groups.setdefault(int(index), {})[rest] = value
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
        head, _, index = key.partition(".")
        if head == name:
            if not index.isdigit():
                raise errors.InvalidParameter(f"{name}.{index}", "expected a positive index")
            items[int(index)] = value
    return tuple(items[i] for i in sorted(items))


def _subgroups(fields: dict[str, str], name: str, where: str) -> dict[int, dict[str, str]]:
    groups: dict[int, dict[str, str]] = {}
    for key, value in fields.items():
        head, _, rest = key.partition(".")
        if head == name:
            index, _, field = rest.partition(".")
            if not index.isdigit() or not field:
                raise errors.InvalidParameter(f"{where}.{key}", f"expected {name}.N.<Field>")
            groups.setdefault(int(index), {})[field] = value
    return dict(sorted(groups.items()))


def parse_volumes(params: Params) -> tuple[model.Volume, ...]:
    """``Volume.N.*``: ConfigFileVolume (files, content in base64) and EmptyDirVolume."""
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
                mode = item.get("Mode")
                files.append(
                    model.ConfigFile(item.get("Path", ""), item.get("Content", ""), int(mode) if mode else None)
                )
                if not files[-1].path:
                    raise errors.MissingParameter(f"Volume.{n}.ConfigFileVolume.ConfigFileToPath.{m}.Path")
        elif kind != "EmptyDirVolume":
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
    return tuple(volumes)


_CONTAINER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?").fullmatch


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
        ports = []
        for n, port in _subgroups(fields, "Port", where).items():
            number = Params([("p", port.get("Port", ""))]).integer("p", low=1, high=65535) if port.get("Port") else None
            if number is None:
                raise errors.InvalidParameter(f"{where}.Port.{n}.Port", f"{port.get('Port')!r} is not a port number")
            protocol = port.get("Protocol", "TCP").upper()
            if protocol not in ("TCP", "UDP", "SCTP"):
                raise errors.InvalidParameter(f"{where}.Port.{n}.Protocol", "TCP, UDP or SCTP")
            ports.append(model.Port(number, protocol))
        policy = fields.get("ImagePullPolicy", "IfNotPresent")
        if policy not in ("Always", "IfNotPresent", "Never"):
            raise errors.InvalidParameter(f"{where}.ImagePullPolicy", "Always, IfNotPresent or Never")
        containers.append(
            model.ContainerSpec(
                name=name,
                image=image,
                command=_sublist(fields, "Command"),
                args=_sublist(fields, "Arg"),
                env=tuple(env),
                ports=tuple(ports),
                cpu=_float(f"{where}.Cpu", fields.get("Cpu"), 0.0),
                memory=_float(f"{where}.Memory", fields.get("Memory"), 0.0),
                working_dir=fields.get("WorkingDir", ""),
                image_pull_policy=policy,
            )
        )
    return tuple(containers)


class Eci:
    """The ECI endpoint over one ``Cloud``. ``commit`` makes acknowledged mutations durable."""

    def __init__(self, cloud: cloudmod.Cloud, *, commit: Callable[[], Awaitable[None]], port: int = 0) -> None:
        self.cloud = cloud
        self.commit = commit
        self.port = port
        self._nonces: collections.OrderedDict[str, float] = collections.OrderedDict()
        # Request ids shaped like ECI's (a UUID), unique without a system call per request.
        prefix = os.urandom(10).hex().upper()
        self._id_prefix = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}-{prefix[16:20]}"
        self._ids = itertools.count(1)
        self._status_cache: dict[str, tuple[object, msgspec.Raw]] = {}

    # -- the HTTP entry point ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        request_id = f"{self._id_prefix}-{next(self._ids):012X}"
        try:
            body = await request.read()
            pairs = acs3.parse_query(request.query_string)
            name = request.headers.get("x-acs-action") or dict(pairs).get("Action", "")
            action = ACTIONS.get(name)
            if action is None:
                raise ApiError(
                    "InvalidAction.NotFound",
                    404,
                    f"Specified api is not found, please check your url and method: {name}",
                )
            version = request.headers.get("x-acs-version") or dict(pairs).get("Version", "")
            if version != VERSION:
                raise ApiError("InvalidVersion", 400, f"Specified parameter Version is not valid: {version!r}")
            self._authenticate(request, pairs, body)
            if body and request.content_type == "application/x-www-form-urlencoded":
                pairs += acs3.parse_query(body.decode())
            cloud = self.cloud
            cloud.tick()
            latency = cloud.faults.latency(action.operation)
            if latency:
                await asyncio.sleep(latency)
            cloud.admit(action.operation)
            result: dict[str, Any] = getattr(self, action.handler)(Params(pairs))
            if action.mutating:
                await self.commit()
        except ApiError as exc:
            return _error(request_id, exc.code, exc.status, exc.message)
        except errors.InjectedFault as exc:
            return _error(request_id, exc.code, exc.status, exc.message)
        except errors.CloudError as exc:
            code, status = _code(exc)
            return _error(request_id, code, status, exc.message)
        result["RequestId"] = request_id
        return web.Response(body=msgspec.json.encode(result), content_type="application/json")

    def _authenticate(self, request: web.Request, pairs: list[tuple[str, str]], body: bytes) -> None:
        try:
            auth = acs3.parse(request.headers.get("Authorization"))
        except acs3.SignatureError as exc:
            raise ApiError(
                "IncompleteSignature", 400, f"The request signature does not conform to Aliyun standards: {exc}"
            ) from exc
        secret = self.cloud.secrets.get(auth.access_key_id)
        if secret is None:
            raise ApiError("InvalidAccessKeyId.NotFound", 404, "Specified access key is not found.")
        headers = request.headers  # case-insensitive, as the canonical request needs
        payload_hash = headers.get("x-acs-content-sha256", "")
        if payload_hash != (EMPTY_SHA256 if not body else hashlib.sha256(body).hexdigest()):
            raise ApiError("IncompleteSignature", 400, "x-acs-content-sha256 does not match the request body.")
        canonical = acs3.canonical_request(
            request.method, request.path, pairs, headers, auth.signed_headers, payload_hash
        )
        if not acs3.verify(secret, auth, canonical):
            raise ApiError(
                "SignatureDoesNotMatch",
                400,
                "Specified signature is not matched with our calculation. Check your AccessKey secret.",
            )
        now = time.time()
        sent = _parse_date(headers.get("x-acs-date", ""))
        if sent is None:
            raise ApiError("InvalidTimeStamp.Format", 400, "Specified time stamp or date value is not well formatted.")
        if abs(now - sent) > NONCE_WINDOW:
            raise ApiError("InvalidTimeStamp.Expired", 400, "Specified time stamp or date value is expired.")
        nonce = headers.get("x-acs-signature-nonce", "")
        if not nonce or "x-acs-signature-nonce" not in auth.signed_headers:
            raise ApiError("MissingSignatureNonce", 400, "The signature nonce is missing or not signed.")
        while self._nonces and next(iter(self._nonces.values())) < now - NONCE_WINDOW:
            self._nonces.popitem(last=False)
        if nonce in self._nonces:
            raise ApiError("SignatureNonceUsed", 400, "Specified signature nonce was used already.")
        self._nonces[nonce] = now

    # -- actions ----------------------------------------------------------------------------

    def create(self, p: Params) -> dict[str, Any]:
        p.text("RegionId", required=True)
        spec = model.InstanceSpec(
            name=p.text("ContainerGroupName", required=True),
            containers=parse_containers(p, "Container"),
            init_containers=parse_containers(p, "InitContainer"),
            vswitch_ids=tuple(v.strip() for v in p.text("VSwitchId", required=True).split(",") if v.strip()),
            security_group_id=p.text("SecurityGroupId", required=True),
            cpu=p.number("Cpu"),
            memory=p.number("Memory"),
            restart_policy=p.text("RestartPolicy", default="Always"),
            zone=p.text("ZoneId"),
            tags=p.tags(),
            client_token=p.text("ClientToken"),
            schedule_strategy=p.text("ScheduleStrategy", default="VSwitchOrdered"),
            instance_type=p.text("InstanceType"),
            volumes=parse_volumes(p),
        )
        if not spec.containers:
            raise errors.MissingParameter("Container.1.Name")
        self._region(p)
        inst = self.cloud.create(spec)
        return {"ContainerGroupId": inst.id}

    def describe(self, p: Params) -> dict[str, Any]:
        self._region(p)
        limit = p.integer("Limit", default=20, low=1, high=20) or 20
        where = cloudmod.ListFilter(
            ids=p.json_list("ContainerGroupIds", most=20),
            name=p.text("ContainerGroupName"),
            tags=p.tags(),
            status=p.text("Status"),
            zone=p.text("ZoneId"),
            vswitch_id=p.text("VSwitchId"),
            security_group_id=p.text("SecurityGroupId"),
        )
        page = self.cloud.page(where, limit=limit, token=p.text("NextToken"))
        with_events = p.flag("WithEvent") if "WithEvent" in p.raw else True
        groups = [self._group(inst, with_events) for inst in page.items]
        return {"ContainerGroups": groups, "NextToken": page.next_token, "TotalCount": page.total}

    def status(self, p: Params) -> dict[str, Any]:
        self._region(p)
        limit = p.integer("Limit", default=200, low=1, high=1000) or 200
        since = p.integer("SinceSecond", low=0)
        where = cloudmod.ListFilter(
            ids=p.json_list("ContainerGroupIds", most=20),
            tags=p.tags(),
            zone=p.text("ZoneId"),
            vswitch_id=p.text("VSwitchId"),
            changed_since=self.cloud.now() - since if since is not None else None,
        )
        page = self.cloud.page(where, limit=limit, token=p.text("NextToken"))
        data = [self._status_json(inst) for inst in page.items]
        return {"Data": data, "NextToken": page.next_token, "TotalCount": page.total}

    def _status_json(self, inst: model.Instance) -> msgspec.Raw:
        """One instance's status, encoded; cached until the instance changes (pollers ask every few seconds)."""
        version = (
            inst.status,
            inst.status_at,
            inst.started_at,
            tuple((c.current, c.previous, c.restart_count, c.ready) for c in inst.containers),
        )
        cached = self._status_cache.get(inst.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        encoded = msgspec.Raw(msgspec.json.encode(_status(inst)))
        cache = self._status_cache
        cache[inst.id] = (version, encoded)
        if len(cache) > 2 * len(self.cloud.live) + 1000:  # forget deleted instances
            self._status_cache = {k: v for k, v in cache.items() if k in self.cloud.live}
        return encoded

    def events(self, p: Params) -> dict[str, Any]:
        self._region(p)
        limit = p.integer("Limit", default=200, low=1, high=1000) or 200
        since = p.integer("SinceSecond", low=0)
        where = cloudmod.ListFilter(
            ids=p.json_list("ContainerGroupIds", most=20),
            tags=p.tags(),
            zone=p.text("ZoneId"),
            vswitch_id=p.text("VSwitchId"),
        )
        page = self.cloud.page(where, limit=limit, token=p.text("NextToken"))
        cutoff = self.cloud.now() - since if since is not None else None
        data = []
        for inst in page.items:
            events = [e for e in inst.events if cutoff is None or e.at >= cutoff]
            data.append(
                {
                    "ContainerGroupId": inst.id,
                    "Name": inst.spec.name,
                    "Namespace": "default",
                    "uuid": inst.id,
                    "Annotations": "",
                    "Events": [_k8s_event(inst, e, n) for n, e in enumerate(events)],
                }
            )
        return {"Data": data, "TotalCount": page.total, "NextToken": page.next_token}

    def delete(self, p: Params) -> dict[str, Any]:
        self._region(p)
        self.cloud.delete(p.text("ContainerGroupId", required=True))
        return {}

    def restart(self, p: Params) -> dict[str, Any]:
        self._region(p)
        self.cloud.restart(p.text("ContainerGroupId", required=True))
        return {}

    def update(self, p: Params) -> dict[str, Any]:
        """UpdateContainerGroup; the simulator updates volumes (other fields are refused, not ignored)."""
        self._region(p)
        for name in ("Container.1.Name", "InitContainer.1.Name", "Cpu", "Memory", "RestartPolicy", "Tag.1.Key"):
            if p.text(name):
                raise errors.InvalidParameter(name, "the simulator's UpdateContainerGroup updates volumes only")
        volumes = parse_volumes(p)
        if not volumes:
            raise errors.MissingParameter("Volume.1.Name")
        self.cloud.update(p.text("ContainerGroupId", required=True), volumes, p.text("ClientToken"))
        return {}

    def logs(self, p: Params) -> dict[str, Any]:
        self._region(p)
        query = cloudmod.LogQuery(
            container=p.text("ContainerName", required=True),
            tail=p.integer("Tail", low=0),
            since_seconds=p.integer("SinceSeconds", low=0),
            timestamps=p.flag("Timestamps"),
            limit_bytes=p.integer("LimitBytes", low=1),
            previous=p.flag("LastTime"),
        )
        name, text = self.cloud.logs(p.text("ContainerGroupId", required=True), query)
        return {"ContainerName": name, "Content": text}

    def exec(self, p: Params) -> dict[str, Any]:
        self._region(p)
        instance_id = p.text("ContainerGroupId", required=True)
        container = p.text("ContainerName", required=True)
        command = p.json_list("Command", most=1000)
        if not command:
            raise errors.MissingParameter("Command")
        if not p.flag("Sync"):
            raise errors.InvalidParameter("Sync", "the simulator runs commands in Sync mode only (Sync=true)")
        result = self.cloud.exec(instance_id, container, list(command))
        output = result.output
        if result.exit_code:
            output += f"command terminated with non-zero exit code: exit status {result.exit_code}\n"
        return {"SyncResponse": output, "ExitCode": result.exit_code, "HttpUrl": "", "WebSocketUri": ""}

    def metrics_multi(self, p: Params) -> dict[str, Any]:
        """The latest record of each instance asked for (up to 20); unknown ids are left out."""
        self._region(p)
        ids = p.json_list("ContainerGroupIds", most=20)
        if not ids:
            raise errors.MissingParameter("ContainerGroupIds")
        metric_type = p.text("MetricType", default="summary")
        if metric_type != "summary":
            raise errors.InvalidParameter("MetricType", "only summary is supported")
        now = self.cloud.now()
        datas = [
            {"ContainerGroupId": inst.id, "Records": [_metric_record(inst, now, None)]}
            for inst in self.cloud.find(cloudmod.ListFilter(ids=ids))
        ]
        return {"MonitorDatas": datas}

    def metrics_one(self, p: Params) -> dict[str, Any]:
        """Records of one instance every ``Period`` seconds from ``StartTime`` to ``EndTime``
        (default: the last 5 minutes at 15 s); each record's rate is the average over its period."""
        self._region(p)
        inst = self.cloud.get(p.text("ContainerGroupId", required=True))
        now = self.cloud.now()
        end = _rfc3339_param(p, "EndTime") or now
        start = _rfc3339_param(p, "StartTime")
        # Without a time range: the last 5 minutes at 15 s, Period ignored (as ECI documents).
        period = (p.integer("Period") or 60) if start is not None or p.text("EndTime") else 15
        if period not in METRIC_PERIODS:
            raise errors.InvalidParameter("Period", f"one of {', '.join(map(str, METRIC_PERIODS))}")
        end = min(end, now)
        start = end - 300 if start is None else start
        if start >= end:
            raise errors.InvalidParameter("StartTime", "must be before EndTime")
        count = int((end - start) // period)
        if count > MAX_METRIC_RECORDS:
            raise errors.InvalidParameter("Period", f"the range holds {count} records, at most {MAX_METRIC_RECORDS}")
        stamps = [end - k * period for k in range(count - 1, -1, -1)]
        records = [_metric_record(inst, at, float(period)) for at in stamps if at > inst.created_at]
        return {"ContainerGroupId": inst.id, "Records": records}

    def price(self, p: Params) -> dict[str, Any]:
        self._region(p)
        spec = self.cloud.price(p.number("Cpu", default=2.0), p.number("Memory", default=4.0))
        cpu_price = spec.cpu * catalog.USD_PER_VCPU_SECOND
        mem_price = spec.memory * catalog.USD_PER_GIB_SECOND
        details = [
            {
                "Resource": "Cpu",
                "OriginalPrice": cpu_price,
                "TradePrice": cpu_price,
                "DiscountPrice": 0.0,
                "Rules": {"Rule": []},
            },
            {
                "Resource": "Memory",
                "OriginalPrice": mem_price,
                "TradePrice": mem_price,
                "DiscountPrice": 0.0,
                "Rules": {"Rule": []},
            },
        ]
        total = cpu_price + mem_price
        return {
            "PriceInfo": {
                "Price": {
                    "Currency": "USD",
                    "OriginalPrice": total,
                    "TradePrice": total,
                    "DiscountPrice": 0.0,
                    "DetailInfos": {"DetailInfo": details},
                },
                "Rules": {"Rule": []},
                "SpotPrices": {"SpotPrice": []},
            }
        }

    def usage(self, p: Params) -> dict[str, Any]:
        self._region(p)
        cloud = self.cloud
        return {"Attributes": {"UsedCpu": cloud.used_cpu, "MaxCpu": cloud.world.max_cpu}}

    def resources(self, p: Params) -> dict[str, Any]:
        self._region(p)
        zone_filter = p.text("ZoneId")
        zones = []
        for zone, stock in self.cloud.stock.items():
            if zone_filter and zone != zone_filter:
                continue
            supported = [
                {"Value": spec.key, "StatusCategory": "WithStock" if stock.available(spec.key) else "WithoutStock"}
                for spec in catalog.SPECS
            ]
            zones.append(
                {
                    "RegionId": self.cloud.world.region,
                    "ZoneId": zone,
                    "AvailableResources": {
                        "AvailableResource": [
                            {"Type": "CpuMemorySpec", "SupportedResources": {"SupportedResource": supported}}
                        ]
                    },
                }
            )
        return {"AvailableZones": {"AvailableZone": zones}}

    def regions(self, p: Params) -> dict[str, Any]:
        world = self.cloud.world
        return {
            "Regions": [
                {
                    "RegionId": world.region,
                    "RegionEndpoint": f"127.0.0.1:{self.port}",
                    "Zones": list(world.zones),
                    "RecommendZones": list(world.zones),
                }
            ]
        }

    def _region(self, p: Params) -> None:
        region = p.text("RegionId", required=True)
        if region != self.cloud.world.region:
            raise errors.InvalidParameter("RegionId", f"{region} is not served here (only {self.cloud.world.region})")

    def _group(self, inst: model.Instance, with_events: bool) -> dict[str, Any]:
        containers: list[dict[str, Any]] = []
        for spec, state in zip(inst.spec.containers, inst.containers, strict=True):
            containers.append(
                {
                    "Name": spec.name,
                    "Image": spec.image,
                    "Cpu": spec.cpu,
                    "Memory": spec.memory,
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
                    "VolumeMounts": [],
                }
            )
        events = [
            {
                "Count": e.count,
                "Type": e.type,
                "Name": f"{inst.spec.name}.{n}",
                "Message": e.message,
                "FirstTimestamp": cloudmod.rfc3339(e.at),
                "LastTimestamp": cloudmod.rfc3339(e.at),
                "Reason": e.reason,
            }
            for n, e in enumerate(inst.events)
        ]
        return {
            "ContainerGroupId": inst.id,
            "ContainerGroupName": inst.spec.name,
            "RegionId": inst.region,
            "ZoneId": inst.zone,
            "VSwitchId": inst.vswitch_id,
            "SecurityGroupId": inst.spec.security_group_id,
            "VpcId": self.cloud.world.vpc_id,
            "IntranetIp": inst.ip,
            "InternetIp": "",
            "Status": inst.status,
            "Cpu": inst.cpu,
            "Memory": inst.memory,
            "InstanceType": inst.spec.instance_type,
            "RestartPolicy": inst.spec.restart_policy,
            "CreationTime": cloudmod.rfc3339(inst.created_at),
            "SucceededTime": cloudmod.rfc3339(inst.succeeded_at),
            "FailedTime": cloudmod.rfc3339(inst.failed_at),
            "ExpiredTime": "",
            "Discount": 0.0,
            "Tags": [{"Key": t.key, "Value": t.value} for t in inst.spec.tags],
            "Containers": containers,
            "InitContainers": [],
            "Volumes": [_volume_json(v) for v in inst.spec.volumes],
            "Events": events if with_events else [],
            "EniInstanceId": f"eni-{inst.id[4:]}",
            "ComputeCategory": "economy",
        }


def _rfc3339_param(p: Params, name: str) -> float | None:
    text = p.text(name)
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise errors.InvalidParameter(name, f"{text!r} is not an RFC 3339 time") from exc


def _cpu_json(cores: float, core_seconds: float, limit: float) -> dict[str, int]:
    return {
        "Limit": round(limit * 1000),  # vCPUs x 1000
        "Load": round(cores),  # the load average: about the busy threads
        "UsageCoreNanoSeconds": int(core_seconds * 1e9),
        "UsageNanoCores": int(cores * 1e9),
    }


def _memory_json(working_set: int, limit: int) -> dict[str, int]:
    return {
        "AvailableBytes": max(0, limit - working_set),
        "Cache": 0,
        "Rss": working_set,
        "UsageBytes": working_set,
        "WorkingSet": working_set,
    }


def _metric_record(inst: model.Instance, at: float, period: float | None) -> dict[str, Any]:
    """One monitoring record at ``at``: cumulative CPU to then, the rate (over ``period``
    before it, or at that moment), the working set; per container and summed for the group."""
    containers = []
    rate_sum = cumulative_sum = 0.0
    memory_sum = 0
    for run in usage.of_instance(inst):
        cumulative = run.core_seconds(at)
        rate = run.core_seconds(at, at - period) / period if period else (run.cores if run.running(at) else 0.0)
        memory = run.memory_bytes if run.running(at) else 0
        containers.append(
            {
                "Name": run.name,
                "CPU": _cpu_json(rate, cumulative, run.cpu_limit),
                "Memory": _memory_json(memory, run.memory_limit),
            }
        )
        rate_sum, cumulative_sum, memory_sum = rate_sum + rate, cumulative_sum + cumulative, memory_sum + memory
    uptime = max(0.0, at - inst.started_at) if inst.started_at else 0.0
    return {
        "Timestamp": cloudmod.rfc3339(at),
        "CPU": _cpu_json(rate_sum, cumulative_sum, inst.cpu),
        "Memory": _memory_json(memory_sum, int(inst.memory * usage.GIB)),
        "Containers": containers,
        "Network": {
            "Interfaces": [
                {
                    "Name": "eth0",
                    "RxBytes": int(uptime * 120),  # probes and a little traffic
                    "RxPackets": int(uptime * 2),
                    "RxErrors": 0,
                    "RxDrops": 0,
                    "TxBytes": int(uptime * 800),
                    "TxPackets": int(uptime * 2),
                    "TxErrors": 0,
                    "TxDrops": 0,
                }
            ]
        },
        "Disk": [],
        "Filesystem": [
            {
                "FsName": "/",
                "Category": "system",
                "Capacity": 30 * usage.GIB,
                "Usage": 200 * usage.MIB,
                "Available": 30 * usage.GIB - 200 * usage.MIB,
            }
        ],
    }


def _state(run: model.Run) -> dict[str, Any]:
    return {
        "State": run.state,
        "DetailStatus": run.reason,
        "Reason": run.reason,
        "Message": run.message,
        "ExitCode": run.exit_code,
        "StartTime": cloudmod.rfc3339(run.started_at),
        "FinishTime": cloudmod.rfc3339(run.finished_at),
        "Signal": 9 if run.exit_code == 137 else 0,
    }


def _k8s_state(inst: model.Instance, run: model.Run) -> dict[str, Any]:
    if run.state == "Running":
        started = cloudmod.rfc3339(run.started_at)
        # The SDK model reads the oddly named key StartedAtstartedAt; send both spellings.
        return {"Running": {"StartedAt": started, "StartedAtstartedAt": started}}
    if run.state == "Terminated":
        return {
            "Terminated": {
                "ExitCode": run.exit_code,
                "Reason": run.reason,
                "Message": run.message,
                "StartedAt": cloudmod.rfc3339(run.started_at),
                "FinishedAt": cloudmod.rfc3339(run.finished_at),
                "ContainerID": f"eci://{inst.id[4:]}",
                "Signal": 9 if run.exit_code == 137 else 0,
            }
        }
    return {"Waiting": {"Reason": run.reason, "Message": run.message}}


def _status(inst: model.Instance) -> dict[str, Any]:
    phase = STATUS_PHASE[inst.status]
    ready = inst.status == model.RUNNING and all(c.ready for c in inst.containers)
    scheduled = inst.status != model.SCHEDULING and inst.status != model.SCHEDULE_FAILED
    stamp = cloudmod.rfc3339(inst.status_at)
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
            "StartTime": cloudmod.rfc3339(inst.started_at or inst.created_at),
        },
    }


def _k8s_event(inst: model.Instance, event: model.Event, n: int) -> dict[str, Any]:
    stamp = cloudmod.rfc3339(event.at)
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


_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z")


@functools.lru_cache(maxsize=64)  # requests sent within the same second carry the same date
def _parse_date(text: str) -> float | None:
    """``2026-11-28T12:00:00Z`` -> epoch seconds (strptime is ten times slower on this hot path)."""
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except ValueError:
        return None


def _code(exc: errors.CloudError) -> tuple[str, int]:
    for kind in type(exc).__mro__:
        if kind in ERROR_CODES:
            return ERROR_CODES[kind]
    return "InternalError", 500


def _error(request_id: str, code: str, status: int, message: str) -> web.Response:
    body = {
        "RequestId": request_id,
        "HostId": HOST_ID,
        "Code": code,
        "Message": message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Eci&requestId={request_id}",
    }
    return web.Response(status=status, body=msgspec.json.encode(body), content_type="application/json")


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
    else:
        out["EmptyDirVolumeMedium"] = volume.medium
        out["EmptyDirVolumeSizeLimit"] = volume.size_limit
    return out
