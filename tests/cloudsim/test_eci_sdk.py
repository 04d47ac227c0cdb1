"""The official ECI SDK against the simulator: create, describe, page, delete, status, logs, exec, price."""

from __future__ import annotations

import json

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, container, create_request, tags
from tests.waiting import wait_for
from vnode.cloudsim import catalog, workloads


def describe_all(
    eci: Client, sim: Sim, **filters: object
) -> list[m.DescribeContainerGroupsResponseBodyContainerGroups]:
    groups, token = [], None
    while True:
        request = m.DescribeContainerGroupsRequest(region_id=sim.region, limit=20, next_token=token, **filters)
        body = eci.describe_container_groups(request).body
        groups += body.container_groups
        token = body.next_token
        if not token:
            return groups


def describe_one(eci: Client, sim: Sim, group_id: str) -> m.DescribeContainerGroupsResponseBodyContainerGroups:
    request = m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=json.dumps([group_id]))
    (group,) = eci.describe_container_groups(request).body.container_groups
    return group


def test_sdk_creates_pages_past_twenty_and_deletes(sim: Sim, eci: Client) -> None:
    ids = [eci.create_container_group(create_request(sim, f"web-{n}")).body.container_group_id for n in range(25)]
    assert len(set(ids)) == 25
    assert all(i.startswith("eci-") for i in ids)

    first = eci.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=sim.region, limit=20)).body
    assert len(first.container_groups) == 20
    assert first.next_token
    assert first.total_count == 25
    groups = describe_all(eci, sim)
    assert [g.container_group_id for g in groups] == ids
    cidrs = {v["id"]: v["cidr"] for v in sim.vswitches}
    assert all(g.intranet_ip.startswith(cidrs[g.v_switch_id][:5]) for g in groups)
    assert len({g.intranet_ip for g in groups}) == 25

    for group_id in ids:
        eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id))
    assert describe_all(eci, sim) == []
    assert sim.totals()["deleted"] == 25


def test_describe_filters_by_name_tag_status_zone_and_vswitch(sim: Sim, eci: Client) -> None:
    a, b = sim.vswitches[0], sim.vswitches[1]
    one = eci.create_container_group(create_request(sim, "one", tag=tags(node="n1"), v_switch_id=a["id"]))
    eci.create_container_group(create_request(sim, "two", tag=tags(node="n2"), v_switch_id=b["id"]))
    eci.create_container_group(
        create_request(sim, "three", container("c", "busybox", "sh", "-c", "exit 0"), restart_policy="Never")
    )
    sim.advance(1)
    by_tag = describe_all(eci, sim, tag=[m.DescribeContainerGroupsRequestTag(key="node", value="n1")])
    assert [g.container_group_id for g in by_tag] == [one.body.container_group_id]
    everything = json.dumps([g.container_group_id for g in describe_all(eci, sim)])
    both = describe_all(
        eci, sim, container_group_ids=everything, tag=[m.DescribeContainerGroupsRequestTag(key="node", value="n1")]
    )
    assert [g.container_group_id for g in both] == [one.body.container_group_id]
    assert [g.container_group_name for g in describe_all(eci, sim, container_group_name="two")] == ["two"]
    assert [g.container_group_name for g in describe_all(eci, sim, status="Succeeded")] == ["three"]
    assert {g.container_group_name for g in describe_all(eci, sim, zone_id=b["zone"])} == {"two"}
    assert {g.container_group_name for g in describe_all(eci, sim, v_switch_id=a["id"])} == {"one", "three"}


def test_statuses_progress_as_the_profile_says(realistic_sim: Sim) -> None:
    sim, eci = realistic_sim, realistic_sim.client()
    request = create_request(
        sim, "job", container("job", "busybox", "sleep", "60"), restart_policy="Never", cpu=16.0, memory=32.0
    )
    group_id = eci.create_container_group(request).body.container_group_id
    seen = [describe_one(eci, sim, group_id).status]
    for _ in range(120):
        sim.advance(1)
        status = describe_one(eci, sim, group_id).status
        if status != seen[-1]:
            seen.append(status)
    assert seen == ["Scheduling", "Pending", "Running", "Succeeded"]
    group = describe_one(eci, sim, group_id)
    assert [e.reason for e in group.events] == ["Pulling", "Pulled", "Created", "Started"]
    started = group.containers[0].current_state
    assert started.state == "Terminated"
    assert started.exit_code == 0


def test_bulk_status_by_node_tag_pages_and_polls_changes(sim: Sim, eci: Client) -> None:
    for n in range(7):
        eci.create_container_group(create_request(sim, f"p{n}", tag=tags(node="vk-0")))
    eci.create_container_group(create_request(sim, "other", tag=tags(node="vk-1")))
    sim.advance(5)
    node = [m.DescribeContainerGroupStatusRequestTag(key="node", value="vk-0")]
    page = eci.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(region_id=sim.region, tag=node, limit=5)
    ).body
    assert page.total_count == 7
    assert len(page.data) == 5
    assert page.next_token
    rest = eci.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(region_id=sim.region, tag=node, limit=5, next_token=page.next_token)
    ).body
    assert len(rest.data) == 2
    assert not rest.next_token
    item = page.data[0]
    assert item.status == "Running"
    assert item.pod_status.phase == "Running"
    assert item.pod_status.pod_ip
    (cs,) = item.pod_status.container_statuses
    assert cs.ready
    assert cs.state.running.started_atstarted_at
    assert {c.type: c.status for c in item.pod_status.conditions}["Ready"] == "True"

    # SinceSecond counts the caller's (wall) seconds, whatever the simulated clock does meanwhile.
    def changed_in_the_last_second() -> list[str]:
        request = m.DescribeContainerGroupStatusRequest(region_id=sim.region, tag=node, since_second=1)
        return [d.container_group_id for d in eci.describe_container_group_status(request).body.data]

    sim.advance(100)
    assert len(changed_in_the_last_second()) == 7  # made a moment ago on the caller's clock
    wait_for(lambda: changed_in_the_last_second() == [], timeout=10, what="a second without changes")
    victim = page.data[0].container_group_id
    eci.restart_container_group(m.RestartContainerGroupRequest(region_id=sim.region, container_group_id=victim))
    assert changed_in_the_last_second() == [victim]


def test_restart_policy_restarts_failures_and_counts_them(sim: Sim, eci: Client) -> None:
    crash = container("c", "busybox", "sh", "-c", "echo try; exit 3")
    always = eci.create_container_group(
        create_request(sim, "always", crash, restart_policy="Always")
    ).body.container_group_id
    never = eci.create_container_group(
        create_request(sim, "never", crash, restart_policy="Never")
    ).body.container_group_id
    sim.advance(30)
    looping = describe_one(eci, sim, always)
    assert looping.status == "Running"
    assert looping.containers[0].restart_count >= 2
    assert looping.containers[0].previous_state.exit_code == 3
    assert "BackOff" in {e.reason for e in looping.events}
    failed = describe_one(eci, sim, never)
    assert failed.status == "Failed"
    assert failed.containers[0].current_state.exit_code == 3
    log = eci.describe_container_log(
        m.DescribeContainerLogRequest(
            region_id=sim.region, container_group_id=always, container_name="c", last_time=True
        )
    )
    assert log.body.content == "try\n"


def test_a_failing_pull_keeps_the_instance_pending_and_pulls_again_until_its_maximum_pending_time(
    sim: Sim, eci: Client
) -> None:
    """ECI: an image that fails to pull leaves the instance Pending (billed) while the cloud pulls
    again with back-off, the container waiting in ErrImagePull, then ImagePullBackOff; after 4 hours
    Pending the cloud stops it."""
    request = create_request(
        sim, "nope", container("c", "registry.example.com/team/does-not-exist:1"), restart_policy="Never"
    )
    group_id = eci.create_container_group(request).body.container_group_id
    sim.advance(0.5)  # the first pull failed; the next is 1 s after it on this profile
    group = describe_one(eci, sim, group_id)
    assert group.status == "Pending"
    assert [e.reason for e in group.events if e.type == "Warning"] == ["Failed", "BackOff"]
    assert (group.containers[0].current_state.state, group.containers[0].current_state.reason) == (
        "Waiting",
        "ErrImagePull",
    )
    sim.advance(60)
    group = describe_one(eci, sim, group_id)
    assert group.status == "Pending"
    assert group.containers[0].current_state.reason == "ImagePullBackOff"
    failed = next(e for e in group.events if e.reason == "Failed")
    assert failed.count > 2, "each try is counted on the one event, as the kubelet's are"
    sim.advance(4 * 3600)
    group = describe_one(eci, sim, group_id)
    assert group.status == "Failed"
    assert group.events[-1].reason == "PendingTimeout"
    assert "240 minutes" in group.events[-1].message


def test_pi_logs_and_exec(sim: Sim, eci: Client) -> None:
    pi = container("pi", "perl:5.34", "perl", "-Mbignum=bpi", "-wle", "print bpi(2000)")
    group_id = eci.create_container_group(create_request(sim, "pi", pi, restart_policy="Never")).body.container_group_id
    sim.advance(5)
    assert describe_one(eci, sim, group_id).status == "Succeeded"
    content = eci.describe_container_log(
        m.DescribeContainerLogRequest(region_id=sim.region, container_group_id=group_id, container_name="pi")
    ).body.content
    assert content.startswith("3.14159265358979323846264338327950288419716939937510")
    assert len(content.strip()) == 2001
    assert content.strip() == workloads.pi(2000)

    web = eci.create_container_group(create_request(sim, "web")).body.container_group_id
    sim.advance(60)
    tail = eci.describe_container_log(
        m.DescribeContainerLogRequest(
            region_id=sim.region, container_group_id=web, container_name="app", tail=2, timestamps=True
        )
    ).body.content
    lines = tail.splitlines()
    assert len(lines) == 2
    assert all('"GET / HTTP/1.1" 200' in line for line in lines)
    assert lines[0][:4].isdigit()
    assert lines[0][19] == "."
    limited = eci.describe_container_log(
        m.DescribeContainerLogRequest(
            region_id=sim.region, container_group_id=web, container_name="app", limit_bytes=10
        )
    ).body.content
    assert len(limited.encode()) == 10

    def run(*argv: str) -> str:
        request = m.ExecContainerCommandRequest(
            region_id=sim.region,
            container_group_id=web,
            container_name="app",
            command=json.dumps(list(argv)),
            sync=True,
        )
        return str(eci.exec_container_command(request).body.sync_response)

    assert run("sh", "-c", 'echo "a b"') == "a b\n"
    assert run("sh", "-c", "exit 3").endswith("exit status 3\n")


def test_price_usage_resources_and_regions(sim: Sim, eci: Client) -> None:
    price = eci.describe_container_group_price(
        m.DescribeContainerGroupPriceRequest(region_id=sim.region, cpu=7.0, memory=13.0)
    )
    assert price.body.price_info.price.trade_price == pytest.approx(catalog.Spec(8, 16).usd_per_second())
    eci.create_container_group(create_request(sim, "u", cpu=2.0, memory=4.0))
    usage = eci.list_usage(m.ListUsageRequest(region_id=sim.region)).body.attributes
    assert usage["UsedCpu"] == 2.0
    assert usage["MaxCpu"] > 0
    zone = sim.vswitches[0]["zone"]
    sim.admin("POST", "stock", {"zone": zone, "spec": "2-4", "available": 0})
    resources = eci.describe_available_resource(
        m.DescribeAvailableResourceRequest(region_id=sim.region, zone_id=zone)
    ).body
    (available_zone,) = resources.available_zones.available_zone
    supported = available_zone.available_resources.available_resource[0].supported_resources.supported_resource
    assert {s.value: s.status_category for s in supported}["2-4"] == "WithoutStock"
    regions = eci.describe_regions(m.DescribeRegionsRequest(region_id=sim.region)).body.regions
    assert [r.region_id for r in regions] == [sim.region]
    assert len(regions[0].zones) == 3


def test_events_call_returns_kubernetes_shaped_events(sim: Sim, eci: Client) -> None:
    group_id = eci.create_container_group(create_request(sim, "ev")).body.container_group_id
    sim.advance(1)
    body = eci.describe_container_group_events(
        m.DescribeContainerGroupEventsRequest(region_id=sim.region, container_group_ids=json.dumps([group_id]))
    ).body
    (data,) = body.data
    assert [e.reason for e in data.events] == ["Pulling", "Pulled", "Created", "Started"]
    assert data.events[0].involved_object.uid == group_id


def test_bulk_status_follows_every_change_of_a_polled_instance(sim: Sim, eci: Client) -> None:
    job = container("job", "busybox", "sh", "-c", "sleep 10; exit 3")
    request = create_request(sim, "polled", job, restart_policy="OnFailure", tag=tags(node="vk-9"))
    group_id = eci.create_container_group(request).body.container_group_id
    node = [m.DescribeContainerGroupStatusRequestTag(key="node", value="vk-9")]

    def poll() -> tuple[str, str, int, int | None]:
        (item,) = eci.describe_container_group_status(
            m.DescribeContainerGroupStatusRequest(region_id=sim.region, tag=node)
        ).body.data
        (cs,) = item.pod_status.container_statuses
        last = cs.last_state.terminated.exit_code if cs.last_state and cs.last_state.terminated else None
        return item.status, "running" if cs.state.running else "other", cs.restart_count, last

    assert poll() == ("Running", "running", 0, None)
    assert poll() == ("Running", "running", 0, None)  # asked again: the same answer
    sim.advance(10)
    assert poll() == ("Running", "other", 0, 3)  # exited 3, backing off
    recent = eci.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(region_id=sim.region, tag=node, since_second=2)
    ).body
    assert [d.container_group_id for d in recent.data] == [group_id]  # a container change, status unchanged
    sim.advance(1)
    assert poll() == ("Running", "running", 1, 3)  # restarted
    eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id))
    body = eci.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(region_id=sim.region, tag=node)
    ).body
    assert body.total_count == 0


def test_sdk_reads_metrics_of_many_instances_in_one_call(sim: Sim, eci: Client) -> None:
    """DescribeMultiContainerGroupMetric: usage follows the workload (busy, server, sleep), a tag pins
    it, the cumulative counter is the rate times the seconds run, and unknown ids are left out."""
    busy = container("spin", "busybox", "sh", "-c", "while true; do :; done", cpu=0.5)
    made = {
        "busy": create_request(sim, "busy", busy),
        "web": create_request(sim, "web", container("web", "nginx", cpu=1.0)),
        "sleep": create_request(sim, "sleep", container("nap", "busybox", "sleep", "3600", cpu=1.0)),
        "pinned": create_request(
            sim, "pinned", container("web", "nginx", cpu=1.0), tag=tags(cloudsim__cpu__millicores="700")
        ),
    }
    ids = {name: eci.create_container_group(request).body.container_group_id for name, request in made.items()}
    sim.advance(30)

    def read() -> dict[str, m.DescribeMultiContainerGroupMetricResponseBodyMonitorDatasRecords]:
        request = m.DescribeMultiContainerGroupMetricRequest(
            region_id=sim.region, container_group_ids=json.dumps([*ids.values(), "eci-unknown"]), metric_type="summary"
        )
        datas = eci.describe_multi_container_group_metric(request).body.monitor_datas
        return {d.container_group_id: d.records[-1] for d in datas}

    first = read()
    assert set(first) == set(ids.values())
    cores = {name: first[i].containers[0].cpu.usage_nano_cores / 1e9 for name, i in ids.items()}
    assert 0.47 <= cores["busy"] <= 0.5  # a busy loop takes its limit
    assert 0 < cores["web"] < 0.01  # an idle server a few millicores
    assert cores["sleep"] == 0
    assert cores["pinned"] == 0.7
    busy_record = first[ids["busy"]]
    assert busy_record.cpu.limit == 500
    assert busy_record.containers[0].name == "spin"
    assert busy_record.memory.working_set > 0
    assert first[ids["web"]].containers[0].memory.working_set > busy_record.containers[0].memory.working_set

    sim.advance(10)
    second = read()
    for name, instance_id in ids.items():
        before = first[instance_id].containers[0].cpu.usage_core_nano_seconds
        after = second[instance_id].containers[0].cpu.usage_core_nano_seconds
        assert after - before == pytest.approx(cores[name] * 10 * 1e9, rel=1e-3, abs=10), name
        assert second[instance_id].cpu.usage_core_nano_seconds == after  # one container: the group is its sum


def test_sdk_reads_metric_records_of_one_instance(sim: Sim, eci: Client) -> None:
    """DescribeContainerGroupMetric: the last five minutes at 15 s by default; each record's rate is
    the average over its period, so the record where the run started shows part of it."""
    request = create_request(
        sim, "pinned", container("web", "nginx", cpu=1.0), tag=tags(cloudsim__cpu__millicores="400")
    )
    instance_id = eci.create_container_group(request).body.container_group_id
    sim.advance(600)
    body = eci.describe_container_group_metric(
        m.DescribeContainerGroupMetricRequest(region_id=sim.region, container_group_id=instance_id)
    ).body
    assert body.container_group_id == instance_id
    assert len(body.records) == 20
    assert all(r.containers[0].cpu.usage_nano_cores == 400_000_000 for r in body.records)
    counters = [r.cpu.usage_core_nano_seconds for r in body.records]
    assert counters == sorted(counters)
    assert counters[-1] - counters[-2] == pytest.approx(0.4 * 15 * 1e9, rel=1e-6)
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.describe_container_group_metric(
            m.DescribeContainerGroupMetricRequest(
                region_id=sim.region, container_group_id=instance_id, start_time="2020-01-01T00:00:00Z", period="15"
            )
        )
    assert caught.value.code == "InvalidParameter"  # a range of more than 50 records
