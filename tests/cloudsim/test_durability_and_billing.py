"""Billing by the second on the rounded spec, and state that survives ``kill -9``."""

from __future__ import annotations

import pathlib

import pytest
from alibabacloud_eci20180808 import models as m

from tests.cloudsim.conftest import Sim, container, create_request, running, tags
from vnode.cloudsim import catalog


def test_16_vcpu_job_running_120_simulated_seconds_costs_the_formula(sim: Sim) -> None:
    job = container("job", "busybox", "sleep", "120")
    request = create_request(sim, "big-job", job, cpu=16.0, memory=32.0, restart_policy="Never")
    group_id = sim.client().create_container_group(request).body.container_group_id
    sim.advance(60)
    assert sim.admin("GET", f"instances/{group_id}")[1]["status"] == "Running"
    sim.advance(600)  # long after it ended: billing stopped at Succeeded
    record = sim.admin("GET", f"instances/{group_id}")[1]
    assert record["status"] == "Succeeded"
    assert record["billable_seconds"] == pytest.approx(120.0)
    expected = 120 * (16 * 0.0000077 + 32 * 0.00000096)
    assert record["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert sim.totals()["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_billing_uses_the_rounded_spec_and_stops_at_deletion(sim: Sim) -> None:
    eci = sim.client()
    group_id = eci.create_container_group(create_request(sim, "odd", cpu=7.0, memory=13.0)).body.container_group_id
    sim.advance(10)
    eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id))
    sim.advance(100)
    record = sim.admin("GET", f"instances/{group_id}")[1]
    assert (record["cpu"], record["memory"]) == (8.0, 16.0)
    assert record["cost_usd"] == pytest.approx(catalog.Spec(8, 16).usd_per_second() * 10, rel=1e-9)


def test_kill_9_and_restart_keep_every_instance_address_and_cost(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "durable"
    with running(state, profile="fast") as sim:
        eci = sim.client()
        ids = []
        for n in range(30):
            web = create_request(sim, f"w{n}", tag=tags(node="vk-0"), client_token=f"t{n}")
            ids.append(eci.create_container_group(web).body.container_group_id)
        job = create_request(sim, "job", container("j", "busybox", "sleep", "30"), restart_policy="Never")
        ids.append(eci.create_container_group(job).body.container_group_id)
        sim.advance(45)
        for group_id in ids[:5]:
            eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id))
        before = {
            g.container_group_id: (g.status, g.intranet_ip, g.v_switch_id, g.containers[0].restart_count)
            for g in _all(sim)
        }
        costs = {i: sim.admin("GET", f"instances/{i}")[1]["cost_usd"] for i in ids}
        totals = sim.totals()
        sim.kill9()

        sim.start()
        after = {
            g.container_group_id: (g.status, g.intranet_ip, g.v_switch_id, g.containers[0].restart_count)
            for g in _all(sim)
        }
        assert after == before
        assert {i: sim.admin("GET", f"instances/{i}")[1]["cost_usd"] for i in ids} == costs
        again = sim.totals()
        for key in ("live", "deleted", "by_status", "by_tag", "cost_usd", "used_cpu", "vswitches"):
            assert again[key] == totals[key], key
        # A ClientToken used before the crash still names its instance.
        replay = create_request(sim, "w7", tag=tags(node="vk-0"), client_token="t7")
        assert sim.client().create_container_group(replay).body.container_group_id == ids[7]
        # Freed and held addresses are both still known: a new instance gets a fresh address.
        fresh = sim.client().create_container_group(create_request(sim, "new")).body.container_group_id
        held = {ip for _, ip, _, _ in after.values()}
        assert next(g.intranet_ip for g in _all(sim) if g.container_group_id == fresh) not in held


def _all(sim: Sim) -> list[m.DescribeContainerGroupsResponseBodyContainerGroups]:
    eci, groups, token = sim.client(), [], None
    while True:
        body = eci.describe_container_groups(
            m.DescribeContainerGroupsRequest(region_id=sim.region, limit=20, next_token=token)
        ).body
        groups += body.container_groups
        token = body.next_token
        if not token:
            return groups


def test_the_admin_listing_shows_live_instances_by_tag_and_totals_count_calls(sim: Sim) -> None:
    """What the soak reads: the cloud's own record of its live instances, and its calls by operation."""
    eci = sim.client()
    before = sim.totals()
    marked = create_request(sim, "listed", tag=[m.CreateContainerGroupRequestTag(key="team", value="soak")])
    kept = eci.create_container_group(marked).body.container_group_id
    gone = eci.create_container_group(create_request(sim, "unlisted")).body.container_group_id
    eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=gone))
    status, body = sim.admin("GET", "instances?tag=team=soak")
    assert status == 200, body
    assert [(i["id"], i["tags"]) for i in body["instances"]] == [(kept, {"team": "soak"})]
    assert body["instances"][0]["cost_usd"] >= 0
    ids = {i["id"] for i in sim.admin("GET", "instances")[1]["instances"]}
    assert kept in ids
    assert gone not in ids
    after = sim.totals()
    assert after["calls"]["create"] - before["calls"].get("create", 0) == 2
    assert after["calls"]["delete"] - before["calls"].get("delete", 0) == 1
