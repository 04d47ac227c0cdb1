"""ECI's change feed: what changed among a node's container groups, at a cost that follows the change.

``DescribeContainerGroupStatus`` (200 a page) finds the instances and tells which changed (a
fingerprint of each status item); only those, and new ones, are described in full, 20 per
``DescribeContainerGroups`` call by id. A node's 3,000 steady instances cost 15 calls.

Between full listings, which come every ``full_list_interval`` seconds, a step is incremental:
it asks only for the instances changed since the previous step began (``SinceSecond``, with a
margin) and, by id, for those being deleted (an instance that is gone is no longer listed at
all, so only asking for it by id shows that it went) or listed but not described yet. What the
two miss (an instance removed with no status change on the way, a cloud clock that jumps) the
next full listing finds.

Everything the feed needs to tell changes apart travels in its :class:`Cursor`, which the node
keeps and hands back: the provider keeps nothing between steps but the ids it deleted itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec

from vnode import errors, models
from vnode.provider import base
from vnode.provider.eci import client as eci_client
from vnode.provider.eci import eips, spot, states

__all__ = ["Cursor", "Feed"]

PAGE = 20  # DescribeContainerGroups' largest page (and most ids per call)
STATUS_PAGE = 200  # DescribeContainerGroupStatus' page
SINCE_MARGIN = 1  # seconds added to SinceSecond (rounded up) beyond the time since the last step began
_TERMINATING = models.InstanceStatus.TERMINATING
# Errors of a listing call that no retry of the same call would change: the cloud is not answering well.
_UNEXPECTED = (errors.InvalidSpec, errors.NotFound, errors.Conflict, errors.CapacityError)


class _StatusItem(msgspec.Struct, rename="pascal"):
    container_group_id: str = ""
    status: str = ""
    pod_status: msgspec.Raw = msgspec.Raw(b"null")


class _StatusPage(msgspec.Struct, rename="pascal"):
    data: list[_StatusItem] | None = None
    next_token: str | None = ""


_status_page = msgspec.json.Decoder(_StatusPage)


@dataclasses.dataclass(frozen=True)
class Cursor:
    """Where one node's feed stands; handed back once, so the next step may update it in place."""

    #: Every id listed -> the fingerprint of its status item (``b""``: listed, not described yet).
    fingerprints: dict[str, bytes]
    #: Ids an incremental step asks for by id: Terminating ones, and those not described yet.
    by_id: frozenset[str]
    began: float  # monotonic time the step that made it began
    full_at: float  # ... the last full listing began


class Feed:
    """Listing and describing over one client; ``changes`` is ``base.Provider.changes``."""

    def __init__(
        self,
        client: eci_client.EciClient,
        region: str,
        *,
        full_list_interval: float = 0.0,
        vpc: eci_client.EciClient | None = None,
    ) -> None:
        self.client = client
        self.vpc = vpc or client  # the VPC API's client (the simulator serves both on one endpoint)
        self.region = region
        self.full_list_interval = full_list_interval  # 0: every step is a full listing
        self.prices = spot.Prices(self._call)  # what each spot instance is billed per hour
        self.eips = eips.Eips(self._call_vpc)  # which EIP each instance with an address holds

    async def changes(self, tags: Mapping[str, str], cursor: Cursor | None, deleted: set[str]) -> base.Changes:
        """One step of the feed. ``deleted``: ids deleted through the provider and not yet seen gone
        (asked for by id until they are; those seen gone are removed from it)."""
        began = time.monotonic()
        params = {"Limit": str(STATUS_PAGE)}
        for n, (key, value) in enumerate(sorted(tags.items()), 1):
            params[f"Tag.{n}.Key"] = key
            params[f"Tag.{n}.Value"] = value
        checked = self._checked(cursor, deleted, began)
        listed: dict[str, bytes] = {}  # ids seen in this step, in order -> fingerprint
        if cursor is not None and checked is not None:
            since = math.ceil(began - cursor.began) + SINCE_MARGIN
            await self._note(dict(params, SinceSecond=str(since)), listed)
            for start in range(0, len(checked), PAGE):
                await self._note({"ContainerGroupIds": json.dumps(checked[start : start + PAGE])}, listed)
        else:
            await self._note(params, listed)
        known = cursor.fingerprints if cursor is not None else {}
        stale = {i: fingerprint for i, fingerprint in listed.items() if known.get(i) != fingerprint}
        described = await self.describe(stale)
        await self.prices.fill(described)
        await self.eips.fill(described)
        gone = [i for i in (checked if checked is not None else known) if i not in listed]
        self.prices.forget(gone)
        self.eips.forget(gone)
        next_cursor = self._next(cursor, checked, listed, stale, described, gone, deleted, began)
        wanted = tags.items()
        changed = [state for state in described.values() if state.tags.items() >= wanted]
        return base.Changes(changed=changed, gone=gone, cursor=next_cursor, complete=cursor is None)

    def _checked(self, cursor: Cursor | None, deleted: set[str], began: float) -> list[str] | None:
        """The ids an incremental step asks for by id; ``None``: this step is a full listing."""
        if cursor is None or self.full_list_interval <= 0 or began - cursor.full_at >= self.full_list_interval:
            return None
        checked = sorted(cursor.by_id | deleted)
        if -(-len(checked) // PAGE) > -(-len(cursor.fingerprints) // STATUS_PAGE):
            return None  # asking by id would take more calls than listing everything (a mass delete)
        return checked

    def _next(
        self,
        cursor: Cursor | None,
        checked: list[str] | None,
        listed: dict[str, bytes],
        stale: Mapping[str, bytes],
        described: Mapping[str, models.InstanceState],
        gone: Sequence[str],
        deleted: set[str],
        began: float,
    ) -> Cursor:
        if cursor is not None and checked is not None:  # incremental: the rest of the last step stands
            fingerprints, by_id, full_at = cursor.fingerprints, set(cursor.by_id), cursor.full_at
            for instance_id in gone:
                fingerprints.pop(instance_id, None)
        else:
            known = cursor.fingerprints if cursor is not None else {}
            fingerprints = {i: known.get(i, b"") for i in listed}
            by_id = set(cursor.by_id & listed.keys()) if cursor is not None else set()
            full_at = began
            if cursor is not None:
                deleted.intersection_update(listed)
        by_id.difference_update(gone)
        deleted.difference_update(gone)
        for instance_id, fingerprint in stale.items():
            state = described.get(instance_id)
            # A running spot instance's reclaim notice is an event, which its status item does not
            # show: it is described again at every step (asked by id, its fingerprint forgotten).
            watched = state is not None and state.interruptible and state.status is models.InstanceStatus.RUNNING
            fingerprints[instance_id] = fingerprint if state is not None and not watched else b""
            if state is None or state.status is _TERMINATING or watched:
                by_id.add(instance_id)  # not described (ask again by id), or on its way out, or watched
            elif instance_id not in deleted:
                by_id.discard(instance_id)
        return Cursor(fingerprints=fingerprints, by_id=frozenset(by_id), began=began, full_at=full_at)

    async def _note(self, params: dict[str, str], listed: dict[str, bytes]) -> None:
        async for item in self._status_items(params):
            instance_id = item.container_group_id
            if instance_id and instance_id not in listed:
                # PodStatus is never parsed: it only tells whether to describe again. Its digest is kept, not
                # its bytes (about a kilobyte: 3.7 MB of a 3,000-pod node's memory).
                status = item.status.encode() + b"\0" + bytes(item.pod_status)
                listed[instance_id] = hashlib.blake2b(status, digest_size=16).digest()

    async def _status_items(self, params: dict[str, str]) -> AsyncIterator[_StatusItem]:
        """``DescribeContainerGroupStatus``'s items, page after page, decoded only as far as needed:
        a full listing reads every one of a node's instances, so this is its hottest loop."""
        params = dict(params, RegionId=self.region)
        token = ""
        while True:
            page = dict(params, NextToken=token) if token else params
            try:
                raw = await self.client.call_raw("DescribeContainerGroupStatus", page)
                body = _status_page.decode(raw) if raw else _StatusPage()
            except msgspec.DecodeError as exc:
                raise errors.Unavailable(f"ECI DescribeContainerGroupStatus: {exc}", code="BadAnswer") from exc
            except _UNEXPECTED as exc:
                raise errors.Unavailable(exc.message, code=exc.code) from exc
            for item in body.data or ():
                yield item
            token = body.next_token or ""
            if not token:
                return

    async def _call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        params.setdefault("RegionId", self.region)
        return await self.client.call(action, params)

    async def _call_vpc(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        params.setdefault("RegionId", self.region)
        return await self.vpc.call(action, params)

    async def describe(self, ids: Sequence[str] | Mapping[str, Any]) -> dict[str, models.InstanceState]:
        """The full states of ``ids`` (20 per DescribeContainerGroups call); unknown ones are left out."""
        wanted = list(ids)
        found: dict[str, models.InstanceState] = {}
        for start in range(0, len(wanted), PAGE):
            params = {"ContainerGroupIds": json.dumps(wanted[start : start + PAGE])}
            async for group in self.pages("DescribeContainerGroups", params, "ContainerGroups"):
                state = states.state_of(group)
                if state.id in ids:
                    found[state.id] = state
        return found

    async def pages(self, action: str, params: dict[str, str], key: str) -> AsyncIterator[dict[str, Any]]:
        """The items under ``key`` of every page of a paged call."""
        token = ""
        while True:
            page = dict(params, NextToken=token) if token else dict(params)
            page.setdefault("RegionId", self.region)
            try:
                body = await self.client.call(action, page)
            except _UNEXPECTED as exc:
                raise errors.Unavailable(exc.message, code=exc.code) from exc
            for item in body.get(key) or ():
                yield item
            token = str(body.get("NextToken") or "")
            if not token:
                return
