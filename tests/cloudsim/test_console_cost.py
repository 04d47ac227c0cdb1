"""The console's cost by namespace: live and deleted instances, under the namespace their tags
name in either dialect's spelling, the most expensive first, the tail summed."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.cloudsim import inproc
from vnode.cloudsim import cloud, console, model


@pytest.fixture
def sim(tmp_path: pathlib.Path) -> Iterator[cloud.Cloud]:
    made = inproc.in_process(tmp_path / "c.db", seed=1)
    yield made
    made.store.close()


def _create(sim: cloud.Cloud, name: str, cpu: float, **tags: str) -> model.Instance:
    spec = model.InstanceSpec(
        name=name,
        containers=(model.ContainerSpec(name="main", image="nginx"),),
        vswitch_ids=tuple(v[0] for v in sim.world.vswitches),
        security_group_id=sim.world.security_groups[0][0],
        cpu=cpu,
        memory=2 * cpu,
        tags=tuple(model.Tag(k, v) for k, v in tags.items()),
    )
    return sim.create(spec)


def test_cost_by_namespace_counts_deleted_instances_and_both_tag_spellings(sim: cloud.Cloud) -> None:
    big = _create(sim, "big", 4, **{"vnode.io/namespace": "team-a"})
    _create(sim, "small", 1, **{"vnode.io/namespace": "team-a"})
    aci = _create(sim, "aci", 2, Namespace="team-b")  # ARM's spelling
    _create(sim, "bare", 1)
    sim.advance(100)
    big_cost = sim.cost(big)
    sim.delete(big.id)
    sim.advance(100)  # gone
    rows = {r["namespace"]: r for r in console.build_summary(sim)["namespaces"]}
    assert set(rows) == {"team-a", "team-b", "(none)"}
    assert rows["team-a"]["live"] == 1
    assert rows["team-a"]["cost_usd"] > big_cost, "the deleted instance's cost stays in its namespace"
    assert rows["team-b"]["cost_usd"] == pytest.approx(sim.cost(aci))
    assert console.build_summary(sim)["namespaces"][0]["namespace"] == "team-a", "the most expensive first"


def test_past_twelve_namespaces_the_cheapest_are_summed(sim: cloud.Cloud) -> None:
    for i in range(15):
        _create(sim, f"p{i}", 1 + i % 4, **{"vnode.io/namespace": f"ns-{i:02d}"})
    sim.advance(60)
    rows = console.build_summary(sim)["namespaces"]
    assert len(rows) == console.MAX_NAMESPACES
    assert (rows[-1]["namespace"], rows[-1]["live"]) == ("(4 others)", 4)
    total = sum(r["cost_usd"] for r in rows)
    assert total == pytest.approx(console.build_summary(sim)["cost_usd"])
