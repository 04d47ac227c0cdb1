"""A failed image pull, each cloud's way: ECI keeps the instance Pending and pulls again with
back-off until its maximum pending time; ACI fails the group at once; a passing registry fault
(the profile's rate) fails the first pull only."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from tests.cloudsim import inproc
from vnode.cloudsim import cloud, lifecycle, model, pulls

ECI = pulls.ECI_MAX_PENDING_SECONDS
Make = Callable[[lifecycle.Profile], cloud.Cloud]


@pytest.fixture
def make(tmp_path: pathlib.Path) -> Iterator[Make]:
    made: list[cloud.Cloud] = []

    def build(profile: lifecycle.Profile) -> cloud.Cloud:
        sim = inproc.in_process(tmp_path / f"{len(made)}.db", profile=profile)
        made.append(sim)
        return sim

    yield build
    for sim in made:
        sim.store.close()


def _create(sim: cloud.Cloud, image: str, *, max_pending: float) -> model.Instance:
    vswitches = tuple(v[0] for v in sim.world.vswitches)
    spec = model.InstanceSpec(
        name="p",
        containers=(model.ContainerSpec(name="main", image=image),),
        vswitch_ids=vswitches,
        security_group_id=sim.world.security_groups[0][0],
        restart_policy="Never",
        max_pending_seconds=max_pending,
    )
    return sim.create(spec)


def test_a_passing_registry_fault_fails_the_first_pull_and_the_next_one_runs(make: Make) -> None:
    sim = make(lifecycle.Profile(name="flaky", fail_pull_rate=1.0, backoff_base=5.0))
    inst = _create(sim, "nginx", max_pending=ECI)
    sim.advance(1)
    assert (inst.status, inst.containers[0].current.reason) == (model.PENDING, "ErrImagePull")
    sim.advance(5)
    assert inst.status == model.RUNNING
    assert [e.reason for e in inst.events if e.type == "Warning"] == ["Failed", "BackOff"]
    assert inst.billable_seconds(sim.now()) == pytest.approx(6, abs=0.01), "billed from the first pull"


def test_on_aci_a_failed_pull_fails_the_group_at_once(make: Make) -> None:
    sim = make(lifecycle.PROFILES["fast"])
    inst = _create(sim, "registry.example.com/team/nope:1", max_pending=0)
    sim.advance(1)
    assert (inst.status, inst.containers[0].current.reason) == (model.FAILED, "ErrImagePull")


def test_on_eci_an_image_that_never_pulls_is_billed_pending_until_its_maximum_pending_time(make: Make) -> None:
    sim = make(lifecycle.Profile(name="slow-backoff", backoff_base=10.0, backoff_max=300.0))
    inst = _create(sim, "registry.example.com/team/nope:1", max_pending=600)
    sim.advance(100)
    assert inst.status == model.PENDING
    assert inst.pull_failures == 4, "pulled at 0, 10, 30 and 70 s: the back-off doubles"
    assert inst.containers[0].current.reason == "ImagePullBackOff"
    sim.advance(1000)
    assert inst.status == model.FAILED
    assert inst.events[-1].reason == pulls.PENDING_TIMEOUT
    assert inst.billable_seconds(sim.now()) == pytest.approx(600, abs=0.01), "billed while Pending, to the timeout"
