"""The ECI dialect: Alibaba Elastic Container Instance's OpenAPI 2018-08-08, RPC style.

What the official SDK ``alibabacloud-eci20180808`` sends: ``POST /?<parameters>`` with the
action in ``x-acs-action``, the version in ``x-acs-version`` and an ACS3-HMAC-SHA256
signature (see ``acs3``). Parameters are flat (``Container.1.Command.2``, ``Tag.1.Key``);
this module routes them to the cloud's typed calls: ``eci_auth`` checks the signature,
``eci_params`` parses the parameters, ``eci_render`` shows the results with the field names the
SDK's models read, ``eci_metrics`` answers the monitoring actions. Errors come back as ``{"RequestId", "HostId", "Code",
"Message", "Recommend"}`` with the cloud's HTTP status; ``ERROR_CODES`` is the mapping.

Every call is checked in this order, and a refused call changes nothing: action and version,
signature (key, nonce, time, signature), rate limit and injected faults, parameters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from vnode.cloudsim import (
    acs3,
    catalog,
    eci_auth,
    eci_exec,
    eci_imagecache,
    eci_metrics,
    eci_params,
    eci_podspec,
    eci_render,
    eip,
    errors,
    model,
    pulls,
    runs,
    spot,
)
from vnode.cloudsim import cloud as cloudmod

VERSION = "2018-08-08"
HOST_ID = "eci.aliyuncs.com"

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
    # UNCONFIRMED: ECI's code for an unknown ImageCacheId was not found; shaped like the one above.
    errors.ImageCacheNotFound: ("InvalidImageCacheId.NotFound", 404),
    errors.IdempotentMismatch: ("IdempotentParameterMismatch", 400),  # gateway common code
    errors.IncorrectStatus: ("IncorrectStatus", 400),  # DeleteContainerGroup's error table: 400 IncorrectStatus
    # UNCONFIRMED for ECI: ECS's AttachDisk answers this code for a disk that is not Available (in use).
    errors.DiskInUse: ("IncorrectDiskStatus", 403),
    errors.Throttled: ("Throttling.User", 400),  # gateway common code
    # Code confirmed for ECI creates (Alibaba's developer Q&A 274162); 403 as ECS answers the same code.
    errors.NoStock: ("OperationDenied.NoStock", 403),
    errors.AddressExhausted: ("InvalidVSwitchId.IpNotEnough", 400),  # VPC/ECS code
    # UNCONFIRMED: ECI's code for a full security group was not found; an ECS-style quota code stands in.
    errors.SecurityGroupFull: ("QuotaExceed.SecurityGroupInstance", 403),
    errors.QuotaExceeded: ("QuotaExceed.ElasticQuota", 403),  # ECS elastic quota code
}

Handler = Callable[[eci_params.Params], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Action:
    operation: str  # the cloud's neutral operation (rate limits, faults)
    handler: str  # method name on Eci
    mutating: bool = False
    version: str = VERSION  # its product's API version (VPC's DescribeEipAddresses is 2016-04-28)


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
    "CreateImageCache": Action("imagecache", "create_image_cache", mutating=True),
    "DescribeImageCaches": Action("imagecache", "describe_image_caches"),
    "DeleteImageCache": Action("imagecache", "delete_image_cache", mutating=True),
    # VPC's, on the same endpoint (the real one is vpc.<region>.aliyuncs.com): the EIPs bound to instances.
    "DescribeEipAddresses": Action("describe", "eips", version=eip.VPC_VERSION),
}


class Eci:
    """The ECI endpoint over one ``Cloud``. ``commit`` makes acknowledged mutations durable."""

    def __init__(self, cloud: cloudmod.Cloud, *, commit: Callable[[], Awaitable[None]], port: int = 0) -> None:
        self.cloud = cloud
        self.commit = commit
        self.port = port
        self._auth = eci_auth.Authenticator(cloud)
        # Request ids shaped like ECI's (a UUID), unique without a system call per request.
        prefix = os.urandom(10).hex().upper()
        self._id_prefix = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}-{prefix[16:20]}"
        self._ids = itertools.count(1)
        self._status_cache: dict[str, tuple[object, msgspec.Raw]] = {}
        self.exec_sessions = eci_exec.Sessions(cloud)
        self._origin = "http://127.0.0.1"  # the scheme and host of the request being answered

    # -- the HTTP entry point ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        request_id = f"{self._id_prefix}-{next(self._ids):012X}"
        try:
            body = await request.read()
            pairs = acs3.parse_query(request.query_string)
            name = request.headers.get("x-acs-action") or dict(pairs).get("Action", "")
            action = ACTIONS.get(name)
            if action is None:
                raise eci_auth.ApiError(
                    "InvalidAction.NotFound",
                    404,
                    f"Specified api is not found, please check your url and method: {name}",
                )
            version = request.headers.get("x-acs-version") or dict(pairs).get("Version", "")
            if version != action.version:
                raise eci_auth.ApiError("InvalidVersion", 400, f"Specified parameter Version is not valid: {version!r}")
            self._auth.check(request, pairs, body)
            if body and request.content_type == "application/x-www-form-urlencoded":
                pairs += acs3.parse_query(body.decode())
            self._origin = f"{request.scheme}://{request.host}"
            cloud = self.cloud
            cloud.tick()
            latency = cloud.faults.latency(action.operation)
            if latency:
                await asyncio.sleep(latency)
            cloud.admit(action.operation)
            result: dict[str, Any] = getattr(self, action.handler)(eci_params.Params(pairs))
            if action.mutating:
                await self.commit()
        except eci_auth.ApiError as exc:
            return _error(request_id, exc.code, exc.status, exc.message)
        except errors.InjectedFault as exc:
            return _error(request_id, exc.code, exc.status, exc.message)
        except errors.CloudError as exc:
            code, status = _code(exc)
            return _error(request_id, code, status, exc.message)
        except web.HTTPClientError as exc:  # aiohttp's own refusals (a body over the size limit: 413), in ECI's shape
            return _error(request_id, exc.reason.replace(" ", ""), exc.status, exc.text or exc.reason)
        result["RequestId"] = request_id
        return web.Response(body=msgspec.json.encode(result), content_type="application/json")

    # -- actions ----------------------------------------------------------------------------

    def eips(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        return eip.describe(self.cloud.live.values(), p, region=self.cloud.world.region)

    def create(self, p: eci_params.Params) -> dict[str, Any]:
        p.text("RegionId", required=True)
        spec = model.InstanceSpec(
            name=p.text("ContainerGroupName", required=True),
            containers=eci_params.parse_containers(p, "Container"),
            init_containers=eci_params.parse_containers(p, "InitContainer"),
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
            volumes=eci_params.parse_volumes(p),
            host_name=p.text("HostName"),
            dns_config=eci_podspec.dns_config(p.raw),
            host_aliases=eci_podspec.host_aliases(p.raw),
            sysctls=eci_podspec.sysctls(p.raw),
            registry_credentials=eci_podspec.registry_credentials(p.raw),
            image_snapshot_id=p.text("ImageSnapshotId"),
            auto_match_image_cache=p.flag("AutoMatchImageCache"),
            auto_create_eip=p.flag("AutoCreateEip"),
            eip_bandwidth=p.integer("EipBandwidth", low=1) or 0,
            eip_instance_id=p.text("EipInstanceId"),
            **_spot(p),
            termination_grace_seconds=p.integer("TerminationGracePeriodSeconds", default=30, low=0) or 0,
            max_pending_seconds=pulls.ECI_MAX_PENDING_SECONDS,
        )
        if not spec.containers:
            raise errors.MissingParameter("Container.1.Name")
        eci_params.check_mounts(spec)
        if catalog.aci_gpu_sku(spec.instance_type):  # the ACI dialect's record of a GPU group, not an ECI type
            raise errors.InvalidParameter("InstanceType", f"{spec.instance_type} is not an instance type of ECI")
        self._region(p)
        inst = self.cloud.create(spec)
        return {"ContainerGroupId": inst.id}

    def describe(self, p: eci_params.Params) -> dict[str, Any]:
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
        groups = [eci_render.group(inst, self.cloud.world.vpc_id, with_events) for inst in page.items]
        return {"ContainerGroups": groups, "NextToken": page.next_token, "TotalCount": page.total}

    def status(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        limit = p.integer("Limit", default=200, low=1, high=1000) or 200
        since = p.integer("SinceSecond", low=0)
        where = cloudmod.ListFilter(
            ids=p.json_list("ContainerGroupIds", most=20),
            tags=p.tags(),
            zone=p.text("ZoneId"),
            vswitch_id=p.text("VSwitchId"),
            changed_since=self.cloud.clock.ago(since) if since is not None else None,
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
        encoded = msgspec.Raw(msgspec.json.encode(eci_render.status(inst)))
        cache = self._status_cache
        cache[inst.id] = (version, encoded)
        if len(cache) > 2 * len(self.cloud.live) + 1000:  # forget deleted instances
            self._status_cache = {k: v for k, v in cache.items() if k in self.cloud.live}
        return encoded

    def events(self, p: eci_params.Params) -> dict[str, Any]:
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
        cutoff = self.cloud.clock.ago(since) if since is not None else None
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
                    "Events": [eci_render.k8s_event(inst, e, n) for n, e in enumerate(events)],
                }
            )
        return {"Data": data, "TotalCount": page.total, "NextToken": page.next_token}

    def delete(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        self.cloud.delete(p.text("ContainerGroupId", required=True))
        return {}

    def restart(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        self.cloud.restart(p.text("ContainerGroupId", required=True))
        return {}

    def update(self, p: eci_params.Params) -> dict[str, Any]:
        """UpdateContainerGroup; the simulator updates volumes (other fields are refused, not ignored)."""
        self._region(p)
        for name in ("Container.1.Name", "InitContainer.1.Name", "Cpu", "Memory", "RestartPolicy", "Tag.1.Key"):
            if p.text(name):
                raise errors.InvalidParameter(name, "the simulator's UpdateContainerGroup updates volumes only")
        volumes = eci_params.parse_volumes(p)
        if not volumes:
            raise errors.MissingParameter("Volume.1.Name")
        self.cloud.update(p.text("ContainerGroupId", required=True), volumes, p.text("ClientToken"))
        return {}

    def logs(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        query = runs.LogQuery(
            container=p.text("ContainerName", required=True),
            tail=p.integer("Tail", low=0),
            since_seconds=p.integer("SinceSeconds", low=0),
            timestamps=p.flag("Timestamps"),
            limit_bytes=p.integer("LimitBytes", low=1),
            previous=p.flag("LastTime"),
        )
        name, text = self.cloud.logs(p.text("ContainerGroupId", required=True), query)
        return {"ContainerName": name, "Content": text}

    def exec(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        instance_id = p.text("ContainerGroupId", required=True)
        container = p.text("ContainerName", required=True)
        command = p.json_list("Command", most=1000)
        if not command:
            raise errors.MissingParameter("Command")
        if not p.flag("Sync"):  # interactive: a WebSocket to stream over (eci_exec)
            uri = self.exec_sessions.open(
                self._origin,
                instance_id,
                container,
                list(command),
                tty=p.flag("TTY"),
                stdin=p.raw.get("Stdin", "true").lower() != "false",
            )
            return {"SyncResponse": "", "HttpUrl": "", "WebSocketUri": uri}
        if p.flag("TTY"):
            raise errors.InvalidParameter("TTY", "TTY must be false when Sync is true")
        result = self.cloud.exec(instance_id, container, list(command))
        output = result.output
        if result.exit_code:
            output += f"command terminated with non-zero exit code: exit status {result.exit_code}\n"
        return {"SyncResponse": output, "ExitCode": result.exit_code, "HttpUrl": "", "WebSocketUri": ""}

    def metrics_multi(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        return eci_metrics.multi(self.cloud, p)

    def metrics_one(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        return eci_metrics.one(self.cloud, p)

    def create_image_cache(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        return eci_imagecache.create(self.cloud, p)

    def describe_image_caches(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        return eci_imagecache.describe(self.cloud, p)

    def delete_image_cache(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        return eci_imagecache.delete(self.cloud, p)

    def price(self, p: eci_params.Params) -> dict[str, Any]:
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
        strategy = _spot(p).get("spot_strategy", "")
        market = [
            {"InstanceType": spec.key, "ZoneId": zone, "OriginPrice": total * 3600,
             "SpotPrice": spot.hourly(spec, zone, self.cloud.now())}
            for zone in self.cloud.stock if p.text("ZoneId") in ("", zone)
        ] if strategy not in ("", "NoSpot") else []  # fmt: skip
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
                "SpotPrices": {"SpotPrice": market},
            }
        }

    def usage(self, p: eci_params.Params) -> dict[str, Any]:
        self._region(p)
        cloud = self.cloud
        return {"Attributes": {"UsedCpu": cloud.used_cpu, "MaxCpu": cloud.world.max_cpu}}

    def resources(self, p: eci_params.Params) -> dict[str, Any]:
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

    def regions(self, p: eci_params.Params) -> dict[str, Any]:
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

    def _region(self, p: eci_params.Params) -> None:
        region = p.text("RegionId", required=True)
        if region != self.cloud.world.region:
            raise errors.InvalidParameter("RegionId", f"{region} is not served here (only {self.cloud.world.region})")


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


def _spot(p: eci_params.Params) -> dict[str, Any]:
    """SpotStrategy, SpotPriceLimit and SpotDuration, checked as ECI does."""
    strategy = p.text("SpotStrategy", default="NoSpot")
    if strategy not in spot.STRATEGIES:
        raise errors.InvalidParameter("SpotStrategy", f"{strategy!r} is not one of {', '.join(spot.STRATEGIES)}")
    if strategy == "NoSpot":
        return {}
    limit = p.number("SpotPriceLimit")
    if strategy == "SpotWithPriceLimit" and limit <= 0:
        raise errors.MissingParameter("SpotPriceLimit")
    duration = p.integer("SpotDuration", default=1, low=0)
    return {"spot_strategy": strategy, "spot_price_limit": limit, "spot_duration": 1 if duration is None else duration}
