"""The cloud itself, dialect-neutral: regions, zones, vSwitches, security groups, instances, billing.

Dialects (``eci``, ``aci``) parse their wire format into the typed calls here and render the
results back. Everything runs on one event loop thread, so there are no locks: each call reads
and changes the in-memory state and marks what changed for the store. Time comes from the
clock passed in, randomness from the seed, and lifecycle progress from ``tick`` (called by the
server every few hundred milliseconds and before every call), so a test can drive it all.

Public surface for dialects and the console: ``Cloud`` and its methods, ``Page``, ``ListFilter``;
``runs`` (logs, exec), ``world``, ``placement``, ``errors``, ``model`` (records) and ``timefmt``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import heapq
import json
import random
from collections.abc import Iterable, Iterator

import msgspec

from vnode.cloudsim import (
    catalog,
    eip,
    errors,
    faults,
    imagecache,
    lifecycle,
    model,
    network,
    placement,
    ratelimit,
    runs,
    spot,
)
from vnode.cloudsim import clock as simclock
from vnode.cloudsim import disks as simdisks
from vnode.cloudsim import store as simstore
from vnode.cloudsim import totals as simtotals
from vnode.cloudsim import world as simworld


@dataclasses.dataclass(frozen=True)
class ListFilter:
    ids: tuple[str, ...] = ()
    name: str = ""
    tags: tuple[model.Tag, ...] = ()
    status: str = ""
    zone: str = ""
    vswitch_id: str = ""
    security_group_id: str = ""
    changed_since: float | None = None  # only instances whose status, containers or events changed since


@dataclasses.dataclass(frozen=True)
class Page:
    items: list[model.Instance]
    next_token: str  # "" when this is the last page
    total: int


class Cloud:
    """One region of the simulated cloud. Not thread-safe: call it from one event loop."""

    def __init__(
        self,
        *,
        store: simstore.Store,
        clock: simclock.Clock,
        profile: lifecycle.Profile,
        seed: int = 0,
        world: simworld.World | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.seed = seed
        self.lifecycle = lifecycle.Lifecycle(profile, seed)
        self.lifecycle.out_of_stock = self._out_of_stock
        self.limiter = ratelimit.Limiter()
        self.faults = faults.Faults(random.Random(f"faults/{seed}"))
        stored = store.meta("world")
        self.world = simworld.World.from_json(stored) if stored else (world or simworld.World.default(seed))
        if not stored:
            store.set_meta("world", self.world.to_json())
        self.vswitches = {v[0]: network.VSwitch(v[0], v[1], v[2], self.world.vpc_id) for v in self.world.vswitches}
        self.groups = {g[0]: network.SecurityGroup(g[0], g[1], self.world.vpc_id) for g in self.world.security_groups}
        self.stock = {zone: simworld.ZoneStock() for zone in self.world.zones}
        self.secrets = dict(self.world.access_keys)
        self.live: dict[str, model.Instance] = {}
        self.by_tag: dict[tuple[str, str], dict[str, None]] = {}
        self.tokens: dict[str, tuple[str, str]] = {}
        self.eips: dict[str, str] = {}  # bound EIP ID -> instance ID
        self.disks = simdisks.Disks()
        self.used_cpu = 0.0
        self._heap: list[tuple[float, int, str]] = []
        self.image_caches = imagecache.ImageCaches(store, profile, seed)
        self._load()

    # -- loading ----------------------------------------------------------------------------

    def _load(self) -> None:
        for inst in self.store.instances():
            self._index(inst)
        for token, instance_id, fingerprint in self.store.tokens():
            self.tokens[token] = (instance_id, fingerprint)
        self.deleted_count, self.last_seq = self.store.deleted_totals()
        self.deleted_cost, self.deleted_costs = 0.0, collections.defaultdict[str, float](float)
        for gone in self.store.instances(deleted=True):
            self._count_deleted(gone, gone.deleted_at or 0.0)

    def _count_deleted(self, inst: model.Instance, at: float) -> None:
        """What a deleted instance cost, in the total and under its namespace (the console's cost page)."""
        cost = self.cost_at(inst, at)
        self.deleted_cost += cost
        self.deleted_costs[model.namespace_of(inst)] += cost

    def _index(self, inst: model.Instance, *, address_taken: bool = False) -> None:
        self.live[inst.id] = inst
        for tag in inst.spec.tags:
            self.by_tag.setdefault((tag.key, tag.value), {})[inst.id] = None
        self.disks.add(inst)
        if not address_taken:  # loading: the pool is rebuilt from the stored addresses
            self.vswitches[inst.vswitch_id].pool.claim(inst.ip)
        self.groups[inst.spec.security_group_id].members += 1
        if inst.eip_id:
            self.eips[inst.eip_id] = inst.id
        self.stock[inst.zone].in_use[catalog.stock_key(inst.spec.instance_type, inst.cpu, inst.memory)] += 1
        if inst.status not in model.IDLE and inst.status != model.TERMINATING:  # deletion released it
            self.used_cpu += inst.cpu
        self._schedule(inst)

    def _unindex(self, inst: model.Instance) -> None:
        del self.live[inst.id]
        for tag in inst.spec.tags:
            ids = self.by_tag.get((tag.key, tag.value))
            if ids is not None:
                ids.pop(inst.id, None)
                if not ids:
                    del self.by_tag[(tag.key, tag.value)]
        self.disks.remove(inst)
        self.vswitches[inst.vswitch_id].pool.give_back(inst.ip)
        self.groups[inst.spec.security_group_id].members -= 1
        self.eips.pop(inst.eip_id, None)  # released with the instance (a named EIP is kept, unbound)
        self.stock[inst.zone].in_use[catalog.stock_key(inst.spec.instance_type, inst.cpu, inst.memory)] -= 1

    def _schedule(self, inst: model.Instance) -> None:
        if inst.next_at is not None:
            heapq.heappush(self._heap, (inst.next_at, inst.seq, inst.id))

    # -- time -------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def tick(self, now: float | None = None) -> int:
        """Apply every lifecycle step due by ``now``; returns how many instances changed."""
        now = self.now() if now is None else now
        changed = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, instance_id = heapq.heappop(heap)
            inst = self.live.get(instance_id)
            if inst is None or inst.next_at != due:
                continue  # a stale entry: the instance moved on or is gone
            was_idle = inst.status in model.IDLE
            self.lifecycle.run_due(inst, now)
            if inst.status in model.IDLE and not was_idle:
                self.used_cpu -= inst.cpu
            if inst.stage == "gone" and inst.next_at is None:
                self._remove(inst, now)
            else:
                self._schedule(inst)
            self.store.mark(inst)
            changed += 1
        return changed

    def advance(self, seconds: float) -> float:
        """Move the clock forward and apply what became due (admin and tests)."""
        now = self.clock.advance(seconds)
        self.save_clock()
        self.tick(now)
        return now

    def set_scale(self, scale: float) -> None:
        self.clock.set_scale(scale)
        self.save_clock()

    def save_clock(self) -> None:
        self.store.set_meta("clock", json.dumps(self.clock.state()))

    # -- admission: rate limits and injected faults ----------------------------------------

    def admit(self, operation: str) -> None:
        """Raise Throttled or an injected fault if this call must not go through."""
        self.faults.check(operation)
        if not self.limiter.allow(operation, self.now()):
            raise errors.Throttled(operation)

    # -- operations -------------------------------------------------------------------------

    def create(self, spec: model.InstanceSpec) -> model.Instance:
        """Create an instance, or return the one an earlier call with the same ClientToken made."""
        placement.validate(
            spec, vswitches=self.vswitches, groups=self.groups, zones=self.stock, region=self.world.region
        )
        fingerprint = ""
        if spec.client_token:
            fingerprint = hashlib.sha256(msgspec.json.encode(spec)).hexdigest()
            known = self.tokens.get(spec.client_token)
            if known is not None:
                if known[1] != fingerprint:
                    raise errors.IdempotentMismatch("The ClientToken was used before with different parameters.")
                existing = self.live.get(known[0]) or self.store.instance(known[0])
                if existing is not None:
                    return existing
        size = placement.size(spec)
        eip.check(spec, self.eips)
        self.disks.check(spec, "", self.live)
        group = self.groups[spec.security_group_id]
        if group.members >= group.cap:
            raise errors.SecurityGroupFull(
                f"The security group {group.id} ({group.kind}) already holds its maximum of {group.cap} instances."
            )
        if self.used_cpu + size.cpu > self.world.max_cpu:
            raise errors.QuotaExceeded(
                f"The vCPU quota would be exceeded: {self.used_cpu:g} used of {self.world.max_cpu:g}."
            )
        seq = self.last_seq + 1
        now = self.now()
        cache_id = self.image_caches.for_spec(spec, now)  # before placement: a refused cache takes no address
        vswitch, skipped = placement.place(spec, size, seq, vswitches=self.vswitches, stock=self.stock, seed=self.seed)
        ip = vswitch.pool.take()
        self.last_seq = seq
        instance_id = "eci-" + hashlib.blake2b(f"{self.seed}/id/{seq}".encode(), digest_size=10).hexdigest()
        inst = model.Instance(
            id=instance_id,
            seq=seq,
            spec=spec,
            region=self.world.region,
            zone=vswitch.zone,
            vswitch_id=vswitch.id,
            ip=ip,
            cpu=size.cpu,
            memory=size.memory,
            created_at=now,
        )
        inst.image_cache_id = cache_id
        eip.bind(inst, self.seed)
        self.lifecycle.begin(inst, now)
        key = catalog.stock_key(spec.instance_type, size.cpu, size.memory)
        for zone in skipped:
            lifecycle.event(
                inst, now, "Warning", "NoStock", f"zone {zone} has no stock of {key}; placed in {inst.zone}"
            )
        self._index(inst, address_taken=True)
        if spec.client_token:
            self.tokens[spec.client_token] = (inst.id, fingerprint)
            self.store.add_token(spec.client_token, inst.id, fingerprint)
        self.store.mark(inst)
        return inst

    def get(self, instance_id: str) -> model.Instance:
        inst = self.live.get(instance_id)
        if inst is None:
            raise errors.NotFound(f"The container group {instance_id} does not exist.")
        return inst

    def find(self, where: ListFilter) -> Iterator[model.Instance]:
        """Live instances matching ``where``, in creation order."""
        if where.ids:
            source: Iterable[model.Instance] = sorted(
                (i for i in (self.live.get(x) for x in dict.fromkeys(where.ids)) if i is not None), key=lambda i: i.seq
            )
        elif where.tags:  # the tag index holds exactly the live instances with that tag
            # Walk the smallest tag's index and check the others by index membership: a node's
            # poller pages through its thousands of instances by two tags (cluster and node) every
            # few seconds, and reading each instance's tags instead was most of its cost.
            sets = [self.by_tag.get((t.key, t.value), {}) for t in where.tags]
            smallest = min(sets, key=len)
            others = [s for s in sets if s is not smallest]
            live = self.live
            source = (live[x] for x in list(smallest) if all(x in s for s in others))
        else:
            source = list(self.live.values())
        tags_checked = not where.ids  # the source was the tags' indexes
        for inst in source:
            if where.name and inst.spec.name != where.name:
                continue
            if where.status and inst.status != where.status:
                continue
            if where.zone and inst.zone != where.zone:
                continue
            if where.vswitch_id and inst.vswitch_id != where.vswitch_id:
                continue
            if where.security_group_id and inst.spec.security_group_id != where.security_group_id:
                continue
            if where.tags and not tags_checked and not all(inst.tag(t.key) == t.value for t in where.tags):
                continue
            if where.changed_since is not None and max(inst.changed_at, inst.status_at) < where.changed_since:
                continue
            yield inst

    def page(self, where: ListFilter, *, limit: int, token: str = "") -> Page:
        """One page of ``find``: ``limit`` items after the instance named by ``token``."""
        after = 0
        if token:
            try:
                after = int(token, 16)
            except ValueError as exc:
                raise errors.InvalidParameter("NextToken", "not a token this API returned") from exc
        items: list[model.Instance] = []
        total = 0
        more = False
        for inst in self.find(where):
            total += 1
            if inst.seq <= after:
                continue
            if len(items) < limit:
                items.append(inst)
            else:
                more = True
        next_token = f"{items[-1].seq:x}" if more and items else ""
        return Page(items, next_token, total)

    def delete(self, instance_id: str) -> None:
        """Start deleting; repeating it is harmless. Billing stops now, the address is freed when gone."""
        inst = self.get(instance_id)
        if inst.status == model.TERMINATING:
            return
        now = self.now()
        if inst.status not in model.IDLE:
            self.used_cpu -= inst.cpu
        self.lifecycle.delete(inst, now)
        self.store.mark(inst)
        self._schedule(inst)
        if inst.next_at is not None and inst.next_at <= now:
            self.tick(now)

    def _remove(self, inst: model.Instance, now: float) -> None:
        self._unindex(inst)
        inst.deleted_at = now
        self.deleted_count += 1
        self._count_deleted(inst, now)
        self.store.mark(inst)

    def restart(self, instance_id: str) -> None:
        inst = self.get(instance_id)
        self.lifecycle.restart(inst, self.now())
        self._schedule(inst)
        self.store.mark(inst)

    def update(self, instance_id: str, volumes: tuple[model.Volume, ...], client_token: str = "") -> None:
        """UpdateContainerGroup (volumes): idempotent by ``client_token``."""
        inst = self.get(instance_id)
        if client_token and client_token in inst.update_tokens:
            return
        self.lifecycle.update(inst, volumes, self.now())
        if client_token:
            inst.update_tokens = [*inst.update_tokens[-19:], client_token]
        self._schedule(inst)
        self.store.mark(inst)

    def stop(self, instance_id: str) -> None:
        """End every container and release the compute (billing and vCPU quota); the address and the
        record stay until ``start`` or ``delete``. Repeating it is harmless."""
        inst = self.get(instance_id)
        if inst.status == model.STOPPED:
            return
        if inst.status not in model.IDLE:
            self.used_cpu -= inst.cpu
        self.lifecycle.stop(inst, self.now())
        self.store.mark(inst)

    def start(self, instance_id: str) -> None:
        """Run a stopped or finished instance again from scheduling, under the quota like a create."""
        inst = self.get(instance_id)
        if inst.status not in model.IDLE:
            raise errors.IncorrectStatus(
                f"The current status of the resource does not support this operation: {inst.status}"
            )
        if self.used_cpu + inst.cpu > self.world.max_cpu:
            raise errors.QuotaExceeded(
                f"The vCPU quota would be exceeded: {self.used_cpu:g} used of {self.world.max_cpu:g}."
            )
        self.disks.check(inst.spec, inst.id, self.live)
        self.used_cpu += inst.cpu
        self.lifecycle.start(inst, self.now())
        self._schedule(inst)
        self.store.mark(inst)

    def retag(self, instance_id: str, tags: tuple[model.Tag, ...]) -> model.Instance:
        """Replace an instance's tags (ARM's PATCH); the tag index follows."""
        inst = self.get(instance_id)
        if len(tags) > placement.MAX_TAGS:
            raise errors.InvalidParameter("Tag", f"at most {placement.MAX_TAGS} tags")
        lifecycle.Overrides.from_tags(tags)
        for tag in inst.spec.tags:
            ids = self.by_tag.get((tag.key, tag.value))
            if ids is not None:
                ids.pop(inst.id, None)
                if not ids:
                    del self.by_tag[(tag.key, tag.value)]
        inst.spec = msgspec.structs.replace(inst.spec, tags=tags)
        for tag in tags:
            self.by_tag.setdefault((tag.key, tag.value), {})[inst.id] = None
        self.store.mark(inst)
        return inst

    def logs(self, instance_id: str, query: runs.LogQuery) -> tuple[str, str]:
        """(container name, log text) of one container's current or previous run."""
        inst = self.get(instance_id)
        return runs.logs(inst, query, self.now(), interval=self.lifecycle.profile.access_log_interval)

    def exec(self, instance_id: str, container: str, command: list[str]) -> runs.ExecResult:
        return runs.exec(self.get(instance_id), container, command)

    def price(self, cpu: float, memory: float) -> catalog.Spec:
        try:
            return catalog.round_up(cpu, memory)
        except catalog.SpecError as exc:
            raise errors.SpecNotSupported(str(exc)) from exc

    def cost(self, inst: model.Instance) -> float:
        return self.cost_at(inst, inst.deleted_at or self.now())

    def cost_at(self, inst: model.Instance, now: float) -> float:
        seconds = inst.billable_seconds(now)
        disks = inst.disk_gib() * catalog.USD_PER_DISK_GIB_SECOND * seconds
        return spot.usd_per_second(inst) * seconds + eip.cost(inst, seconds) + disks

    def _out_of_stock(self, inst: model.Instance) -> bool:
        return not self.stock[inst.zone].available(catalog.spec_key(inst.cpu, inst.memory), spot=True)

    def reclaim(self, instance_id: str, notice: float | None = None) -> model.Instance:
        """Reclaim a running spot instance (admin): ECI's (SpotToBeReleased now, Expired after the notice)
        or, an ACI Spot group, ACI's eviction (restarted in place after the notice, none by default)."""
        inst = self.get(instance_id)
        if inst.status != model.RUNNING or inst.noticed_at is not None:
            raise errors.IncorrectStatus(f"The container group {instance_id} is {inst.status}, not running unnoticed.")
        now = self.now()
        spot.reclaim(inst, now, notice, default_notice=self.lifecycle.profile.spot_notice)
        due = (inst.next_at, inst.expire_at, inst.spot_check_at)
        inst.changed_at, inst.next_at = now, min(t for t in due if t is not None)
        self._schedule(inst)
        self.store.mark(inst)
        return inst

    def instance_record(self, instance_id: str) -> model.Instance:
        """A live or deleted instance (admin and console)."""
        inst = self.live.get(instance_id) or self.store.instance(instance_id)
        if inst is None:
            raise errors.NotFound(f"The container group {instance_id} does not exist.")
        return inst

    # -- world management (admin) -----------------------------------------------------------

    def set_stock(self, zone: str, spec_key: str, available: int | None, *, spot: bool = False) -> None:
        if zone not in self.stock:
            raise errors.InvalidParameter("zone", f"{zone} is not a zone of {self.world.region}")
        if spec_key != "*" and spec_key not in catalog.stock_keys():
            what = "a catalog size (like 2-4), a GPU type (ecs.gn6i-c4g1.xlarge, aci-gpu-V100) or *"
            raise errors.InvalidParameter("spec", f"{spec_key} is not {what}")
        self.stock[zone].set(spec_key, available, spot=spot)

    def set_exhausted(self, vswitch_id: str, exhausted: bool) -> None:
        if vswitch_id not in self.vswitches:
            raise errors.NotFound(f"vSwitch {vswitch_id} does not exist")
        self.vswitches[vswitch_id].pool.exhausted = exhausted

    def totals(self) -> dict[str, object]:
        """Counts, cost and capacity of the whole cloud (admin API and console)."""
        return simtotals.of(self)

    def reset(self) -> None:
        """Forget every instance, token, fault, stock limit and rate-limit change."""
        for inst in list(self.live.values()):
            self._unindex(inst)
        self.by_tag.clear()
        self.disks.clear()
        self.tokens.clear()
        self._heap.clear()
        self.used_cpu = 0.0
        self.deleted_cost, self.deleted_costs = 0.0, collections.defaultdict[str, float](float)
        self.deleted_count = 0
        for stock in self.stock.values():
            stock.limits.clear()
            stock.in_use.clear()
            stock.spot_out.clear()
        for vswitch in self.vswitches.values():
            vswitch.pool.exhausted = False
        self.faults.by_operation.clear()
        self.limiter.reset()
        self.image_caches.reset()
        self.store.wipe()
