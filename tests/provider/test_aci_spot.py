"""The ACI provider's Spot groups against the simulator: priced below the list price (vnode's
``SPOT_DISCOUNT``) and counted so in the node's spending, and an eviction (the simulator's admin
API) read as ACI does it: the containers restarted in place and a Warning event, no reclaim notice."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.cloudsim.conftest import Sim
from tests.provider.test_aci import aci_sim, provider, sim, spec
from vnode import cli, models
from vnode.node import spending
from vnode.provider.aci import mapping
from vnode.provider.aci import profile as aci_profile
from vnode.provider.aci import provider as aci

__all__ = ["aci_sim", "provider", "sim"]  # the fixtures, imported to be used here

SPOT = {mapping.PRIORITY: "Spot"}


def _instance_id(sim: Sim, name: str) -> str:
    """The simulator's id of the container group ``name`` (what its admin API takes)."""
    status, body = sim.admin("GET", "instances")
    assert status == 200, body
    return next(row["id"] for row in body["instances"] if row["tags"].get("aci/id", "").endswith(f"/{name}"))


async def test_a_spot_group_is_interruptible_at_the_discounted_price_and_counted_so(
    sim: Sim, provider: aci.AciProvider
) -> None:
    await provider.create(spec("cheap", annotations=SPOT))
    await provider.create(spec("dear"))
    sim.advance(3600)
    cheap, dear = await provider.get("cheap"), await provider.get("dear")
    listed = aci_profile.PROFILE.price(1, 2) * 3600
    assert cheap.interruptible
    assert cheap.hourly_price == pytest.approx(listed * (1 - aci_profile.SPOT_DISCOUNT))
    assert (dear.interruptible, dear.hourly_price) == (False, 0.0)
    assert cheap.started_at is not None
    now = cheap.started_at.timestamp() + 3600
    counted = spending.Spending(aci_profile.PROFILE)
    counted.account([cheap, dear], lambda uid: None, now)
    assert counted.interruptible == 1
    assert counted.saved == pytest.approx(listed * aci_profile.SPOT_DISCOUNT, rel=1e-3)  # an hour of the Spot group
    assert aci_profile.PROFILE.spent(cheap, now) == pytest.approx(listed * (1 - aci_profile.SPOT_DISCOUNT), rel=1e-3)


async def test_an_evicted_spot_group_shows_the_restart_and_a_warning_and_is_no_reclaim(
    sim: Sim, provider: aci.AciProvider
) -> None:
    await provider.create(spec("cheap", annotations=SPOT))
    sim.advance(10)
    before = await provider.get("cheap")
    assert before.status is models.InstanceStatus.RUNNING
    status, body = sim.admin("POST", f"instances/{_instance_id(sim, 'cheap')}/reclaim", {})
    assert status == 200, body
    after = await provider.get("cheap")
    assert after.status is models.InstanceStatus.RUNNING
    (container,) = after.containers
    assert container.state is models.ContainerState.RUNNING
    assert container.restart_count == before.containers[0].restart_count + 1
    assert (container.last_exit_code, container.last_reason) == (137, "SpotEviction")
    assert container.last_started_at == before.containers[0].started_at
    evicted = [e for e in after.events if e.reason == "SpotEviction"]
    assert len(evicted) == 1
    assert evicted[0].type is models.EventType.WARNING
    assert evicted[0].container == ""  # the group's event: the pod's, not one container's
    assert all(e.notice is None for e in after.events)  # restarted in place: the pod is not lost
    assert after.interruptible
    assert after.hourly_price == before.hourly_price > 0


async def test_vnode_cost_on_aci_counts_each_namespace_and_the_spot_groups_saving(
    sim: Sim, provider: aci.AciProvider, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Jobs that run 100 simulated seconds and end: their cost no longer grows with the (real) clock.
    job = ("sleep", "100")
    cheap = spec("cheap", *job, restart="Never", annotations=SPOT, tags={models.TAG_NAMESPACE: "team-spot"})
    dear = spec("dear", *job, restart="Never", tags={models.TAG_NAMESPACE: "team-dear"})
    for job in (cheap, dear):
        await provider.create(job)
    sim.advance(300)
    for key, value in sim.aci_env().items():
        monkeypatch.setenv(key, value)
    assert (
        await asyncio.to_thread(cli.main, ["cost", "--provider", "aci", "--cluster-id", "c1", "--output", "json"]) == 0
    )
    lines = {line["namespace"]: line for line in json.loads(capsys.readouterr().out)["namespaces"]}
    listed = aci_profile.PROFILE.price(1, 2) * 100  # 100 s of a 1 vCPU / 2 GiB group
    assert list(lines) == ["team-dear", "team-spot"]  # the most expensive first
    assert lines["team-dear"]["dollars"] == pytest.approx(listed)
    assert lines["team-dear"]["saved"] == 0.0
    assert lines["team-spot"]["dollars"] == pytest.approx(listed * (1 - aci_profile.SPOT_DISCOUNT))
    assert lines["team-spot"]["saved"] == pytest.approx(listed * aci_profile.SPOT_DISCOUNT)
