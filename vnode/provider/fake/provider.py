"""An in-memory provider that honours the whole contract of ``base.Provider``, for tests.

It keeps instances in a dict and derives their state from the clock (pending, then running,
then optionally finished), so the node controller's behaviour can be tested without a cloud:
idempotent creates by client token, tag filtering, throttling with a token bucket and a
retry hint, 5xx storms (half of them *after* the instance was made, the ambiguous case that
duplicates instances in naive controllers), stock-out per vSwitch with failover, and cloud-side
disappearance, and reclamation with a notice (:meth:`FakeProvider.reclaim`, as a spot
instance is taken back). ``calls`` counts every call by action and outcome, for assertions.

With ``state_file`` the instances are also kept in a JSON file (rewritten atomically after
every change, read at start), so a daemon process can be killed with SIGKILL and restarted
against the same fake cloud: ``vnode run --provider fake`` takes the path from
``VNODE_FAKE_STATE``. One process at a time owns the file.

It is not a simulator of any cloud (that is ``vnode.cloudsim``, spoken to over HTTP).
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import dataclasses
import datetime
import itertools
import pathlib
import random
import time
from collections.abc import Callable, Mapping, Sequence

import msgspec

from vnode import errors, models, settings
from vnode.provider import base
from vnode.provider.fake import profile as fake_profile

__all__ = ["Behaviour", "FakeProvider", "create"]


@dataclasses.dataclass
class Behaviour:
    """How the fake cloud behaves; tests may change fields while it runs."""

    call_latency: float = 0.0  # seconds every create/delete/list takes
    answer_latency: float = 0.0  # seconds a create answers *after* the instance exists (a crash here loses the answer)
    start_after: float = 0.0  # seconds from create to Running
    stop_takes: float = 0.0  # seconds a deleted instance stays listed while its containers stop
    # image -> (seconds of running, exit code): such containers then terminate and the instance ends.
    exits: dict[str, tuple[float, int]] = dataclasses.field(default_factory=dict)
    error_rate: float = 0.0  # fraction of create/delete calls answering Unavailable
    throttle_burst: int | None = None  # token bucket on create/delete; None: unlimited
    throttle_refill: float = 20.0  # tokens per second
    stock_out: set[str] = dataclasses.field(default_factory=set)  # vSwitches (or zones) out of stock
    unreachable: bool = False  # every call raises Unavailable
    quota: models.Quota = dataclasses.field(default_factory=models.Quota)
    fail_next: list[errors.ApiError] = dataclasses.field(default_factory=list)  # raised by the next creates


@dataclasses.dataclass
class _Instance:
    id: str
    spec: models.InstanceSpec
    created: float
    zone: str
    vswitch: str
    ip: str
    reclaim: tuple[float, float] | None = None  # (announced at, taken at): the cloud takes it back


@dataclasses.dataclass
class _Store:
    """What ``state_file`` holds."""

    instances: list[_Instance]
    by_token: dict[str, str]
    next_id: int
    created: list[str]
    deleted: list[str]


class FakeProvider:
    name = "fake"

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        container_id_scheme: str = "fake",
        state_file: pathlib.Path | None = None,
    ) -> None:
        self.behaviour = behaviour or Behaviour()
        self.container_id_scheme = container_id_scheme
        self._clock = clock
        self._rng = rng or random.Random(0)
        self._instances: dict[str, _Instance] = {}
        self._by_token: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._tokens = 0.0
        self._refilled = clock()
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self.deleted: list[str] = []
        self._stopping: dict[str, float] = {}  # instance id -> clock time it is gone
        self.created: list[str] = []
        #: Volume updates applied, in order: (instance id, client token, names of the volumes replaced).
        self.volume_updates: list[tuple[str, str, tuple[str, ...]]] = []
        self._state_file = state_file
        if state_file is not None and state_file.exists():
            self._load(state_file)

    # --- the contract ---

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        await self._enter("create")
        if self.behaviour.fail_next:
            error = self.behaviour.fail_next.pop(0)
            self.calls["create", error.code] += 1
            raise error
        existing = self._by_token.get(spec.client_token)
        if existing is not None and existing in self._instances:
            self.calls["create", "idempotent"] += 1
            return self._state(self._instances[existing])
        ambiguous = self._rng.random() < self.behaviour.error_rate
        if ambiguous and self._rng.random() < 0.5:
            self.calls["create", "ServiceUnavailable"] += 1
            raise errors.Unavailable("fake cloud: 503 before acting", code="ServiceUnavailable")
        zone, vswitch = self._place(spec.placement)
        n = next(self._ids)
        instance = _Instance(
            id=f"{self.container_id_scheme}-{n:08x}",
            spec=spec,
            created=self._clock(),
            zone=zone,
            vswitch=vswitch,
            ip=f"10.{1 + n // 65536 % 200}.{n // 256 % 256}.{n % 256}",
        )
        self._instances[instance.id] = instance
        self._by_token[spec.client_token] = instance.id
        self.created.append(instance.id)
        self._save()
        if self.behaviour.answer_latency:
            await asyncio.sleep(self.behaviour.answer_latency)
        if ambiguous:  # the cloud acted, the answer was lost
            self.calls["create", "ServiceUnavailable"] += 1
            raise errors.Unavailable("fake cloud: 503 after acting", code="ServiceUnavailable")
        self.calls["create", "ok"] += 1
        return self._state(instance)

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        await self._enter("delete")
        if self._rng.random() < self.behaviour.error_rate:
            self.calls["delete", "ServiceUnavailable"] += 1
            raise errors.Unavailable("fake cloud: 503", code="ServiceUnavailable")
        if instance_id in self._instances and instance_id not in self._stopping:
            self.deleted.append(instance_id)
            self._stopping[instance_id] = self._clock() + self.behaviour.stop_takes
            self._expire()
        self.calls["delete", "ok"] += 1

    async def get(self, instance_id: str) -> models.InstanceState:
        await self._enter("get", throttled=False)
        instance = self._instances.get(instance_id)
        if instance is None:
            self.calls["get", "NotFound"] += 1
            raise errors.NotFound(f"fake cloud: no instance {instance_id}")
        self.calls["get", "ok"] += 1
        return self._state(instance)

    async def list(self, tags: Mapping[str, str]) -> Sequence[models.InstanceState]:
        await self._enter("list", throttled=False)
        self.calls["list", "ok"] += 1
        return [
            self._state(i)
            for i in list(self._instances.values())
            if all(i.spec.tags.get(k) == v for k, v in tags.items())
        ]

    async def changes(self, tags: Mapping[str, str], cursor: base.Cursor | None) -> base.Changes:
        """``base.Provider.changes``: every instance, every time (the node tells what changed)."""
        return base.Changes.listing(await self.list(tags))

    async def update_volumes(
        self, instance_id: str, volumes: Sequence[models.VolumeSpec], *, client_token: str
    ) -> None:
        """``base.SupportsVolumeUpdate``: replace the named volumes in the instance's spec."""
        await self._enter("update", throttled=False)
        instance = self._instances.get(instance_id)
        if instance is None or instance_id in self._stopping:
            self.calls["update", "NotFound"] += 1
            raise errors.NotFound(f"fake cloud: no instance {instance_id}")
        if any(token == client_token for _, token, _ in self.volume_updates):
            self.calls["update", "idempotent"] += 1
            return
        new = {v.name: v for v in volumes}
        instance.spec = dataclasses.replace(
            instance.spec, volumes=tuple(new.get(v.name, v) for v in instance.spec.volumes)
        )
        self.volume_updates.append((instance_id, client_token, tuple(new)))
        self.calls["update", "ok"] += 1
        self._save()

    async def quota(self) -> models.Quota:
        await self._enter("quota", throttled=False)
        return self.behaviour.quota

    async def close(self) -> None:
        return None

    # --- for tests ---

    def vanish(self, instance_id: str) -> None:
        """The cloud loses an instance (reclaimed, deleted in the console)."""
        self._instances.pop(instance_id, None)
        self._save()

    def reclaim(self, instance_id: str, *, notice: float) -> None:
        """The cloud takes an instance back ``notice`` seconds from now and says so at once (a
        ``Notice.RECLAIM`` Warning); then it is ``Expired``, its running containers killed (137)."""
        now = self._clock()
        self._instances[instance_id].reclaim = (now, now + notice)
        self._save()

    def instances(self) -> builtins.list[models.InstanceState]:
        self._expire()
        return [self._state(i) for i in self._instances.values()]

    def spec_of(self, instance_id: str) -> models.InstanceSpec:
        return self._instances[instance_id].spec

    # --- inside ---

    def _load(self, path: pathlib.Path) -> None:
        store = msgspec.json.decode(path.read_bytes(), type=_Store)
        self._instances = {i.id: i for i in store.instances}
        self._by_token = dict(store.by_token)
        self._ids = itertools.count(store.next_id)
        self.created, self.deleted = list(store.created), list(store.deleted)

    def _save(self) -> None:
        if self._state_file is None:
            return
        next_id = next(self._ids)
        self._ids = itertools.count(next_id)
        store = _Store(list(self._instances.values()), self._by_token, next_id, self.created, self.deleted)
        temporary = self._state_file.with_suffix(".tmp")
        temporary.write_bytes(msgspec.json.encode(store))
        temporary.replace(self._state_file)

    @classmethod
    def read_state(cls, path: pathlib.Path) -> FakeProvider:
        """A read-only view of a state file (for tests watching a daemon in another process)."""
        view = cls()
        if path.exists():
            view._load(path)
        return view

    def _expire(self) -> None:
        """Deleted instances whose containers have stopped leave the listing."""
        now = self._clock()
        done = [i for i, gone_at in self._stopping.items() if gone_at <= now]
        for instance_id in done:
            self._instances.pop(instance_id, None)
            del self._stopping[instance_id]
        if done:
            self._save()

    async def _enter(self, action: str, *, throttled: bool = True) -> None:
        if self.behaviour.call_latency:
            await asyncio.sleep(self.behaviour.call_latency)
        else:
            await asyncio.sleep(0)
        self._expire()
        if self.behaviour.unreachable:
            self.calls[action, "Unreachable"] += 1
            raise errors.Unavailable("fake cloud: connection refused", code="Unreachable")
        if throttled and self.behaviour.throttle_burst is not None:
            now = self._clock()
            burst = float(self.behaviour.throttle_burst)
            self._tokens = min(burst, self._tokens + (now - self._refilled) * self.behaviour.throttle_refill)
            self._refilled = now
            if self._tokens < 1:
                self.calls[action, "Throttling.User"] += 1
                retry = (1 - self._tokens) / self.behaviour.throttle_refill
                raise errors.Throttled(
                    "fake cloud: request was denied due to flow control", code="Throttling.User", retry_after=retry
                )
            self._tokens -= 1

    def _place(self, placement: models.Placement) -> tuple[str, str]:
        candidates = list(placement.vswitches) or [""]
        if placement.strategy == "VSwitchRandom":
            self._rng.shuffle(candidates)
        for vswitch in candidates:
            zone = f"fake-zone-{vswitch or 'a'}"
            if vswitch not in self.behaviour.stock_out and zone not in self.behaviour.stock_out:
                return zone, vswitch
        raise errors.CapacityError(f"fake cloud: no stock in {', '.join(candidates)}", code="NoStock")

    def _containers(
        self, spec: models.InstanceSpec, now: float, started: float, created_at: datetime.datetime
    ) -> tuple[builtins.list[models.InstanceEvent], builtins.list[models.ContainerStatus], builtins.list[float]]:
        """Each container's events and status from the clock; the times the finished ones ended."""
        events: builtins.list[models.InstanceEvent] = []
        containers: builtins.list[models.ContainerStatus] = []
        finished: builtins.list[float] = []
        for c in spec.containers:
            events.append(
                models.InstanceEvent("Pulling", f'Pulling image "{c.image}"', timestamp=created_at, container=c.name)
            )
            if now < started:
                containers.append(
                    models.ContainerStatus(
                        c.name, models.ContainerState.WAITING, image=c.image, reason="ContainerCreating"
                    )
                )
                continue
            at = _dt(started)
            events += [
                models.InstanceEvent(
                    "Pulled", f'Successfully pulled image "{c.image}"', timestamp=at, container=c.name
                ),
                models.InstanceEvent("Created", f"Created container {c.name}", timestamp=at, container=c.name),
                models.InstanceEvent("Started", f"Started container {c.name}", timestamp=at, container=c.name),
            ]
            exit_rule = self.behaviour.exits.get(c.image)
            if exit_rule is not None and now >= started + exit_rule[0]:
                end = started + exit_rule[0]
                finished.append(end)
                reason = "Completed" if exit_rule[1] == 0 else "Error"
                containers.append(
                    models.ContainerStatus(
                        c.name,
                        models.ContainerState.TERMINATED,
                        image=c.image,
                        exit_code=exit_rule[1],
                        reason=reason,
                        started_at=at,
                        finished_at=_dt(end),
                    )
                )
            else:
                containers.append(
                    models.ContainerStatus(
                        c.name, models.ContainerState.RUNNING, image=c.image, started_at=at, ready=True
                    )
                )
        return events, containers, finished

    def _state(self, instance: _Instance) -> models.InstanceState:
        now = self._clock()
        spec = instance.spec
        started = instance.created + self.behaviour.start_after
        created_at = _dt(instance.created)
        events, containers, finished = self._containers(spec, now, started, created_at)
        if now < started:
            status = models.InstanceStatus.PENDING
        elif containers and len(finished) == len(containers):
            ok = all(c.exit_code == 0 for c in containers)
            status = models.InstanceStatus.SUCCEEDED if ok else models.InstanceStatus.FAILED
        else:
            status = models.InstanceStatus.RUNNING
        reason, message = "", ""
        if instance.reclaim is not None:
            status, reason, message = _reclaimed(instance.reclaim, now, status, events, containers, finished)
        return models.InstanceState(
            id=instance.id,
            status=status,
            tags=dict(spec.tags),
            containers=tuple(containers),
            ip=instance.ip,
            zone=instance.zone,
            vswitch=instance.vswitch,
            created_at=created_at,
            started_at=_dt(started) if now >= started else None,
            finished_at=_dt(max(finished)) if status.value in ("Succeeded", "Failed", "Expired") and finished else None,
            reason=reason,
            message=message,
            events=tuple(events),
            cpu=spec.cpu,
            memory_gib=spec.memory_gib,
            interruptible=instance.reclaim is not None,
        )


def _reclaimed(
    reclaim: tuple[float, float],
    now: float,
    status: models.InstanceStatus,
    events: builtins.list[models.InstanceEvent],
    containers: builtins.list[models.ContainerStatus],
    finished: builtins.list[float],
) -> tuple[models.InstanceStatus, str, str]:
    """An instance the cloud takes back: the notice among its events, then Expired (containers
    still running killed), with the reason and message a pod fails with."""
    announced, taken = reclaim
    events.append(
        models.InstanceEvent(
            "Reclaim",
            f"the fake cloud takes the instance back in {taken - announced:.0f}s",
            type=models.EventType.WARNING,
            timestamp=_dt(announced),
            notice=models.Notice.RECLAIM,
        )
    )
    if now < taken or status is not models.InstanceStatus.RUNNING:
        return status, "", ""
    for i, c in enumerate(containers):
        if c.state is models.ContainerState.RUNNING:
            containers[i] = dataclasses.replace(
                c, state=models.ContainerState.TERMINATED, exit_code=137, reason="Error", ready=False,
                finished_at=_dt(taken),
            )  # fmt: skip
            finished.append(taken)
    return models.InstanceStatus.EXPIRED, "Reclaimed", f"the fake cloud took the instance back at {_dt(taken):%H:%M:%S}"


def _dt(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)


def create(config: settings.Settings) -> FakeProvider:
    """The ``--provider fake`` factory: a well-behaved fake cloud in the daemon's memory.

    For tests of the process: ``VNODE_FAKE_STATE`` (a file keeping the instances across
    restarts), ``VNODE_FAKE_START_AFTER`` and ``VNODE_FAKE_ANSWER_LATENCY`` (seconds).
    """
    own = config.cloud
    if not isinstance(own, fake_profile.FakeSettings):
        raise errors.ConfigError(f"--provider=fake: settings of another provider ({type(own).__name__})")
    behaviour = Behaviour(start_after=own.start_after, answer_latency=own.answer_latency)
    state = pathlib.Path(own.state_file) if own.state_file else None
    return FakeProvider(behaviour, container_id_scheme="fake", state_file=state)
