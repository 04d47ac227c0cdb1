"""Fuzz the reconcile loop: one pod's whole life as random events, decided by ``lifecycle.decide``.

What the reconciler does (``vnode/node/reconcile.py``) is modelled here in memory: it asks the
lifecycle, carries out each ask against a small cloud (create is idempotent by the pod's UID, as
ECI's ClientToken makes it; a delete takes a while; look-up and find answer from the cloud's
truth), and applies the final decision (status, memory, release, eviction). Between reconciles,
random events happen in any order: the cloud moves the instance on (running, finished, failed,
gone behind vnode's back), listings come and go, the user deletes the pod (with a grace period,
or by force), the daemon restarts (its memory lost), time passes.

Whatever the order: ``decide`` never raises, a pod never has two live instances, and once the
pod is deleted and the loop runs on, no instance is left and the pod is released or gone. The
Kubernetes side is not modelled beyond the pod object; the real control plane's behaviour is the
node tests' (tests/node).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from vnode import errors, models
from vnode.kube import objects
from vnode.node import book, lifecycle

UID = "uid-fuzz"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
CONFIG = lifecycle.Config(node_ip="10.0.0.1", scheme="eci", started_at=NOW - datetime.timedelta(days=1))
EVENTS = ("reconcile", "reconcile", "reconcile", "list", "tick", "run", "finish", "fail", "vanish", "delete",
          "force", "restart")  # fmt: skip
CREATE_ANSWERS = ("created", "created", "created", "invalid", "missing", "capacity")


def _pod(restart: str) -> objects.Pod:
    body = {
        "metadata": {"name": "web", "namespace": "ns", "uid": UID},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], "restartPolicy": restart,
                 "terminationGracePeriodSeconds": 5},
        "status": {"phase": "Pending"},
    }  # fmt: skip
    return msgspec.convert(body, objects.Pod)


@dataclasses.dataclass
class Instance:
    id: str
    status: models.InstanceStatus
    deleted_at: float | None = None  # the delete was accepted; gone from the cloud 3 s later


@dataclasses.dataclass
class World:
    """The pod, the cloud, vnode's view of them, and the clocks."""

    pod: objects.Pod | None
    moment: float = 100.0
    listed_at: float = 0.0
    cloud: dict[str, Instance] = dataclasses.field(default_factory=dict)
    listed: dict[str, models.InstanceState] = dataclasses.field(default_factory=dict)  # by pod uid: the view
    memory: book.Memory = book.FRESH
    made: int = 0
    released: bool = False

    def state(self, inst: Instance) -> models.InstanceState:
        running = inst.status is models.InstanceStatus.RUNNING
        containers = (models.ContainerStatus("app", models.ContainerState.RUNNING, ready=True),) if running else ()
        if inst.status in (models.InstanceStatus.SUCCEEDED, models.InstanceStatus.FAILED):
            code = 0 if inst.status is models.InstanceStatus.SUCCEEDED else 1
            containers = (models.ContainerStatus("app", models.ContainerState.TERMINATED, exit_code=code),)
        return models.InstanceState(inst.id, inst.status, tags={models.TAG_POD_UID: UID}, containers=containers,
                                    created_at=NOW, started_at=NOW if running else None)  # fmt: skip

    def live(self) -> list[Instance]:
        return [i for i in self.cloud.values() if i.deleted_at is None or self.moment - i.deleted_at < 3]


def _answer(world: World, decision: lifecycle.Decision, how: str) -> lifecycle.Answer:
    """The cloud's answer to an ask, as the provider would give it."""
    if decision.action is lifecycle.Action.CREATE:
        existing = [i for i in world.live() if i.deleted_at is None]
        if existing:  # the create is idempotent: the pod's UID is the client token
            return lifecycle.Created(world.state(existing[0]), world.moment)
        if how == "invalid":
            return lifecycle.Invalid("too big for any size")
        if how == "missing":
            return lifecycle.Missing('secret "s" not found')
        if how == "capacity":
            return lifecycle.NoCapacity(errors.CapacityError("no stock", code="NoStock"))
        world.made += 1
        inst = world.cloud[f"eci-{world.made}"] = Instance(f"eci-{world.made}", models.InstanceStatus.PENDING)
        return lifecycle.Created(world.state(inst), world.moment)
    if decision.action is lifecycle.Action.LOOK_UP:
        found = world.cloud.get(decision.instances[0])
        gone = found is None or found.deleted_at is not None
        return lifecycle.LookedUp(decision.instances[0], None if gone else world.state(found))
    if decision.action is lifecycle.Action.FIND:
        return lifecycle.Found(tuple(i.id for i in world.live()))
    assert decision.action is lifecycle.Action.DELETE
    for instance_id in decision.instances:
        if instance_id in world.cloud and world.cloud[instance_id].deleted_at is None:
            world.cloud[instance_id].deleted_at = world.moment
    return lifecycle.Deleted(decision.instances, world.moment)


def reconcile(world: World, how: str) -> None:
    """One reconcile: decide, carry the asks out, apply the final decision (reconcile.py's way)."""
    facts = lifecycle.Facts(pod=world.pod, uid=UID, state=world.listed.get(UID), memory=world.memory,
                            now=NOW, moment=world.moment, listed_at=world.listed_at)  # fmt: skip
    for _ in range(10):
        decision = lifecycle.decide(facts, CONFIG)
        if decision.action not in lifecycle.ASKS:
            break
        facts = dataclasses.replace(facts, answer=_answer(world, decision, how))
    else:
        raise AssertionError("a reconcile asked more than ten questions")
    if decision.record is not None:
        world.listed[UID] = decision.record
    if decision.forget:
        world.memory = book.FRESH
        world.listed.pop(UID, None)
    elif decision.memory is not None:
        world.memory = decision.memory
    if decision.status is not None and world.pod is not None:
        world.pod.status = msgspec.convert(decision.status, objects.PodStatus)
        world.memory = dataclasses.replace(world.memory, written=decision.status)
    if decision.action is lifecycle.Action.RELEASE:
        world.pod, world.released = None, True
    if decision.action is lifecycle.Action.EVICT and world.pod is not None:
        world.pod.metadata.deletion_timestamp, world.pod.metadata.deletion_grace_period_seconds = "t", 5


def happen(world: World, event: str, how: str) -> None:
    live = [i for i in world.live() if i.deleted_at is None]
    if event == "reconcile":
        reconcile(world, how)
    elif event == "list":  # a complete listing: what the cloud has now
        world.listed_at = world.moment
        now_live = world.live()
        world.listed = {UID: world.state(now_live[0])} if now_live else {}
        for instance_id in [i for i, inst in world.cloud.items() if inst not in world.live()]:
            del world.cloud[instance_id]
    elif event == "tick":
        world.moment += 7
    elif event in ("run", "finish", "fail") and live:
        wanted = {"run": "RUNNING", "finish": "SUCCEEDED", "fail": "FAILED"}[event]
        live[0].status = models.InstanceStatus[wanted]
    elif event == "vanish" and live:
        del world.cloud[live[0].id]
    elif event == "delete" and world.pod is not None and not world.pod.metadata.deletion_timestamp:
        world.pod.metadata.deletion_timestamp, world.pod.metadata.deletion_grace_period_seconds = "t", 5
    elif event == "force" and world.pod is not None:
        world.pod = None  # deleted with --grace-period=0 --force: gone from the API at once
    elif event == "restart":  # the daemon restarts: its memory is gone; the next listing rebuilds the view
        world.memory, world.listed = book.FRESH, {}


@given(
    restart=st.sampled_from(("Always", "OnFailure", "Never")),
    events=st.lists(st.tuples(st.sampled_from(EVENTS), st.sampled_from(CREATE_ANSWERS)), max_size=60),
)
def test_whatever_happens_no_second_instance_and_nothing_left_once_the_pod_is_deleted(
    restart: str, events: list[tuple[str, str]]
) -> None:
    world = World(_pod(restart))
    for event, how in events:
        happen(world, event, how)
        live = [i.id for i in world.cloud.values() if i.deleted_at is None]
        assert len(live) <= 1, f"two live instances for one pod: {live} after {event}"
    if world.pod is not None and not world.pod.metadata.deletion_timestamp:
        happen(world, "delete", "created")
    for _ in range(40):  # the loop runs on: reconciles, listings, time
        for event in ("reconcile", "list", "tick", "reconcile"):
            happen(world, event, "created")
    left: dict[str, Any] = {i.id: i.status for i in world.cloud.values()}
    assert left == {}, f"instances left after the pod was deleted: {left} (events {events})"
    assert world.pod is None, "the deleted pod was never released"
