"""The web console at ``/``: the page a person watches while a demo runs against the simulator.

Plain HTML, CSS and JavaScript served from this package (no build step, nothing fetched from
the internet). The page polls two small JSON endpoints rather than receiving every instance:

- ``GET /console/api/summary``: totals by status, cost so far (also by namespace), vCPU quota, zones' stock,
  vSwitch address use, security groups, rate-limit buckets, injected faults and instances per
  node. It walks every live instance once, so it is cached for ``SUMMARY_TTL`` seconds: any
  number of open tabs cost one walk a second, even at 30,000 instances.
- ``GET /console/api/instances?offset=&limit=&status=&q=``: one page of instances, newest
  first, at most ``MAX_PAGE`` rows, filtered by status group and a text search.

The node and pod of an instance are read from its tags by the last word of the key (``role``):
``vnode.io/node`` or ``NodeName``; ``.../namespace`` + ``.../name``, or ``.../pod``. The
simulator knows nothing of vnode, and ARM forbids ``/`` in tag names, so spellings differ.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.resources
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from vnode.cloudsim import cloud as cloudmod
from vnode.cloudsim import model
from vnode.cloudsim import world as simworld

SUMMARY_TTL = 1.0
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_NAMESPACES = 12  # rows of the cost by namespace; the rest in one
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}

# The console groups the cloud's statuses the way a person reads them.
STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "pending": (model.SCHEDULING, model.PENDING, model.RESTARTING),
    "running": (model.RUNNING, model.UPDATING),
    "succeeded": (model.SUCCEEDED,),
    "failed": (model.FAILED, model.EXPIRED, model.SCHEDULE_FAILED),
    "terminating": (model.TERMINATING,),
}


def _static(name: str) -> bytes:
    return importlib.resources.files(__package__).joinpath("static", name).read_bytes()


@dataclasses.dataclass
class _Cached:
    at: float
    body: bytes


class Console:
    """The console's handlers over one cloud."""

    def __init__(self, cloud: cloudmod.Cloud, *, wall: Callable[[], float] = time.monotonic) -> None:
        self.cloud = cloud
        self.wall = wall
        self._summary: _Cached | None = None
        self._files = {name: _static(name) for name in (*STATIC_FILES, "index.html")}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.get("/console/static/{name}", self.static),
            web.get("/console/api/summary", self.summary),
            web.get("/console/api/instances", self.instances),
        ]

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._files["index.html"], content_type="text/html", charset="utf-8")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            body=self._files[name],
            content_type=STATIC_FILES[name],
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def summary(self, request: web.Request) -> web.Response:
        wall = self.wall()
        if self._summary is None or wall - self._summary.at >= SUMMARY_TTL:
            self.cloud.tick()
            self._summary = _Cached(wall, json.dumps(build_summary(self.cloud)).encode())
        return web.Response(body=self._summary.body, content_type="application/json")

    async def instances(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            offset = max(0, int(query.get("offset", "0")))
            limit = min(MAX_PAGE, max(1, int(query.get("limit", str(DEFAULT_PAGE)))))
        except ValueError:
            raise web.HTTPBadRequest(text="offset and limit must be integers") from None
        group = query.get("status", "")
        if group and group not in STATUS_GROUPS:
            raise web.HTTPBadRequest(text=f"status must be one of {', '.join(STATUS_GROUPS)}")
        self.cloud.tick()
        body = build_page(self.cloud, offset=offset, limit=limit, group=group, text=query.get("q", "").strip())
        return web.Response(text=json.dumps(body), content_type="application/json")


def routes(cloud: cloudmod.Cloud) -> list[web.RouteDef]:
    """The console's routes, for ``server.Server.add_routes`` on the simulator's main port."""
    return Console(cloud).routes()


def create_app(cloud: cloudmod.Cloud) -> web.Application:
    """The console as an app of its own (tests, or a separate port)."""
    app = web.Application()
    app.add_routes(routes(cloud))
    return app


# -- what the endpoints answer ----------------------------------------------------------------


def build_summary(cloud: cloudmod.Cloud) -> dict[str, Any]:
    now = cloud.now()
    by_status: collections.Counter[str] = collections.Counter()
    live_cost = 0.0
    namespaces: dict[str, list[float]] = {ns: [0, cost] for ns, cost in cloud.deleted_costs.items()}  # live, $
    for inst in cloud.live.values():
        by_status[inst.status] += 1
        cost = cloud.cost(inst)  # a spot instance at the price it was bought at
        live_cost += cost
        line = namespaces.setdefault(model.namespace_of(inst), [0, 0.0])
        line[0], line[1] = line[0] + 1, line[1] + cost
    groups = {name: sum(by_status[s] for s in statuses) for name, statuses in STATUS_GROUPS.items()}
    nodes: collections.Counter[str] = collections.Counter()
    for (key, value), ids in cloud.by_tag.items():
        if role(key) == "node":
            nodes[value] += len(ids)
    world = cloud.world
    return {
        "now": now,
        "clock_scale": cloud.clock.scale,
        "region": world.region,
        "profile": cloud.lifecycle.profile.name,
        "live": len(cloud.live),
        "deleted": cloud.deleted_count,
        "by_status": dict(by_status),
        "groups": groups,
        "cost_usd": live_cost + cloud.deleted_cost,
        "used_cpu": cloud.used_cpu,
        "max_cpu": world.max_cpu,
        "zones": [
            {
                "zone": zone,
                "in_use": sum(stock.in_use.values()),
                "limits": {k: {"limit": v, "left": max(0, v - _used(stock, k))} for k, v in stock.limits.items()},
            }
            for zone, stock in cloud.stock.items()
        ],
        "vswitches": [
            {
                "id": v.id,
                "zone": v.zone,
                "cidr": v.cidr,
                "used": v.pool.used,
                "capacity": v.pool.capacity,
                "exhausted": v.pool.exhausted,
            }
            for v in cloud.vswitches.values()
        ],
        "security_groups": [
            {"id": g.id, "kind": g.kind, "members": g.members, "cap": g.cap} for g in cloud.groups.values()
        ],
        "rate_limits": _rate_limits(cloud, now),
        "faults": {op: fault.model_dump() for op, fault in cloud.faults.by_operation.items()},
        "nodes": dict(sorted(nodes.items())),
        "namespaces": _by_namespace(namespaces),
    }


def _by_namespace(namespaces: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Cost so far by the instances' namespace (deleted ones too), the most expensive first; past
    ``MAX_NAMESPACES`` rows, the rest summed as ``(N others)``."""
    rows = [(ns or "(none)", int(live), cost) for ns, (live, cost) in namespaces.items()]
    rows.sort(key=lambda row: (-row[2], row[0]))
    if len(rows) > MAX_NAMESPACES:
        rest = rows[MAX_NAMESPACES - 1 :]
        others = (f"({len(rest)} others)", sum(r[1] for r in rest), sum(r[2] for r in rest))
        rows = [*rows[: MAX_NAMESPACES - 1], others]
    return [{"namespace": ns, "live": live, "cost_usd": cost} for ns, live, cost in rows]


def _used(stock: simworld.ZoneStock, key: str) -> int:
    return sum(stock.in_use.values()) if key == "*" else stock.in_use[key]


def _rate_limits(cloud: cloudmod.Cloud, now: float) -> list[dict[str, Any]]:
    """Each limited operation's bucket as of ``now`` (read without taking a token)."""
    buckets = getattr(cloud.limiter, "_buckets", {})  # the limiter has no public view of its buckets
    out = []
    for operation, limit in cloud.limiter.limits.items():
        bucket = buckets.get(operation)
        tokens = limit.burst
        if bucket is not None:
            elapsed = max(0.0, now - bucket.updated) if bucket.updated is not None else 0.0
            tokens = min(limit.burst, bucket.tokens + elapsed * limit.rate)
        out.append({"operation": operation, "burst": limit.burst, "rate": limit.rate, "tokens": tokens})
    return out


def build_page(cloud: cloudmod.Cloud, *, offset: int, limit: int, group: str, text: str) -> dict[str, Any]:
    """One page of instances, newest first, with how many match in all."""
    statuses = STATUS_GROUPS.get(group)
    needle = text.lower()
    now = cloud.now()
    rows: list[dict[str, Any]] = []
    total = 0
    for inst in reversed(cloud.live.values()):
        if statuses is not None and inst.status not in statuses:
            continue
        if needle and not _matches(inst, needle):
            continue
        if offset <= total < offset + limit:
            rows.append(_row(inst, now, cloud))
        total += 1
    return {"total": total, "offset": offset, "limit": limit, "items": rows, "now": now}


def _matches(inst: model.Instance, needle: str) -> bool:
    if needle in inst.id or needle in inst.spec.name.lower() or needle in inst.ip or needle in inst.zone:
        return True
    return any(needle in tag.value.lower() for tag in inst.spec.tags)


role = model.tag_role  # what a tag names (node, namespace, name, pod)


def _row(inst: model.Instance, now: float, cloud: cloudmod.Cloud) -> dict[str, Any]:
    tags = {tag.key: tag.value for tag in inst.spec.tags}
    by_role: dict[str, str] = {}
    for key, value in tags.items():
        by_role.setdefault(role(key), value)
    node, namespace, name = by_role.get("node", ""), by_role.get("namespace", ""), by_role.get("name", "")
    pod = f"{namespace}/{name}" if namespace and name else by_role.get("pod", "")
    return {
        "id": inst.id,
        "name": inst.spec.name,
        "status": inst.status,
        "cpu": inst.cpu,
        "memory": inst.memory,
        "zone": inst.zone,
        "ip": inst.ip,
        "age": max(0.0, now - inst.created_at),
        "node": node,
        "pod": pod,
        "dialect": "aci" if any(k.startswith("aci/") for k in tags) else "eci",
        "restarts": sum(c.restart_count for c in inst.containers),
        "images": [c.image for c in inst.spec.containers],
        "cost": cloud.cost(inst),
    }
