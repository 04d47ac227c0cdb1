"""The fake provider honours the provider contract that the node controller relies on."""

from __future__ import annotations

import pathlib

import pytest

from vnode import errors, models
from vnode.provider import base, registry
from vnode.provider.fake import provider as fake


def spec(token: str = "tok-1", **tags: str) -> models.InstanceSpec:
    return models.InstanceSpec(
        name="p",
        client_token=token,
        containers=(models.ContainerSpec(name="c", image="nginx"),),
        cpu=2,
        memory_gib=4,
        tags={models.TAG_CLUSTER: "c1", models.TAG_NODE: "n1", **tags},
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_fake_is_a_provider() -> None:
    assert isinstance(fake.FakeProvider(), base.Provider)


async def test_create_is_idempotent_by_client_token() -> None:
    cloud = fake.FakeProvider()
    first = await cloud.create(spec())
    again = await cloud.create(spec())
    assert first.id == again.id
    assert len(cloud.instances()) == 1


async def test_state_follows_the_clock() -> None:
    clock = Clock()
    cloud = fake.FakeProvider(fake.Behaviour(start_after=5, exits={"nginx": (10, 0)}), clock=clock)
    made = await cloud.create(spec())
    assert made.status is models.InstanceStatus.PENDING
    clock.now += 5
    assert (await cloud.get(made.id)).status is models.InstanceStatus.RUNNING
    clock.now += 10
    done = await cloud.get(made.id)
    assert done.status is models.InstanceStatus.SUCCEEDED
    assert done.containers[0].exit_code == 0
    assert [e.reason for e in done.events] == ["Pulling", "Pulled", "Created", "Started"]


async def test_list_filters_by_every_tag() -> None:
    cloud = fake.FakeProvider()
    await cloud.create(spec("a"))
    await cloud.create(spec("b", **{models.TAG_NODE: "n2"}))
    found = await cloud.list({models.TAG_CLUSTER: "c1", models.TAG_NODE: "n1"})
    assert len(found) == 1


async def test_throttling_gives_a_retry_hint() -> None:
    clock = Clock()
    cloud = fake.FakeProvider(fake.Behaviour(throttle_burst=1, throttle_refill=2), clock=clock)
    cloud._tokens = 1
    await cloud.create(spec("a"))
    with pytest.raises(errors.Throttled) as caught:
        await cloud.create(spec("b"))
    assert caught.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    await cloud.create(spec("b"))


async def test_stock_out_fails_over_then_raises_capacity_error() -> None:
    cloud = fake.FakeProvider(fake.Behaviour(stock_out={"vsw-a"}))
    s = models.InstanceSpec(
        name="p",
        client_token="t",
        containers=(),
        cpu=1,
        memory_gib=2,
        placement=models.Placement(vswitches=("vsw-a", "vsw-b")),
    )
    made = await cloud.create(s)
    assert made.vswitch == "vsw-b"
    cloud.behaviour.stock_out.add("vsw-b")
    with pytest.raises(errors.CapacityError):
        await cloud.create(
            models.InstanceSpec(name="q", client_token="u", containers=(), cpu=1, memory_gib=2, placement=s.placement)
        )


async def test_delete_of_a_missing_instance_succeeds() -> None:
    cloud = fake.FakeProvider()
    await cloud.delete("nope", grace_seconds=0)
    with pytest.raises(errors.NotFound):
        await cloud.get("nope")


def test_registry_finds_builtins_and_refuses_unknown_names() -> None:
    assert registry.load("fake") is fake.create
    with pytest.raises(errors.ConfigError, match="--provider=nope"):
        registry.load("nope")


async def test_a_reclaimed_instance_gives_notice_then_expires_and_survives_a_restart(tmp_path: pathlib.Path) -> None:
    clock = Clock()
    state_file = tmp_path / "fake.json"
    cloud = fake.FakeProvider(clock=clock, state_file=state_file)
    made = await cloud.create(spec())
    cloud.reclaim(made.id, notice=30)
    noticed = await cloud.get(made.id)
    assert noticed.status is models.InstanceStatus.RUNNING
    assert noticed.interruptible
    [event] = [e for e in noticed.events if e.notice is models.Notice.RECLAIM]
    assert (event.type, event.reason) == (models.EventType.WARNING, "Reclaim")
    clock.now += 30
    gone = await fake.FakeProvider(clock=clock, state_file=state_file).get(made.id)
    assert gone.status is models.InstanceStatus.EXPIRED
    assert gone.reason == "Reclaimed"
    assert [(c.state, c.exit_code) for c in gone.containers] == [(models.ContainerState.TERMINATED, 137)]
    assert gone.finished_at is not None
