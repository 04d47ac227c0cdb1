"""The ECI provider against the simulated cloud over HTTP: the provider contract, failover, errors, logs, exec, billing.

The simulator runs as a child process with a paused clock (``tests.cloudsim.conftest.running``);
tests move simulated time through its admin API, so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import pathlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from tests.cloudsim.conftest import Sim, running
from tests.waiting import wait_for
from vnode import errors, models, settings
from vnode.cloudsim import catalog
from vnode.node import instances
from vnode.provider import base, registry
from vnode.provider.eci import client as eci_client
from vnode.provider.eci import config as eci_config
from vnode.provider.eci import mapping
from vnode.provider.eci import provider as eci
from vnode.provider.eci import spot as eci_spot

NODE_TAGS = {models.TAG_CLUSTER: "c1", models.TAG_NODE: "vn-0"}


@dataclasses.dataclass
class LogOptions:
    tail_lines: int | None = None
    since: datetime.datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False
    follow: bool = False


@pytest.fixture(scope="module")
def eci_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("eci-provider-sim"), profile="fast") as sim:
        yield sim


@pytest.fixture
def sim(eci_sim: Sim) -> Sim:
    status, body = eci_sim.admin("POST", "reset", {})
    assert status == 200, body
    return eci_sim


def eci_settings(sim: Sim, **overrides: object) -> eci_config.EciSettings:
    fields: dict[str, object] = {
        "region": sim.region,
        "endpoint": sim.info["eci"]["endpoint"],
        "access_key": sim.info["eci"]["access_key_id"],
        "secret_key": sim.info["eci"]["access_key_secret"],
        "vswitches": tuple(v["id"] for v in sim.vswitches),
        "security_group": sim.info["security_group_id"],
    }
    fields.update(overrides)
    return eci_config.EciSettings.model_validate(fields)


@pytest.fixture
async def provider(sim: Sim) -> AsyncIterator[eci.EciProvider]:
    provider = eci.EciProvider(eci_settings(sim))
    try:
        yield provider
    finally:
        await provider.close()


def spec(
    name: str = "web",
    *command: str,
    token: str = "",
    image: str = "nginx",
    cpu: float = 2,
    memory: float = 4,
    restart: str = "Always",
    tags: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> models.InstanceSpec:
    return models.InstanceSpec(
        name=name,
        client_token=token or f"uid-{name}",
        containers=(models.ContainerSpec(name="app", image=image, command=command),),
        cpu=cpu,
        memory_gib=memory,
        restart_policy=restart,
        tags={**NODE_TAGS, models.TAG_POD_UID: f"uid-{name}", **(tags or {})},
        annotations=annotations or {},
    )


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


async def test_cloud_throttling_is_throttled_with_a_retry_hint(sim: Sim) -> None:
    provider = eci.EciProvider(eci_settings(sim), create_limit=None)
    try:
        status, body = sim.admin("PUT", "rate-limits/create", {"burst": 1, "rate": 0})
        assert status == 200, body
        await provider.create(spec("a"))
        with pytest.raises(errors.Throttled) as caught:
            await provider.create(spec("b"))
        assert caught.value.code == "Throttling.User"
        assert caught.value.retry_after
    finally:
        await provider.close()


async def test_the_client_side_bucket_throttles_before_spending_a_call(sim: Sim) -> None:
    provider = eci.EciProvider(eci_settings(sim), create_limit=(1, 0.5))
    try:
        await provider.create(spec("a"))
        with pytest.raises(errors.Throttled) as caught:
            await provider.create(spec("b"))
        assert caught.value.retry_after is not None
        assert 0 < caught.value.retry_after <= 2.0
        assert sim.totals()["live"] == 1
    finally:
        await provider.close()


async def test_replicas_sharing_the_account_slow_down_when_the_cloud_throttles_them(sim: Sim) -> None:
    """Each replica's bucket allows the account's whole rate; the cloud's Throttling answers halve it
    (found by the soak: three replicas' deletes at 3x the account's rate, 41 % refused)."""
    provider = eci.EciProvider(eci_settings(sim), create_limit=(100, 20.0))
    try:
        status, body = sim.admin("PUT", "rate-limits/create", {"burst": 2, "rate": 0})
        assert status == 200, body
        bucket = provider._buckets["create"]
        refused = sim.totals()["refused_by_limits"].get("create", 0)
        await provider.create(spec("a"))
        await provider.create(spec("b"))
        assert bucket.rate == 20.0
        with pytest.raises(errors.Throttled) as caught:
            await provider.create(spec("c"))
        assert caught.value.code == "Throttling.User"
        assert bucket.rate == 10.0
        with pytest.raises(errors.Throttled) as caught:
            await provider.create(spec("d"))
        assert caught.value.code == "Throttling.Client", "the bucket was emptied: no call spent"
        assert sim.totals()["refused_by_limits"]["create"] == refused + 1
    finally:
        await provider.close()


async def test_a_5xx_storm_is_unavailable_and_the_retry_makes_no_duplicate(sim: Sim, provider: eci.EciProvider) -> None:
    status, body = sim.admin("PUT", "faults/create", {"error_rate": 1.0, "error_status": 503})
    assert status == 200, body
    for _ in range(3):
        with pytest.raises(errors.Unavailable):
            await provider.create(spec("storm"))
    for operation in ("status", "describe"):
        status, body = sim.admin("PUT", f"faults/{operation}", {"error_rate": 1.0, "error_status": 500})
        assert status == 200, body
        with pytest.raises(errors.Unavailable):
            await provider.list(NODE_TAGS)
        if operation == "status":  # the status feed answers again; describing the new instance fails
            sim.admin("DELETE", "faults/status")
            sim.admin("DELETE", "faults/create")
            await provider.create(spec("early", token="uid-early"))
    sim.admin("DELETE", "faults")
    first = await provider.create(spec("storm"))
    second = await provider.create(spec("storm"))
    assert first.id == second.id
    assert len(await provider.list(NODE_TAGS)) == 2  # storm and early, once each
    assert sim.totals()["live"] == 2


async def test_an_unreachable_cloud_is_unavailable(sim: Sim) -> None:
    provider = eci.EciProvider(eci_settings(sim, endpoint="127.0.0.1:9"))
    try:
        with pytest.raises(errors.Unavailable):
            await provider.list(NODE_TAGS)
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


class Node:
    """The node's side of the change feed: its cache of states (``vnode.node.instances``) and cursor."""

    def __init__(self, provider: eci.EciProvider) -> None:
        self.provider = provider
        self.instances = instances.Instances(NODE_TAGS[models.TAG_CLUSTER], NODE_TAGS[models.TAG_NODE])
        self.last = base.Changes(changed=[])

    async def step(self) -> dict[str, models.InstanceState]:
        """One step of the feed; the node's instances by id after it."""
        self.last = await self.provider.changes(NODE_TAGS, self.instances.cursor)
        self.instances.apply(self.last)
        return {state.id: state for state in self.instances.states()}


async def test_a_steady_listing_describes_only_what_changed(sim: Sim) -> None:
    calls: list[str] = []

    class Counting(eci_client.EciClient):
        async def call_raw(self, action: str, params: Mapping[str, str]) -> bytes:
            calls.append(action)
            return await super().call_raw(action, params)

    config = eci_settings(sim)
    client = Counting(config.endpoint, config.access_key, config.secret_key)
    provider = eci.EciProvider(config, client=client)
    node = Node(provider)
    try:
        for n in range(25):
            await provider.create(spec(f"s-{n}", tags={"cloudsim/delay": "10"} if n == 0 else None))
        sim.advance(1)
        calls.clear()
        assert len(await node.step()) == 25
        assert node.last.complete
        assert calls.count("DescribeContainerGroups") == 2  # 25 new instances, 20 per call
        calls.clear()
        assert len(await node.step()) == 25
        assert calls == ["DescribeContainerGroupStatus"]
        assert (node.last.changed, node.last.gone, node.last.complete) == ([], [], False)
        sim.advance(10)  # s-0 finishes pulling and starts
        calls.clear()
        states = await node.step()
        assert calls == ["DescribeContainerGroupStatus", "DescribeContainerGroups"]
        assert len(node.last.changed) == 1
        assert all(s.status is models.InstanceStatus.RUNNING for s in states.values())
    finally:
        await provider.close()


async def test_between_full_listings_a_node_asks_only_for_changes_and_for_instances_being_deleted(sim: Sim) -> None:
    calls: list[tuple[str, dict[str, str]]] = []

    class Recording(eci_client.EciClient):
        async def call_raw(self, action: str, params: Mapping[str, str]) -> bytes:
            calls.append((action, dict(params)))
            return await super().call_raw(action, params)

    config = eci_settings(sim)
    client = Recording(config.endpoint, config.access_key, config.secret_key)
    provider = eci.EciProvider(config, client=client, full_list_interval=3600)
    node = Node(provider)

    def status_calls() -> list[dict[str, str]]:
        return [params for action, params in calls if action == "DescribeContainerGroupStatus"]

    try:
        steady = await provider.create(spec("steady"))
        sim.advance(1)
        (first,) = (await node.step()).values()  # the first listing is a full one
        assert (first.id, first.status) == (steady.id, models.InstanceStatus.RUNNING)
        assert all("SinceSecond" not in params for params in status_calls())

        calls.clear()
        new = await provider.create(spec("new"))
        states = {i: s.status for i, s in (await node.step()).items()}
        assert states == {steady.id: models.InstanceStatus.RUNNING, new.id: models.InstanceStatus.RUNNING}
        (changes,) = status_calls()
        assert "SinceSecond" in changes
        assert "ContainerGroupIds" not in changes
        described = [
            json.loads(params["ContainerGroupIds"]) for action, params in calls if action == "DescribeContainerGroups"
        ]
        assert described == [[new.id]]  # the steady instance is neither listed nor described again

        calls.clear()
        await provider.delete(new.id, grace_seconds=0)
        sim.advance(60)
        assert list(await node.step()) == [steady.id]  # seen gone by asking for it
        assert node.last.gone == [new.id]
        assert any(json.loads(params.get("ContainerGroupIds", "[]")) == [new.id] for params in status_calls())

        # A change the cloud stamps further back than SinceSecond reaches (here the simulated clock
        # jumps) waits for the next full listing.
        late = await provider.create(spec("late", tags={"cloudsim/delay": "20"}))
        assert (await node.step())[late.id].status is not models.InstanceStatus.RUNNING
        sim.advance(100)
        provider.full_list_interval = 0.0
        assert (await node.step())[late.id].status is models.InstanceStatus.RUNNING
    finally:
        await provider.close()


async def test_a_create_whose_answer_is_lost_is_unavailable_and_its_retry_finds_the_instance(sim: Sim) -> None:
    # The cloud acts after the client gave up (the ambiguous failure): the retry with the same
    # token must return that instance, not make a second one.
    config = eci_settings(sim)
    impatient = eci.EciProvider(
        config, client=eci_client.EciClient(config.endpoint, config.access_key, config.secret_key, timeout=0.3)
    )
    try:
        status, body = sim.admin("PUT", "faults/create", {"latency_ms": 1500})
        assert status == 200, body
        with pytest.raises(errors.Unavailable):
            await impatient.create(spec("lost"))
        await asyncio.to_thread(wait_for, lambda: sim.totals()["live"] == 1, timeout=10, what="the cloud to act")
        sim.admin("DELETE", "faults")
        again = await impatient.create(spec("lost"))
        (listed,) = await impatient.list(NODE_TAGS)
        assert listed.id == again.id
        assert sim.totals()["live"] == 1
    finally:
        await impatient.close()


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
