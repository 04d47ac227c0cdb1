"""The ARM handlers of the ACI dialect over one cloud: container groups and their long-running operations.

ARM has no client token: a PUT names the resource, so a repeated PUT is idempotent by name. PUT
and DELETE are long-running operations as ARM does them: 201/202 with an
``Azure-AsyncOperation`` URL whose ``status`` the SDK's ``ARMPolling`` follows (and, for
DELETE, a ``Location`` URL that answers 202 until done). A PUT with a different spec replaces
the group (delete, then create), the nearest the cloud gets to ACI's in-place update.

Every handler ticks the cloud first and flushes the store after a change, so the dialect is
correct even without the server's background ticker.
"""

from __future__ import annotations

import asyncio
import itertools
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import msgspec
from aiohttp import web

from vnode.cloudsim import aci_arm, aci_render, aci_spec, aci_tokens, errors, model, runs
from vnode.cloudsim import cloud as cloudmod

DEFAULT_PAGE_SIZE = 100


class Dialect:
    """The ARM handlers over one cloud. One per app; it keeps no state beyond the cloud but counters."""

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
            raise aci_arm.ArmError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise aci_arm.ArmError(
                401,
                "AuthenticationFailedInvalidHeader",
                "Authentication failed. The 'Authorization' header is invalid.",
            )
        if token.strip() not in self.tokens:
            aci_tokens.check(token.strip(), self.cloud.seed)  # a JWT minted for this simulator, else 401

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
        where = cloudmod.ListFilter(tags=(model.Tag(aci_arm.TAG_ID, aci_arm.arm_id(sub, rg, name).lower()),))
        found = list(self.cloud.find(where))
        if not found:
            return None
        alive = [i for i in found if i.status != model.TERMINATING]
        return max(alive or found, key=lambda i: i.seq)

    # -- rendering -------------------------------------------------------------------------

    def render(self, inst: model.Instance) -> dict[str, Any]:
        return aci_render.group(inst, self.cloud.world.vpc_id)

    # -- handlers --------------------------------------------------------------------------

    async def put_group(self, request: web.Request) -> web.Response:
        sub, rg, name = aci_arm.path(request)
        aci_spec.check_name(name, "container group")
        spec = aci_spec.spec_from(self.cloud, sub, rg, name, await request.read())
        existing = self.lookup(sub, rg, name)
        if existing is not None and existing.status != model.TERMINATING:
            if existing.spec == spec:
                return aci_arm.json_response(self.render(existing), 200)
            if msgspec.structs.replace(existing.spec, tags=spec.tags) == spec:  # only the tags differ
                self.cloud.retag(existing.id, spec.tags)  # ARM updates tags in place
                await self.changed()
                return aci_arm.json_response(self.render(existing), 200)
        await self.admit("create")
        self._check_label(spec, sub, rg, name)  # after the last await: no other PUT can take it in between
        if existing is not None and existing.status != model.TERMINATING:
            self.cloud.admit("delete")
            self.cloud.delete(existing.id)
        inst = self.cloud.create(spec)
        await self.changed()
        op = self._operation_url(request, sub, inst, "create")
        headers = {"Azure-AsyncOperation": op, "Retry-After": self.retry_after()}
        return aci_arm.json_response(self.render(inst), 201, headers)

    def _check_label(self, spec: model.InstanceSpec, sub: str, rg: str, name: str) -> None:
        """A DNS name label is unique in its region: refused while another live group has it (a group
        being deleted has released it). ACI's code and message; the status, 409, is the simulator's."""
        key = next((t.value for t in spec.tags if t.key == aci_arm.TAG_DNS), "")
        if not key:
            return
        own = aci_arm.arm_id(sub, rg, name).lower()
        for inst in self.cloud.find(cloudmod.ListFilter(tags=(model.Tag(aci_arm.TAG_DNS, key),))):
            if inst.status != model.TERMINATING and inst.tag(aci_arm.TAG_ID) != own:
                label = key.split("/", 1)[1]
                raise aci_arm.ArmError(
                    409,
                    "DnsNameLabelAlreadyTaken",
                    f"The DNS name label '{label}' in container group '{name}' is not available. "
                    "Try using a different label.",
                )

    async def get_group(self, request: web.Request) -> web.Response:
        sub, rg, name = aci_arm.path(request)
        await self.admit("describe")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise aci_arm.not_found(sub, rg, name)
        return aci_arm.json_response(self.render(inst))

    async def delete_group(self, request: web.Request) -> web.Response:
        sub, rg, name = aci_arm.path(request)
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
        tag = (
            model.Tag(aci_arm.TAG_GROUP, aci_arm.group_key(sub, rg))
            if rg
            else model.Tag(aci_arm.TAG_SUBSCRIPTION, sub.lower())
        )
        token = request.query.get("$skipToken", "")
        page = self.cloud.page(cloudmod.ListFilter(tags=(tag,)), limit=self.page_size, token=token)
        body: dict[str, Any] = {"value": [self.render(i) for i in page.items]}
        if page.next_token:
            url = request.url.with_query({"api-version": request.query["api-version"], "$skipToken": page.next_token})
            body["nextLink"] = str(url.with_scheme("https"))
        return aci_arm.json_response(body)

    async def restart_group(self, request: web.Request) -> web.Response:
        sub, rg, name = aci_arm.path(request)
        await self.admit("restart")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise aci_arm.not_found(sub, rg, name)
        self.cloud.restart(inst.id)
        await self.changed()
        return web.Response(status=204)

    async def stop_group(self, request: web.Request) -> web.Response:
        """Stop: synchronous in ARM (``204``). Containers end, billing and the vCPU quota are released;
        the group and its address stay, ``instanceView.state`` is ``Stopped``."""
        sub, rg, name = aci_arm.path(request)
        await self.admit("restart")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise aci_arm.not_found(sub, rg, name)
        self.cloud.stop(inst.id)
        await self.changed()
        return web.Response(status=204)

    async def start_group(self, request: web.Request) -> web.Response:
        """Start a stopped (or finished) group: a long-running operation, ``202`` with
        ``Azure-AsyncOperation`` that succeeds once the containers run again."""
        sub, rg, name = aci_arm.path(request)
        await self.admit("restart")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise aci_arm.not_found(sub, rg, name)
        self.cloud.start(inst.id)
        await self.changed()
        headers = {
            "Azure-AsyncOperation": self._operation_url(request, sub, inst, "start"),
            "Retry-After": self.retry_after(),
        }
        return web.Response(status=202, headers=headers)

    async def patch_group(self, request: web.Request) -> web.Response:
        """PATCH: update the group's tags (the SDK's ``update``; ARM replaces the whole tag set)."""
        sub, rg, name = aci_arm.path(request)
        body = aci_arm.decode_body(aci_spec.decode_patch, await request.read())
        await self.admit("update")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise aci_arm.not_found(sub, rg, name)
        if body.tags is not None:
            self._retag(inst, body.tags)
            await self.changed()
        return aci_arm.json_response(self.render(inst))

    def _retag(self, inst: model.Instance, tags: dict[str, str]) -> None:
        aci_spec.check_tag_count(tags)
        aci_spec.check_tags(tags)
        internal = tuple(t for t in inst.spec.tags if t.key in aci_arm.INTERNAL_TAGS)
        self.cloud.retag(inst.id, tuple(model.Tag(k, v) for k, v in sorted(tags.items())) + internal)

    async def logs(self, request: web.Request) -> web.Response:
        sub, rg, name = aci_arm.path(request)
        container = request.match_info["container"]
        await self.admit("logs")
        inst = self.lookup(sub, rg, name)
        if inst is None:
            raise aci_arm.not_found(sub, rg, name)
        tail = aci_arm.int_query(request, "tail")
        timestamps = request.query.get("timestamps", "false").lower() == "true"
        if container not in {c.name for c in inst.spec.containers}:
            raise aci_arm.ArmError(404, "ContainerNotFound", f"The container '{container}' does not exist in '{name}'.")
        _, text = self.cloud.logs(inst.id, runs.LogQuery(container=container, tail=tail, timestamps=timestamps))
        return aci_arm.json_response({"content": text})

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
                raise aci_arm.ArmError(404, "OperationNotFound", "The operation does not exist.") from None
        if record.tag(aci_arm.TAG_SUBSCRIPTION) != sub.lower() or kind not in ("create", "delete", "start"):
            raise aci_arm.ArmError(404, "OperationNotFound", "The operation does not exist.")
        arm_id = aci_arm.arm_id(*aci_arm.split_id(aci_arm.meta_of(record), record))
        status, error = "InProgress", None
        if kind == "delete":
            status = "InProgress" if inst is not None else "Succeeded"
        elif inst is None or inst.status == model.TERMINATING:
            status = "Canceled"
        else:
            provisioning, _ = aci_render.states(inst)
            if provisioning == "Succeeded":
                status = "Succeeded"
            elif provisioning == "Failed":
                status = "Failed"
                error = aci_render.failure(inst)
        if request.match_info["kind"] == "operationResults":
            if status == "InProgress":
                return web.Response(status=202, headers={"Retry-After": self.retry_after()})
            return web.Response(status=204)
        body: dict[str, Any] = {"id": arm_id, "name": request.match_info["op"], "status": status}
        body["startTime"] = aci_arm.iso(
            record.created_at if kind == "create" else (record.status_at or record.created_at)
        )
        if status != "InProgress":
            body["endTime"] = aci_arm.iso(record.deleted_at or record.status_at)
        if error:
            body["error"] = error
        headers = {"Retry-After": self.retry_after()} if status == "InProgress" else {}
        return aci_arm.json_response(body, 200, headers)

    def _operation_url(
        self, request: web.Request, sub: str, inst: model.Instance, kind: str, *, results: bool = False
    ) -> str:
        meta = aci_arm.meta_of(inst)
        segment = "operationResults" if results else "operations"
        path = f"/subscriptions/{sub}/providers/{aci_arm.PROVIDER}/locations/{meta.loc}/{segment}/{kind}~{inst.id}"
        version = urllib.parse.quote(request.query.get("api-version", ""), safe="")
        return f"https://{request.host}{path}?api-version={version}"  # yarl's URL building costs more than the rest
