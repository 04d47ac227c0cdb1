"""``vnode cost`` against the simulated ECI: instances by namespace, priced as the simulator bills their run."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
from collections.abc import Iterator

import pytest

from tests.cloudsim.conftest import Sim, running
from tests.provider.eci_fixtures import eci_settings, spec
from vnode import cli, cost, models
from vnode.cloudsim import catalog
from vnode.provider.eci import profile as eci_profile
from vnode.provider.eci import provider as eci
from vnode.provider.eci import spot

RUN = 100.0  # seconds each job's container runs


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("cost-sim"), profile="fast") as started:
        yield started


T4 = "ecs.gn6i-c4g1.xlarge"


def _job(
    name: str, namespace: str, cpu: float, memory: float, cluster: str = "c1", gpu: str = ""
) -> models.InstanceSpec:
    tags = {models.TAG_CLUSTER: cluster, models.TAG_NAMESPACE: namespace, "cloudsim/run-seconds": f"{RUN:g}"}
    job = spec(name, "true", cpu=cpu, memory=memory, restart="Never", tags=tags)
    if gpu:
        job = dataclasses.replace(job, instance_type=gpu)
        job = dataclasses.replace(job, containers=(dataclasses.replace(job.containers[0], gpus=1),))
    return job


async def _make(sim: Sim, specs: list[models.InstanceSpec]) -> list[str]:
    provider = eci.EciProvider(eci_settings(sim))
    try:
        return [(await provider.create(s)).id for s in specs]
    finally:
        await provider.close()


def test_cost_sums_each_namespaces_instances_at_their_size_for_their_run(
    sim: Sim, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = [_job("a1", "team-a", 2, 4), _job("a2", "team-a", 2, 4), _job("b1", "team-b", 16, 32)]
    jobs.append(_job("g1", "team-g", 4, 15, gpu=T4))
    ids = asyncio.run(_make(sim, [*jobs, _job("x1", "team-a", 64, 128, cluster="other")]))
    sim.advance(300)  # all ran RUN seconds and finished: their cost no longer grows
    for key, value in sim.eci_env().items():
        monkeypatch.setenv(key, value)
    assert cli.main(["cost", "--provider", "eci", "--cluster-id", "c1", "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    lines = {line["namespace"]: line for line in report["namespaces"]}
    # The most expensive first; the other cluster's not at all.
    assert list(lines) == ["team-g", "team-b", "team-a"]
    assert (lines["team-a"]["instances"], lines["team-a"]["running"]) == (2, 0)
    assert lines["team-a"]["dollars"] == pytest.approx(2 * RUN * catalog.Spec(2, 4).usd_per_second())
    assert lines["team-b"]["dollars"] == pytest.approx(RUN * catalog.Spec(16, 32).usd_per_second())
    assert lines["team-g"]["dollars"] == pytest.approx(RUN * catalog.GPU_TYPES[T4].usd_per_second())
    for instance_id in ids[:4]:  # the simulator bills from the image pull on: a little more than the estimate
        billed = sim.admin("GET", f"instances/{instance_id}")[1]["cost_usd"]
        assert billed >= RUN * catalog.Spec(2, 4).usd_per_second()

    assert cli.main(["cost", "--provider", "eci", "--cluster-id", "c1", "--namespace", "team-a"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAMESPACE", "INSTANCES", "RUNNING", "VCPU", "GIB", "USD", "SAVED"]
    assert [row.split()[0] for row in table[1:-1]] == ["team-a", "TOTAL"]


def test_a_spot_instance_costs_the_market_price_it_was_bought_at_and_says_what_it_saved(
    sim: Sim, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ECI bills a spot instance at the market price of its purchase, which its description does not
    carry: the provider asks the price API, and the cost is the bill's, not pay-as-you-go's."""
    bid = {spot.STRATEGY: "SpotAsPriceGo", spot.DURATION: "0"}
    jobs = [dataclasses.replace(_job(f"s{i}", "team-spot", 2, 4, cluster="c-spot"), annotations=bid) for i in range(2)]
    ids = asyncio.run(_make(sim, [*jobs, _job("d1", "team-dear", 2, 4, cluster="c-spot")]))
    sim.advance(300)
    for key, value in sim.eci_env().items():
        monkeypatch.setenv(key, value)
    assert cli.main(["cost", "--provider", "eci", "--cluster-id", "c-spot", "--output", "json"]) == 0
    lines = {line["namespace"]: line for line in json.loads(capsys.readouterr().out)["namespaces"]}
    hourly = [sim.admin("GET", f"instances/{i}")[1]["spot_hourly"] for i in ids[:2]]
    assert all(0 < h < 3600 * catalog.Spec(2, 4).usd_per_second() for h in hourly), hourly
    assert lines["team-spot"]["dollars"] == pytest.approx(sum(RUN * h / 3600 for h in hourly), rel=0.05)
    listed = 2 * RUN * catalog.Spec(2, 4).usd_per_second()
    assert lines["team-spot"]["saved"] == pytest.approx(listed - lines["team-spot"]["dollars"])
    assert lines["team-dear"]["dollars"] == pytest.approx(RUN * catalog.Spec(2, 4).usd_per_second())
    assert lines["team-dear"]["saved"] == 0.0


def test_a_running_instance_costs_up_to_now_and_one_not_started_nothing() -> None:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    tags = {models.TAG_NAMESPACE: "ns"}
    live = models.InstanceState("eci-1", models.InstanceStatus.RUNNING, tags, started_at=start, cpu=2, memory_gib=4)
    waiting = models.InstanceState("eci-2", models.InstanceStatus.PENDING, {}, cpu=2, memory_gib=4)
    lines = cost.per_namespace([live, waiting], eci_profile.PROFILE, start.timestamp() + 60)
    assert [(x.namespace, x.instances, x.running, x.cpu, x.dollars) for x in lines] == [
        ("ns", 1, 1, 2, pytest.approx(60 * eci_profile.PROFILE.price(2, 4))),
        (cost.NO_NAMESPACE, 1, 0, 0, 0.0),
    ]


def test_the_profiles_gpu_types_are_the_simulators_at_its_prices() -> None:
    for gpu in eci_profile.GPU_SIZES:
        sold = catalog.GPU_TYPES[gpu.instance_type]
        assert (gpu.cpu, gpu.memory_gib, gpu.gpus) == (sold.cpu, sold.memory, sold.gpus)
        rate = eci_profile.PROFILE.price(gpu.cpu, gpu.memory_gib) + gpu.gpus * gpu.per_gpu_second
        assert rate == pytest.approx(sold.usd_per_second())
