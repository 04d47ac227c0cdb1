"""The ECI provider against the simulated cloud over HTTP: the provider contract, failover, errors, logs, exec, billing.

The simulator runs as a child process with a paused clock (``tests.cloudsim.conftest.running``);
tests move simulated time through its admin API, so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
from collections.abc import Mapping
from typing import Any

import pytest

from tests.cloudsim.conftest import Sim
from tests.provider.eci_fixtures import NODE_TAGS, eci_settings, spec
from vnode import errors, models, settings
from vnode.cloudsim import catalog
from vnode.provider import base, registry
from vnode.provider.eci import client as eci_client
from vnode.provider.eci import mapping
from vnode.provider.eci import provider as eci
from vnode.provider.eci import spot as eci_spot

LogOptions = base.LogRequest


def test_the_registry_names_the_eci_provider_and_it_meets_the_protocols(sim: Sim) -> None:
    factory = registry.load("eci")
    provider = factory(settings.Settings(node_name="vn-0", cloud=eci_settings(sim)))
    assert isinstance(provider, base.Provider)
    assert isinstance(provider, base.SupportsLogs)
    assert isinstance(provider, base.SupportsExec)
    assert isinstance(provider, base.SupportsStats)
    assert provider.container_id_scheme == "eci"


def test_the_factory_refuses_to_start_without_keys() -> None:
    with pytest.raises(errors.ConfigError, match="ECI_ACCESS_KEY"):
        eci.create(settings.Settings(node_name="vn-0"))


async def test_create_lists_pending_then_running_and_repeats_idempotently(sim: Sim, provider: eci.EciProvider) -> None:
    created = await provider.create(spec("web", tags={"cloudsim/delay": "20"}))
    assert created.id.startswith("eci-")
    again = await provider.create(spec("web", tags={"cloudsim/delay": "20"}))
    assert again.id == created.id

    (pending,) = await provider.list(NODE_TAGS)
    assert pending.status in (models.InstanceStatus.SCHEDULING, models.InstanceStatus.PENDING)
    assert pending.tags == spec("web", tags={"cloudsim/delay": "20"}).tags
    sim.advance(25)
    (running_,) = await provider.list(NODE_TAGS)
    assert running_.status is models.InstanceStatus.RUNNING
    assert [c.state for c in running_.containers] == [models.ContainerState.RUNNING]
    assert running_.containers[0].ready
    cidr = {v["id"]: v["cidr"] for v in sim.vswitches}[running_.vswitch]
    assert running_.ip.startswith(cidr.rsplit(".", 2)[0])
    reasons = [e.reason for e in running_.events]
    assert reasons[:4] == ["Pulling", "Pulled", "Created", "Started"]
    assert running_.events[2].container == "app"
    assert (await provider.get(created.id)).status is models.InstanceStatus.RUNNING
    assert sim.totals()["live"] == 1


async def test_a_retry_with_changed_placement_returns_the_tokens_instance(sim: Sim, provider: eci.EciProvider) -> None:
    first, second = (v["id"] for v in sim.vswitches[:2])
    made = await provider.create(dataclasses.replace(spec("moved"), placement=models.Placement(vswitches=(first,))))
    again = await provider.create(dataclasses.replace(spec("moved"), placement=models.Placement(vswitches=(second,))))
    assert again.id == made.id
    assert sim.totals()["live"] == 1


async def test_delete_removes_the_instance_and_repeats_harmlessly(sim: Sim, provider: eci.EciProvider) -> None:
    created = await provider.create(spec("gone"))
    await provider.delete(created.id, grace_seconds=5)
    await provider.delete(created.id, grace_seconds=5)
    sim.advance(60)
    assert await provider.list(NODE_TAGS) == []
    with pytest.raises(errors.NotFound):
        await provider.get(created.id)
    await provider.delete(created.id, grace_seconds=5)


async def test_stock_out_in_the_first_zone_lands_in_the_second(sim: Sim, provider: eci.EciProvider) -> None:
    first, second = sim.vswitches[0], sim.vswitches[1]
    status, body = sim.admin("POST", "stock", {"zone": first["zone"], "available": 0})
    assert status == 200, body
    created = await provider.create(spec("spill"))
    sim.advance(1)
    state = await provider.get(created.id)
    assert (state.zone, state.vswitch) == (second["zone"], second["id"])


async def test_exhausted_vswitches_fail_over_then_raise_capacity_error(sim: Sim) -> None:
    # More candidates than one call takes: the provider tries the next batch itself.
    ids = [v["id"] for v in sim.vswitches]
    many = tuple(ids[:1] * 10 + ids[1:2])
    provider = eci.EciProvider(eci_settings(sim, vswitches=many))
    try:
        status, body = sim.admin("POST", f"vswitches/{ids[0]}", {"exhausted": True})
        assert status == 200, body
        landed = await provider.get((await provider.create(spec("one"))).id)
        assert landed.vswitch == ids[1]
        status, body = sim.admin("POST", f"vswitches/{ids[1]}", {"exhausted": True})
        assert status == 200, body
        with pytest.raises(errors.CapacityError):
            await provider.create(spec("two"))
    finally:
        await provider.close()


async def test_65_vcpu_is_an_invalid_spec(provider: eci.EciProvider) -> None:
    with pytest.raises(errors.InvalidSpec, match="65"):
        await provider.create(spec("huge", cpu=65, memory=128))


async def test_a_wrong_secret_is_forbidden(sim: Sim) -> None:
    provider = eci.EciProvider(eci_settings(sim, secret_key="wrong"))
    try:
        with pytest.raises(errors.Forbidden):
            await provider.list(NODE_TAGS)
    finally:
        await provider.close()


async def test_get_of_an_unknown_instance_is_not_found(provider: eci.EciProvider) -> None:
    with pytest.raises(errors.NotFound):
        await provider.get("eci-doesnotexist")


async def test_logs_and_exec_keep_arguments_and_exit_codes(sim: Sim, provider: eci.EciProvider) -> None:
    job = await provider.create(spec("hello", "sh", "-c", "echo hello; echo world", image="busybox", restart="Never"))
    server = await provider.create(spec("server"))
    sim.advance(5)
    chunks = [c async for c in provider.logs(job.id, "app", LogOptions())]
    assert b"".join(chunks) == b"hello\nworld\n"
    tail = [c async for c in provider.logs(job.id, "app", LogOptions(tail_lines=1))]
    assert b"".join(tail) == b"world\n"

    echoed = await provider.exec(server.id, "app", ["sh", "-c", 'echo "a b"'])
    assert (echoed.exit_code, echoed.stdout) == (0, b"a b\n")
    failed = await provider.exec(server.id, "app", ["sh", "-c", "exit 3"])
    assert failed.exit_code == 3
    assert b"exit status" not in failed.stdout
    with pytest.raises(errors.NotFound):
        await provider.exec("eci-doesnotexist", "app", ["true"])


async def test_list_pages_past_twenty_and_keeps_to_its_tags(provider: eci.EciProvider) -> None:
    ids = {(await provider.create(spec(f"p-{n}"))).id for n in range(25)}
    await provider.create(spec("other", tags={models.TAG_NODE: "vn-1"}))
    listed = await provider.list(NODE_TAGS)
    assert {s.id for s in listed} == ids
    assert len(listed) == 25
    (by_uid,) = await provider.list({**NODE_TAGS, models.TAG_POD_UID: "uid-p-7"})
    assert by_uid.pod_uid == "uid-p-7"


async def test_a_16_vcpu_job_is_billed_at_its_spec_for_its_run_time(sim: Sim, provider: eci.EciProvider) -> None:
    command = ("perl", "-Mbignum=bpi", "-wle", "print bpi(2000)")
    job = await provider.create(spec("pi", *command, image="perl:5.34", cpu=16, memory=32, restart="Never"))
    sim.advance(120)
    (done,) = await provider.list(NODE_TAGS)
    assert done.status is models.InstanceStatus.SUCCEEDED
    assert (done.cpu, done.memory_gib) == (16.0, 32.0)
    assert done.containers[0].exit_code == 0
    digits = b"".join([c async for c in provider.logs(job.id, "app", LogOptions())])
    assert digits.startswith(b"3.14159")
    sim.advance(600)  # finished instances cost nothing more
    status, record = sim.admin("GET", f"instances/{job.id}")
    assert status == 200, record
    rate = 16 * catalog.USD_PER_VCPU_SECOND + 32 * catalog.USD_PER_GIB_SECOND
    assert record["billable_seconds"] < 120
    assert record["cost_usd"] == pytest.approx(record["billable_seconds"] * rate)


async def test_quota_is_what_the_region_has_left_bounded_by_settings(sim: Sim) -> None:
    provider = eci.EciProvider(eci_settings(sim, quota_cpu=50, quota_pods=10))
    try:
        quota = await provider.quota()
        assert quota.cpu == 50
        assert quota.pods == 10
        await provider.create(spec("q"))
        unbounded = eci.EciProvider(eci_settings(sim))
        try:
            left = (await unbounded.quota()).cpu
            assert left is not None
            assert left == sim.totals()["max_cpu"] - 2
        finally:
            await unbounded.close()
    finally:
        await provider.close()


def test_spec_mapping_covers_volumes_probes_and_init_containers() -> None:
    probe = models.Probe(http_path="/healthz", http_port=8080, period_seconds=5)
    main = models.ContainerSpec(
        name="app",
        image="nginx",
        command=("sh", "-c"),
        args=("echo a b",),
        env=(models.EnvVar("A", "1"),),
        ports=(models.Port(80),),
        volume_mounts=(models.VolumeMount("conf", "/etc/conf", read_only=True),),
        liveness_probe=models.Probe(exec_command=("cat", "/tmp/ok")),
        readiness_probe=probe,
    )
    volumes = (
        models.VolumeSpec("scratch", "emptyDir", medium="Memory", size_limit_gib=1),
        models.VolumeSpec("conf", "files", files=(models.KeyToPath("a.conf", b"x=1", mode=0o644),)),
    )
    instance = models.InstanceSpec(
        name="pod",
        client_token="tok",
        containers=(main,),
        init_containers=(models.ContainerSpec(name="init", image="busybox", command=("true",)),),
        volumes=volumes,
        cpu=2,
        memory_gib=4,
        tags={"k": "v"},
    )
    params = mapping.create_params(
        instance, region="r", vswitches=["vsw-a", "vsw-b"], security_group="sg", strategy="S"
    )
    assert params["VSwitchId"] == "vsw-a,vsw-b"
    assert params["Container.1.Arg.1"] == "echo a b"
    assert params["Container.1.EnvironmentVar.1.Key"] == "A"
    assert params["Container.1.LivenessProbe.Exec.Command.2"] == "/tmp/ok"
    assert params["Container.1.ReadinessProbe.HttpGet.Port"] == "8080"
    assert params["Container.1.VolumeMount.1.ReadOnly"] == "true"
    assert params["InitContainer.1.Command.1"] == "true"
    assert params["Volume.1.Type"] == "EmptyDirVolume"
    assert params["Volume.1.EmptyDirVolume.SizeLimit"] == "1Gi"
    assert params["Volume.2.ConfigFileVolume.ConfigFileToPath.1.Content"] == "eD0x"
    assert params["Tag.1.Key"] == "k"
    with pytest.raises(errors.InvalidSpec):
        mapping.create_params(
            dataclasses.replace(instance, volumes=(models.VolumeSpec("d", "hostPath"),)),
            region="r",
            vswitches=["v"],
            security_group="sg",
            strategy="S",
        )


@pytest.mark.parametrize(
    ("annotations", "params"),
    [
        ({}, {}),
        ({mapping.WITH_EIP: "false", mapping.EIP_BANDWIDTH: "10"}, {}),
        ({mapping.WITH_EIP: "true"}, {"AutoCreateEip": "true"}),
        ({mapping.WITH_EIP: "True", mapping.EIP_BANDWIDTH: "10"}, {"AutoCreateEip": "true", "EipBandwidth": "10"}),
        ({mapping.EIP_ID: "eip-1", mapping.WITH_EIP: "true"}, {"EipInstanceId": "eip-1"}),
    ],
)
def test_eip_annotations_become_eip_parameters(annotations: dict[str, str], params: dict[str, str]) -> None:
    assert mapping.eip_params(annotations) == params


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        ({mapping.WITH_EIP: "yes"}, mapping.WITH_EIP),
        ({mapping.WITH_EIP: "true", mapping.EIP_BANDWIDTH: "0"}, mapping.EIP_BANDWIDTH),
        ({mapping.WITH_EIP: "true", mapping.EIP_BANDWIDTH: "5M"}, mapping.EIP_BANDWIDTH),
    ],
)
def test_a_bad_eip_annotation_is_an_invalid_spec_naming_it(annotations: dict[str, str], named: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=named):
        mapping.eip_params(annotations)


async def test_a_pod_asking_for_an_eip_gets_its_public_address_as_an_annotation(
    sim: Sim, provider: eci.EciProvider
) -> None:
    made = await provider.get((await provider.create(spec("public", annotations={mapping.WITH_EIP: "true"}))).id)
    plain = await provider.get((await provider.create(spec("private"))).id)
    address = made.annotations[mapping.ALLOCATED_ADDRESS]
    assert address
    assert address != made.ip
    assert plain.annotations == {}
    status, record = sim.admin("GET", f"instances/{made.id}")
    assert status == 200, record
    assert record["eip_address"] == address
    # The EIP's ID is not in ECI's description: the feed asks VPC's DescribeEipAddresses, once.
    listed = {s.id: s for s in await provider.list(NODE_TAGS)}
    assert listed[made.id].annotations[mapping.ALLOCATED_EIP] == record["eip_id"]
    assert mapping.ALLOCATED_EIP not in listed[plain.id].annotations


async def test_a_gpu_spec_runs_on_its_gpu_type_and_the_type_comes_back_as_an_annotation(
    sim: Sim, provider: eci.EciProvider
) -> None:
    t4 = "ecs.gn6i-c4g1.xlarge"
    gpu = dataclasses.replace(spec("train"), instance_type=t4, cpu=4, memory_gib=15)
    gpu = dataclasses.replace(gpu, containers=(dataclasses.replace(gpu.containers[0], gpus=1),))
    params = mapping.create_params(gpu, region="r", vswitches=["v"], security_group="sg", strategy="S")
    assert (params["InstanceType"], params["Container.1.Gpu"]) == (t4, "1")
    assert "Container.1.Gpu" not in mapping.create_params(
        spec("plain"), region="r", vswitches=["v"], security_group="sg", strategy="S"
    )
    made = await provider.get((await provider.create(gpu)).id)
    assert made.annotations == {mapping.INSTANCE_SPEC: t4}
    assert (made.cpu, made.memory_gib) == (4, 15)
    too_many = dataclasses.replace(gpu, name="greedy", client_token="uid-greedy")
    too_many = dataclasses.replace(too_many, containers=(dataclasses.replace(gpu.containers[0], gpus=2),))
    with pytest.raises(errors.InvalidSpec, match=r"Container\.1\.Gpu"):
        await provider.create(too_many)


def test_the_signature_is_the_one_the_simulator_checks(tmp_path: pathlib.Path) -> None:
    from vnode.cloudsim import acs3

    client = eci_client.EciClient("127.0.0.1:1", "LTAIkey", "secret")
    params = {"RegionId": "r", "Container.1.Command.2": "b c~*", "Tag.1.Key": "vnode.io/node"}
    url, headers = client.signed_request("DescribeContainerGroups", params)
    auth = acs3.parse(headers.pop("Authorization"))
    headers.pop("accept")
    canonical = acs3.canonical_request(
        "POST", "/", params.items(), headers, auth.signed_headers, eci_client.EMPTY_SHA256
    )
    assert acs3.verify("secret", auth, canonical)
    assert url.startswith("http://127.0.0.1:1/?")


async def test_follow_yields_what_the_log_gains(sim: Sim) -> None:
    provider = eci.EciProvider(eci_settings(sim), log_poll_interval=0.05)
    try:
        server = await provider.create(spec("follow"))
        sim.advance(25)
        stream = provider.logs(server.id, "app", LogOptions(follow=True))
        first = await asyncio.wait_for(anext(stream), timeout=10)
        sim.advance(30)  # nginx writes an access-log line every 10 s
        more = await asyncio.wait_for(anext(stream), timeout=10)
        assert more
        assert not first.endswith(more)
        await stream.aclose()
    finally:
        await provider.close()


async def test_stats_of_many_instances_take_one_metrics_call_per_twenty(sim: Sim, provider: eci.EciProvider) -> None:
    """25 instances: two DescribeMultiContainerGroupMetric calls; figures follow the workload or
    the pinning tag, and the cumulative CPU grows by the rate times the simulated seconds."""
    pinned = {"cloudsim-cpu-millicores": "300", "cloudsim-memory-mib": "48"}
    made = [await provider.create(spec(f"web-{n}", tags=pinned if n < 3 else None)) for n in range(23)]
    made.append(await provider.create(spec("spin", "sh", "-c", "while true; do :; done", image="busybox", cpu=1)))
    made.append(await provider.create(spec("nap", "sleep", "3600", image="busybox")))
    sim.advance(30)
    ids = [state.id for state in made]
    actions: list[str] = []
    call = provider.client.call

    async def counting(action: str, params: Mapping[str, str]) -> dict[str, Any]:
        actions.append(action)
        return await call(action, params)

    provider.client.call = counting  # type: ignore[method-assign]
    first = await provider.stats([*ids, "eci-unknown"])
    assert actions == ["DescribeMultiContainerGroupMetric"] * 2
    assert set(first) == set(ids)
    assert first[ids[0]]["app"]["cpu_nanocores"] == 300_000_000
    assert first[ids[0]]["app"]["memory_working_set_bytes"] == 48 * 1024 * 1024
    assert 0 < first[ids[5]]["app"]["cpu_nanocores"] < 10_000_000  # an idle nginx
    assert 0.95e9 <= first[ids[-2]]["app"]["cpu_nanocores"] <= 1e9  # a busy loop takes its core
    assert first[ids[-1]]["app"]["cpu_nanocores"] == 0  # sleep

    sim.advance(10)
    second = await provider.stats(ids)
    for instance_id in ids:
        before, after = first[instance_id]["app"], second[instance_id]["app"]
        grown = after["cpu_usage_core_nanoseconds"] - before["cpu_usage_core_nanoseconds"]
        assert grown == pytest.approx(before["cpu_nanocores"] * 10, rel=1e-3, abs=10)


async def test_a_spot_pod_is_bought_spot_and_falls_back_to_pay_as_you_go_only_if_it_asks(
    sim: Sim, provider: eci.EciProvider
) -> None:
    asks = {eci_spot.STRATEGY: "SpotAsPriceGo"}
    bought = await provider.create(spec("spot", annotations=asks))
    sim.advance(5)
    assert (await provider.get(bought.id)).interruptible
    assert sim.admin("GET", f"instances/{bought.id}")[1]["spot_hourly"] > 0
    for zone in {v["zone"] for v in sim.vswitches}:
        status, body = sim.admin("POST", "stock", {"zone": zone, "available": 0, "spot": True})
        assert status == 200, body
    with pytest.raises(errors.CapacityError, match=r"ECI spot \(SpotAsPriceGo\)"):
        await provider.create(spec("waits", annotations=asks))
    fallen = await provider.create(spec("falls", annotations={**asks, eci_spot.FALLBACK: "true"}))
    sim.advance(5)
    assert not (await provider.get(fallen.id)).interruptible
    assert "spot_hourly" not in sim.admin("GET", f"instances/{fallen.id}")[1]  # pay-as-you-go


def test_a_disk_in_use_is_a_volume_in_use_the_pod_waits_for() -> None:
    error = eci_client.error_of("CreateContainerGroup", 403, "IncorrectDiskStatus", "The disk d-1 is attached")
    assert isinstance(error, errors.VolumeInUse)
    assert error.code == "IncorrectDiskStatus"
