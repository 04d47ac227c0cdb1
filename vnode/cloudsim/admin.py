"""The admin surface under ``/admin/``: faults, totals, the clock, stock, vSwitches, rate limits, reset.

Not part of any cloud's API: this is how tests and demos steer the world. Bodies are typed
(pydantic) and a bad one gets a 400 naming the field and the problem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import pydantic
from aiohttp import web

from vnode.cloudsim import cloud as cloudmod
from vnode.cloudsim import errors, faults, ratelimit, spot

M = TypeVar("M", bound=pydantic.BaseModel)


class ClockBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    advance: float | None = pydantic.Field(default=None, ge=0.0, description="seconds to jump forward")
    scale: float | None = pydantic.Field(default=None, ge=0.0, description="simulated seconds per real second")


class StockBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    zone: str
    spec: str = pydantic.Field(default="*", description="a size like 2-4, or * for every size")
    available: int | None = pydantic.Field(ge=0, description="how many more fit; null: plenty again")
    spot: bool = pydantic.Field(default=False, description="the spot market alone (available 0 or null)")


class VSwitchBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    exhausted: bool


class LimitBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    burst: float = pydantic.Field(gt=0)
    rate: float = pydantic.Field(ge=0)


class ReclaimBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    notice: float | None = pydantic.Field(
        default=None, ge=0.0, description="seconds of notice; null: the profile's (ECI), none (an ACI Spot group)"
    )


class Admin:
    def __init__(self, cloud: cloudmod.Cloud, *, commit: Callable[[], Awaitable[None]]) -> None:
        self.cloud = cloud
        self.commit = commit

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/health", self.health),
            web.get("/admin/totals", self.totals),
            web.get("/admin/instances", self.instances),
            web.get("/admin/instances/{id}", self.instance),
            web.post("/admin/instances/{id}/reclaim", self.reclaim),
            web.get("/admin/clock", self.get_clock),
            web.post("/admin/clock", self.set_clock),
            web.get("/admin/faults", self.get_faults),
            web.put("/admin/faults/{operation}", self.put_fault),
            web.delete("/admin/faults/{operation}", self.delete_fault),
            web.delete("/admin/faults", self.clear_faults),
            web.post("/admin/stock", self.set_stock),
            web.post("/admin/vswitches/{id}", self.set_vswitch),
            web.get("/admin/rate-limits", self.get_limits),
            web.put("/admin/rate-limits/{operation}", self.put_limit),
            web.delete("/admin/rate-limits/{operation}", self.delete_limit),
            web.post("/admin/reset", self.reset),
        ]

    async def health(self, request: web.Request) -> web.Response:
        return _json({"ok": True, "live": len(self.cloud.live)})

    async def totals(self, request: web.Request) -> web.Response:
        self.cloud.tick()
        limiter = self.cloud.limiter
        calls = {"calls": dict(limiter.calls), "refused_by_limits": dict(limiter.refused)}
        return _json({**self.cloud.totals(), "spot": spot.summary(self.cloud.live.values(), self.cloud.now()), **calls})

    async def instances(self, request: web.Request) -> web.Response:
        """Every live instance (``?tag=key=value`` narrows): the cloud's own record, as a checker reads it
        (id, status, tags, cost so far), without a client's paging or rate limits."""
        self.cloud.tick()
        key, _, value = request.query.get("tag", "").partition("=")
        now = self.cloud.now()
        rows = [
            {"id": inst.id, "status": inst.status, "tags": {t.key: t.value for t in inst.spec.tags},
             "created_at": inst.created_at, "cost_usd": self.cloud.cost_at(inst, now)}
            for inst in self.cloud.live.values()
            if not key or any(t.key == key and t.value == value for t in inst.spec.tags)
        ]  # fmt: skip
        return _json({"now": now, "instances": rows})

    async def instance(self, request: web.Request) -> web.Response:
        self.cloud.tick()
        try:
            inst = self.cloud.instance_record(request.match_info["id"])
        except errors.NotFound as exc:
            return _problem(404, exc.message)
        record = msgspec.to_builtins(inst)
        record["cost_usd"] = self.cloud.cost(inst)
        record["billable_seconds"] = inst.billable_seconds(inst.deleted_at or self.cloud.now())
        return _json(record)

    async def reclaim(self, request: web.Request) -> web.Response:
        """Reclaim a running spot instance now: ECI's SpotToBeReleased, then Expired after the notice; an
        ACI Spot group is evicted (restarted in place) at ``evict_at``, after the notice (none by default)."""
        body = await _body(request, ReclaimBody) if request.can_read_body else ReclaimBody()
        self.cloud.tick()
        try:
            inst = self.cloud.reclaim(request.match_info["id"], body.notice)
        except errors.NotFound as exc:
            return _problem(404, exc.message)
        except errors.Conflict as exc:
            return _problem(409, exc.message)
        await self.commit()
        evict_at = inst.spot_check_at if spot.evicts_in_place(inst.spec) else None
        return _json({"id": inst.id, "noticed_at": inst.noticed_at, "expire_at": inst.expire_at, "evict_at": evict_at})

    async def get_clock(self, request: web.Request) -> web.Response:
        return _json({"now": self.cloud.now(), **self.cloud.clock.state()})

    async def set_clock(self, request: web.Request) -> web.Response:
        body = await _body(request, ClockBody)
        if body.scale is not None:
            self.cloud.set_scale(body.scale)
        if body.advance:
            self.cloud.advance(body.advance)
        self.cloud.save_clock()
        await self.commit()
        return _json({"now": self.cloud.now(), **self.cloud.clock.state()})

    async def get_faults(self, request: web.Request) -> web.Response:
        return _json({op: f.model_dump() for op, f in self.cloud.faults.by_operation.items()})

    async def put_fault(self, request: web.Request) -> web.Response:
        body = await _body(request, faults.Fault)
        operation = request.match_info["operation"]
        if operation not in faults.OPERATIONS:
            return _problem(400, f"unknown operation {operation!r}: one of {', '.join(faults.OPERATIONS)}")
        self.cloud.faults.set(operation, body)
        return _json({operation: body.model_dump()})

    async def delete_fault(self, request: web.Request) -> web.Response:
        self.cloud.faults.by_operation.pop(request.match_info["operation"], None)
        return _json({})

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.cloud.faults.by_operation.clear()
        return _json({})

    async def set_stock(self, request: web.Request) -> web.Response:
        body = await _body(request, StockBody)
        try:
            self.cloud.set_stock(body.zone, body.spec, body.available, spot=body.spot)
        except errors.InvalidParameter as exc:
            return _problem(400, exc.message)
        return _json(self.cloud.totals()["zones"])

    async def set_vswitch(self, request: web.Request) -> web.Response:
        body = await _body(request, VSwitchBody)
        try:
            self.cloud.set_exhausted(request.match_info["id"], body.exhausted)
        except errors.NotFound as exc:
            return _problem(404, exc.message)
        return _json(self.cloud.totals()["vswitches"])

    async def get_limits(self, request: web.Request) -> web.Response:
        return _json(
            {op: {"burst": limit.burst, "rate": limit.rate} for op, limit in self.cloud.limiter.limits.items()}
        )

    async def put_limit(self, request: web.Request) -> web.Response:
        body = await _body(request, LimitBody)
        operation = request.match_info["operation"]
        if operation not in faults.OPERATIONS:
            return _problem(400, f"unknown operation {operation!r}: one of {', '.join(faults.OPERATIONS)}")
        self.cloud.limiter.set(operation, ratelimit.Limit(body.burst, body.rate))
        return await self.get_limits(request)

    async def delete_limit(self, request: web.Request) -> web.Response:
        self.cloud.limiter.set(request.match_info["operation"], None)
        return await self.get_limits(request)

    async def reset(self, request: web.Request) -> web.Response:
        self.cloud.reset()
        await self.commit()
        return _json({"ok": True})


async def _body(request: web.Request, kind: type[M]) -> M:
    raw = await request.read()
    try:
        return kind.model_validate_json(raw or b"{}")
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise web.HTTPBadRequest(
            text=msgspec.json.encode({"error": f"bad {kind.__name__}: {problems}"}).decode(),
            content_type="application/json",
        ) from exc


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(data), content_type="application/json")


def _problem(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)
