"""Lifecycle as data: profiles of stage delays and failure rates, and the one function that moves an
instance through its stages.

An instance is a small state machine whose next step is due at ``next_at`` (simulated time):

    schedule ─► pulled ─► create ─► start ─► running ─► done
       │           │                            │ ▲ (restart policy: run again after back-off)
       ▼           ▼                            └─┘
    ScheduleFailed Failed (image pull: ACI;   Succeeded | Failed | Expired
                   ECI pulls again, pulls.py)
    delete at any point: Terminating ─► gone

Nothing waits or sleeps: the cloud keeps a heap of ``next_at`` and calls ``run_due`` for the
instances whose time has come. Each step draws its randomness from a generator keyed by the
cloud seed, the instance's sequence number and the step, so a trace depends only on the seed,
the profile and the clock, never on how calls interleave. That is what the golden tests check.
The generator (``Draws``) is a hash of that key and splitmix64, not ``random.Random`` (~12 µs
to seed, about ten seeds a create). A step whose rate or jitter is zero draws nothing at all.
Tags override the profile for one instance (``OVERRIDE_TAGS``): a fixed start delay, an exit
code, a run time, or a forced failure at a given stage.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec
import pydantic

from vnode.cloudsim import errors, hooks, model, pulls, spot, workloads

TAG_DELAY = "cloudsim/delay"
TAG_EXIT_CODE = "cloudsim/exit-code"
TAG_RUN_SECONDS = "cloudsim/run-seconds"
TAG_FAIL = "cloudsim/fail"
OVERRIDE_TAGS = (TAG_DELAY, TAG_EXIT_CODE, TAG_RUN_SECONDS, TAG_FAIL)

Rate = Annotated[float, pydantic.Field(ge=0.0, le=1.0)]
_MASK64 = (1 << 64) - 1


class Draws:
    """Uniform draws for one step of one instance: splitmix64 from a 64-bit key (a hash of the
    seed, instance and step). Deterministic across runs and Python versions, and cheap to make."""

    __slots__ = ("_state",)

    def __init__(self, key: str) -> None:
        self._state = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")

    def random(self) -> float:
        """A float in [0, 1)."""
        self._state = z = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return ((z ^ (z >> 31)) >> 11) * (1.0 / (1 << 53))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()


class Delay(pydantic.BaseModel):
    """``base`` seconds, plus or minus up to ``jitter`` (uniform), never below zero."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    base: float = pydantic.Field(default=0.0, ge=0.0)
    jitter: float = pydantic.Field(default=0.0, ge=0.0)

    def draw(self, rng: Draws) -> float:
        if not self.jitter:
            return self.base
        return max(0.0, self.base + rng.uniform(-self.jitter, self.jitter))


class Profile(pydantic.BaseModel):
    """How instances of this world behave over time. Validated: a typo in a profile file fails loudly."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    name: str
    schedule: Delay = Delay()
    pull: Delay = Delay()
    #: MB per second of an image pull on top of ``pull`` (None: ``pull`` alone, whatever the size).
    pull_mb_per_second: float | None = pydantic.Field(default=None, gt=0.0)
    #: The pull of an instance whose images come from a matched image cache.
    cached_pull: Delay = Delay()
    create: Delay = Delay()
    start: Delay = Delay()
    restart: Delay = Delay()
    terminate: Delay = Delay()
    backoff_base: float = pydantic.Field(default=10.0, gt=0.0)  # crash-loop back-off doubles from here
    backoff_max: float = pydantic.Field(default=300.0, gt=0.0)
    fail_schedule_rate: Rate = 0.0
    fail_pull_rate: Rate = 0.0
    fail_start_rate: Rate = 0.0
    expire_rate: Rate = 0.0
    expire_after: Delay = Delay(base=600.0)
    access_log_interval: float = pydantic.Field(default=10.0, gt=0.0)
    # Conformance runs (virtual-kubelet's e2e suite names images foo, bar, baz): every image pulls,
    # as virtual-kubelet's mock provider runs any; one outside the catalog runs until stopped.
    any_image: bool = False
    spot_notice: float = pydantic.Field(default=180.0, ge=0.0)  # SpotToBeReleased this long before release


PROFILES: dict[str, Profile] = {
    "fast": Profile(name="fast", backoff_base=1.0, backoff_max=10.0),
    "realistic": Profile(
        name="realistic",
        schedule=Delay(base=1.0, jitter=0.5),
        # ECI publishes 50 s for a 386 MB image from Docker Hub, and 5 s from an image cache.
        pull=Delay(base=2.0, jitter=1.0),
        pull_mb_per_second=8.0,
        cached_pull=Delay(base=3.0, jitter=1.0),
        create=Delay(base=1.0, jitter=0.5),
        start=Delay(base=3.0, jitter=1.0),
        restart=Delay(base=3.0, jitter=1.0),
        terminate=Delay(base=2.0, jitter=1.0),
    ),
    "chaos": Profile(
        name="chaos",
        schedule=Delay(base=0.5, jitter=0.5),
        pull=Delay(base=8.0, jitter=6.0),
        create=Delay(base=0.5, jitter=0.5),
        start=Delay(base=1.0, jitter=1.0),
        restart=Delay(base=1.0, jitter=1.0),
        terminate=Delay(base=1.0, jitter=1.0),
        backoff_base=2.0,
        backoff_max=60.0,
        fail_schedule_rate=0.05,
        fail_pull_rate=0.05,
        fail_start_rate=0.1,
        expire_rate=0.05,
        expire_after=Delay(base=120.0, jitter=60.0),
    ),
}


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or one from a JSON file."""
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    path = pathlib.Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown profile {name_or_path!r}: use one of {', '.join(PROFILES)} or a JSON file")
    return Profile.model_validate(json.loads(path.read_text()))


class Overrides(pydantic.BaseModel):
    """Per-instance overrides read from tags."""

    model_config = pydantic.ConfigDict(frozen=True)
    delay: float | None = pydantic.Field(default=None, ge=0.0)
    exit_code: int | None = pydantic.Field(default=None, ge=0, le=255)
    run_seconds: float | None = pydantic.Field(default=None, ge=0.0)
    fail: Literal["schedule", "pull", "start"] | None = None

    @classmethod
    def from_tags(cls, tags: tuple[model.Tag, ...]) -> Overrides:
        raw = {tag.key: tag.value for tag in tags if tag.key in OVERRIDE_TAGS}
        if not raw:
            return _NO_OVERRIDES
        try:
            fields = {"delay": TAG_DELAY, "exit_code": TAG_EXIT_CODE, "run_seconds": TAG_RUN_SECONDS, "fail": TAG_FAIL}
            return cls.model_validate({name: raw[tag] for name, tag in fields.items() if tag in raw})
        except pydantic.ValidationError as exc:
            problem = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise errors.InvalidParameter("Tag", f"bad cloudsim override tag ({problem})") from exc


_NO_OVERRIDES = Overrides()


class Lifecycle:
    """Moves instances through their stages under one profile and seed."""

    def __init__(self, profile: Profile, seed: int) -> None:
        self.profile = profile
        self.seed = seed
        # Whether the cloud has run out of stock of a running instance's size in its zone (set by the cloud).
        self.out_of_stock: Callable[[model.Instance], bool] = lambda inst: False

    def rng(self, inst: model.Instance, step: str) -> Draws:
        """The random source of one step of one instance: seed, instance, step and restarts decide it."""
        restarts = sum(c.restart_count for c in inst.containers)
        return Draws(f"{self.seed}/{inst.seq}/{step}/{restarts}")

    def delay(self, inst: model.Instance, step: str, delay: Delay) -> float:
        """``delay`` drawn for this step (no draw when it has no jitter)."""
        return delay.draw(self.rng(inst, step)) if delay.jitter else delay.base

    def chance(self, inst: model.Instance, step: str, rate: float) -> bool:
        """True with probability ``rate`` for this step (no draw when the rate is zero)."""
        return rate > 0.0 and self.rng(inst, step).random() < rate

    # -- entry points ------------------------------------------------------------------------

    def begin(self, inst: model.Instance, now: float) -> None:
        """A new instance: Scheduling, first step due after the schedule delay."""
        inst.containers = [model.ContainerState(name=c.name) for c in inst.spec.containers]
        _set_status(inst, model.SCHEDULING, now)
        inst.changed_at = now
        inst.stage = "schedule"
        inst.next_at = now + self.delay(inst, "schedule", self.profile.schedule)

    def run_due(self, inst: model.Instance, now: float) -> bool:
        """Apply every step due at or before ``now``; True if anything changed."""
        changed = False
        for _ in range(10_000):  # a guard: every step moves time forward or ends the loop
            due = inst.next_at
            if due is None or due > now:
                break
            if inst.stage != "schedule" or spot.bid(inst, due):  # a spot price limit below the market waits
                self._step(inst, due)
            inst.changed_at = due
            changed = True
        return changed

    def delete(self, inst: model.Instance, now: float) -> None:
        """Deletion asked: Terminating now (billing stops), gone after the terminate delay or once
        the preStop hooks ran (at most the grace period), whichever is later."""
        hooks_seconds = hooks.pre_stop(inst, now)
        for container in inst.containers:
            if container.current.state == "Running":
                _event(inst, now, "Normal", "Killing", f"Stopping container {container.name}")
        _stop_billing(inst, now)
        _set_status(inst, model.TERMINATING, now)
        inst.changed_at = now
        inst.stage = "gone"
        inst.next_at = now + max(hooks_seconds, self.delay(inst, "terminate", self.profile.terminate))
        inst.expire_at = None

    def restart(self, inst: model.Instance, now: float) -> None:
        """RestartContainerGroup: kill every container, then create and start them again."""
        if inst.status != model.RUNNING:
            raise errors.IncorrectStatus(
                f"The current status of the resource does not support this operation: {inst.status}"
            )
        for container in inst.containers:
            _event(inst, now, "Normal", "Killing", f"Stopping container {container.name}")
            _finish_run(container, now, 137, "Error")
            container.previous, container.current = container.current, model.Run(reason="ContainerCreating")
            container.restart_count += 1
            container.ends_at = container.restart_at = None
            container.done = False
        _set_status(inst, model.RESTARTING, now)
        inst.changed_at = now
        inst.stage = "create"
        inst.next_at = now + self.delay(inst, "restart", self.profile.restart)

    def update(self, inst: model.Instance, volumes: tuple[model.Volume, ...], now: float) -> None:
        """UpdateContainerGroup of volumes: only Pending or Running instances; the named volumes' contents are
        replaced, and a running instance is Updating for a short stage, then Running again."""
        if inst.status not in (model.PENDING, model.RUNNING):
            raise errors.IncorrectStatus(
                f"The current status of the resource does not support this operation: {inst.status}"
            )
        new = {v.name: v for v in volumes}
        unknown = new.keys() - {v.name for v in inst.spec.volumes}
        if unknown:
            raise errors.InvalidParameter("Volume.N.Name", f"no such volume: {', '.join(sorted(unknown))}")
        kept = tuple(new.get(v.name, v) for v in inst.spec.volumes)
        inst.spec = msgspec.structs.replace(inst.spec, volumes=kept)
        inst.changed_at = now
        _event(inst, now, "Normal", "Updating", f"Updating volumes {', '.join(sorted(new))}")
        if inst.status == model.RUNNING:
            inst.resume = (inst.stage, inst.next_at)
            _set_status(inst, model.UPDATING, now)
            inst.stage, inst.next_at = "update", now + self.delay(inst, "update", self.profile.create)

    def stop(self, inst: model.Instance, now: float) -> None:
        """ACI's stop: every running container is killed, billing stops, nothing is due until started."""
        if inst.status == model.TERMINATING:
            raise errors.IncorrectStatus(
                f"The current status of the resource does not support this operation: {inst.status}"
            )
        for container in inst.containers:
            if container.current.state == "Running":
                _event(inst, now, "Normal", "Killing", f"Stopping container {container.name}")
                _finish_run(container, now, 137, "Stopped")
            container.ready = False
            container.done = True
            container.ends_at = container.restart_at = None
        _stop_billing(inst, now)
        _set_status(inst, model.STOPPED, now)
        inst.changed_at = now
        inst.stage, inst.next_at, inst.expire_at = "stopped", None, None

    def start(self, inst: model.Instance, now: float) -> None:
        """ACI's start of a stopped (or finished) group: scheduled, pulled and started again."""
        for container in inst.containers:
            if container.current.started_at:
                container.previous = container.current
            container.current = model.Run(reason="ContainerCreating")
            container.ready = container.done = False
            container.ends_at = container.restart_at = None
        _set_status(inst, model.SCHEDULING, now)
        inst.changed_at = now
        inst.stage = "schedule"
        inst.next_at = now + self.delay(inst, "schedule", self.profile.schedule)

    def pull_seconds(self, inst: model.Instance, t: float) -> float:
        """How long the instance's pull takes: from its image cache, or by its images' size."""
        profile = self.profile
        if inst.image_cache_id:
            message = (
                f"Successfully hit image cache {inst.image_cache_id}, eci will be scheduled with this image cache."
            )
            _event(inst, t, "Normal", "SuccessfulHitImageCache", message)
            return self.delay(inst, "pull", profile.cached_pull)
        seconds = self.delay(inst, "pull", profile.pull)
        if profile.pull_mb_per_second:
            images = [c.image for c in (*inst.spec.init_containers, *inst.spec.containers)]
            seconds += sum(workloads.image_megabytes(image) for image in set(images)) / profile.pull_mb_per_second
        return seconds

    # -- the steps ---------------------------------------------------------------------------

    def _step(self, inst: model.Instance, t: float) -> None:
        over = Overrides.from_tags(inst.spec.tags)
        stage = inst.stage
        if stage == "schedule":
            if over.fail == "schedule" or self.chance(inst, "schedule-fail", self.profile.fail_schedule_rate):
                _event(inst, t, "Warning", "FailedScheduling", "no node with enough resources in the zone")
                self._end(inst, t, model.SCHEDULE_FAILED)
                return
            _set_status(inst, model.PENDING, t)
            for spec in inst.spec.containers:
                _event(inst, t, "Normal", "Pulling", f'Pulling image "{spec.image}"')
            inst.bill_from = t
            pull = over.delay if over.delay is not None else self.pull_seconds(inst, t)
            inst.stage, inst.next_at = "pulled", t + pull
        elif stage == "pulled":
            if self._pull_failed(inst, t, over):
                return
            for spec in inst.spec.containers:
                took = t - (inst.bill_from or t)
                _event(inst, t, "Normal", "Pulled", f'Successfully pulled image "{spec.image}" in {took:.3f}s')
            delay = 0.0 if over.delay is not None else self.delay(inst, "create", self.profile.create)
            inst.stage, inst.next_at = "create", t + delay
        elif stage == "create":
            for spec in inst.spec.containers:
                _event(inst, t, "Normal", "Created", f"Created container {spec.name}")
            delay = 0.0 if over.delay is not None else self.delay(inst, "start", self.profile.start)
            inst.stage, inst.next_at = "start", t + delay
        elif stage == "start":
            for index in range(len(inst.containers)):
                self._start_run(inst, index, t, over)
            _set_status(inst, model.RUNNING, t)
            if not inst.started_at:
                inst.started_at = t
            if inst.expire_at is None and self.profile.expire_rate > 0.0:
                rng = self.rng(inst, "expire")
                if rng.random() < self.profile.expire_rate:
                    inst.expire_at = t + self.profile.expire_after.draw(rng)
            inst.stage = "running"
            self._schedule_next(inst)
        elif stage == "running":
            self._running(inst, t, over)
        elif stage == "update":
            _set_status(inst, model.RUNNING, t)
            _event(inst, t, "Normal", "Updated", "Volumes updated")
            inst.stage, inst.next_at = inst.resume or ("running", t)
            inst.resume = None
        elif stage == "gone":
            inst.next_at = None  # the cloud removes it
        else:
            inst.next_at = None

    def _pull_failed(self, inst: model.Instance, t: float, over: Overrides) -> bool:
        """Whether the pull failed (see pulls.py). The profile's fault rate fails a first pull only."""
        unlucky = not inst.pull_failures and self.chance(inst, "pull-fail", self.profile.fail_pull_rate)
        p = self.profile
        outcome = pulls.attempt(inst, t, forced=over.fail == "pull" or unlucky, any_image=p.any_image,
                                backoff=(p.backoff_base, p.backoff_max))  # fmt: skip
        if outcome == "failed":
            self._end(inst, t, model.FAILED)
        return outcome != "pulled"

    def _running(self, inst: model.Instance, t: float, over: Overrides) -> None:
        if inst.spot_check_at is not None and inst.spot_check_at <= t:
            spot.check(inst, t, self.profile.spot_notice, no_stock=self.out_of_stock(inst))
        if inst.expire_at is not None and inst.expire_at <= t:
            if inst.noticed_at is None:
                _event(inst, t, "Warning", "SpotToBeReleased", "the spot instance is reclaimed")
            for container in inst.containers:
                if container.current.state == "Running":
                    _finish_run(container, t, 137, "Expired")
            self._end(inst, t, model.EXPIRED)
            return
        policy = inst.spec.restart_policy
        for index, container in enumerate(inst.containers):
            if container.ends_at is not None and container.ends_at <= t:
                unlucky = self.chance(inst, f"exit-{index}", self.profile.fail_start_rate)
                code = 137 if container.killed else _exit_code(inst, index, over, unlucky)
                said = hooks.message(inst, index, container.current, code, t, interval=self.profile.access_log_interval)
                _finish_run(container, t, code, "Completed" if code == 0 else "Error", said)
                container.ends_at, container.killed = None, False
                if policy == "Always" or (policy == "OnFailure" and code != 0):
                    backoff = min(self.profile.backoff_max, self.profile.backoff_base * 2**container.restart_count)
                    if code != 0:
                        _event(inst, t, "Warning", "BackOff", f"Back-off restarting failed container {container.name}")
                    container.previous = container.current
                    said = f"back-off {backoff:g}s restarting failed container={container.name}" if code else ""
                    container.current = model.Run(reason="CrashLoopBackOff" if code else "Completed", message=said)
                    container.restart_at = t + backoff
                else:
                    container.done = True
            elif container.restart_at is not None and container.restart_at <= t:
                container.restart_at, container.restart_count = None, container.restart_count + 1
                _event(inst, t, "Normal", "Created", f"Created container {container.name}")
                self._start_run(inst, index, t, over)
        if all(c.done for c in inst.containers):
            ok = all(c.current.exit_code == 0 for c in inst.containers)
            self._end(inst, t, model.SUCCEEDED if ok else model.FAILED)
            return
        self._schedule_next(inst)

    def _start_run(self, inst: model.Instance, index: int, t: float, over: Overrides) -> None:
        spec, container = inst.spec.containers[index], inst.containers[index]
        behaviour = workloads.behaviour(spec.image, spec.command, spec.args, inst.environment(spec))
        run_seconds = behaviour.run_seconds
        if over.run_seconds is not None or over.exit_code is not None:
            run_seconds = over.run_seconds if over.run_seconds is not None else 0.0
        if over.fail == "start" or self.chance(inst, f"start-fail-{index}", self.profile.fail_start_rate):
            run_seconds = min(run_seconds, 1.0) if run_seconds is not None else 1.0
        container.current = model.Run(state="Running", reason="", started_at=t)
        container.ready = True
        container.ends_at = t + run_seconds if run_seconds is not None else None
        _event(inst, t, "Normal", "Started", f"Started container {spec.name}")
        if not hooks.post_start(inst, index, t):
            container.ends_at, container.killed, container.ready = t, True, False

    def _schedule_next(self, inst: model.Instance) -> None:
        times = [c.ends_at for c in inst.containers if c.ends_at is not None]
        times += [c.restart_at for c in inst.containers if c.restart_at is not None]
        times += [at for at in (inst.expire_at, inst.spot_check_at) if at is not None]
        inst.next_at = min(times) if times else None

    def _end(self, inst: model.Instance, t: float, status: str) -> None:
        _stop_billing(inst, t)
        _set_status(inst, status, t)
        if status == model.SUCCEEDED:
            inst.succeeded_at = t
        else:
            inst.failed_at = t
        for container in inst.containers:
            container.ready = False
            container.done = True
            container.restart_at = container.ends_at = None
        inst.stage, inst.next_at, inst.expire_at, inst.spot_check_at = "done", None, None, None


def _exit_code(inst: model.Instance, index: int, over: Overrides, unlucky: bool) -> int:
    """The exit code of a run that ended; ``unlucky`` (the profile's start-failure draw) turns a 0 into 1."""
    if over.fail == "start":
        return 1
    if over.exit_code is not None:
        return over.exit_code
    spec = inst.spec.containers[index]
    code = workloads.behaviour(spec.image, spec.command, spec.args, inst.environment(spec)).exit_code
    if code == 0 and unlucky:
        return 1
    return code


def _finish_run(container: model.ContainerState, t: float, code: int, reason: str, message: str = "") -> None:
    run = container.current
    container.current = model.Run(
        state="Terminated",
        reason=reason,
        message=message,
        started_at=run.started_at or t,
        finished_at=t,
        exit_code=code,
    )
    container.ready = False


def _stop_billing(inst: model.Instance, t: float) -> None:
    if inst.bill_from is not None:
        inst.billed_seconds += max(0.0, t - inst.bill_from)
        inst.bill_from = None


def _set_status(inst: model.Instance, status: str, t: float) -> None:
    if inst.status != status or not inst.status_at:
        inst.status = status
        inst.status_at = t


def _event(inst: model.Instance, t: float, kind: str, reason: str, message: str) -> None:
    inst.record(t, kind, reason, message)


def event(inst: model.Instance, t: float, kind: str, reason: str, message: str) -> None:
    """Record an event on ``inst`` (the cloud uses it for NoStock warnings at placement)."""
    inst.record(t, kind, reason, message)
