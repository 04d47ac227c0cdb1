"""The official ACI SDK (azure-mgmt-containerinstance) against the simulator's ACI dialect over HTTPS.

The simulator runs on a paused clock with a profile of fixed stage times, so each test steps
simulated time and sees exactly the states the profile says; the SDK's pollers run in this
thread while the cloud runs in its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import ssl
import time
import urllib.request
import uuid
from collections.abc import Iterator

import aiohttp
import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as aci_models
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient as AsyncClient

from tests.cloudsim.aci_fixtures import RESOURCE_GROUP, STEPPED, SUBSCRIPTION, TOKEN, SimThread, StaticToken, group
from tests.cloudsim.conftest import Sim
from tests.waiting import wait_for
from vnode.cloudsim import aci, aci_tokens, cloud, console, lifecycle, model, ratelimit, server
from vnode.cloudsim.clock import Clock
from vnode.cloudsim.store import Store

RG = RESOURCE_GROUP


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("aci-tls")
    aci.ensure_tls(path)
    return path


@pytest.fixture
def aci_sim(tmp_path: pathlib.Path, tls_dir: pathlib.Path) -> Iterator[SimThread]:
    server = SimThread(tmp_path, tls_dir, clock=Clock.manual(), profile=STEPPED, page_size=2)
    try:
        yield server.start()
    finally:
        server.stop()


def _url(sim: SimThread, name: str = "", suffix: str = "") -> str:
    base = f"{sim.base_url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance"
    return f"{base}/containerGroups{'/' + name if name else ''}{suffix}?api-version=2023-05-01"


def test_sdk_sees_the_profile_states_then_polls_create_to_completion(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        poller = client.container_groups.begin_create_or_update(RG, "web-1", group())
        first = client.container_groups.get(RG, "web-1")
        assert (first.provisioning_state, first.instance_view.state) == ("Pending", "Pending")
        assert first.id == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/{aci.RESOURCE_TYPE}/web-1"
        assert first.tags == {"NodeName": "virtual-node-aci-0", "Namespace": "default", "PodName": "web"}
        assert first.location == "westeurope"

        aci_sim.call(lambda c: c.advance(1.5))  # scheduled; pulling for 5 s
        pulling = client.container_groups.get(RG, "web-1")
        assert (pulling.provisioning_state, pulling.instance_view.state) == ("Creating", "Pending")
        assert pulling.containers[0].instance_view.current_state.state == "Waiting"
        assert [e.name for e in pulling.containers[0].instance_view.events] == ["Pulling"]

        aci_sim.call(lambda c: c.advance(10))
        done = poller.result(timeout=30)
        assert done.provisioning_state == "Succeeded"
        assert done.instance_view.state == "Running"
        container = done.containers[0]
        assert container.instance_view.current_state.state == "Running"
        assert container.instance_view.restart_count == 0
        assert [e.name for e in container.instance_view.events] == ["Pulling", "Pulled", "Created", "Started"]
        assert container.resources.requests.cpu == 1.0
        assert container.resources.requests.memory_in_gb == 2.0
        env = {e.name: e.value for e in container.environment_variables}
        assert env == {"MODE": "demo", "SECRET": None}  # secure values are never returned
        assert done.ip_address.ip.startswith("10.1.")
        assert done.os_type == "Linux"
        assert done.restart_policy == "Always"

        aci_sim.call(lambda c: c.advance(35))
        logs = client.containers.list_logs(RG, "web-1", "main", tail=2, timestamps=True)
        lines = logs.content.splitlines()
        assert len(lines) == 2
        assert all(line[:4].isdigit() and "GET /" in line for line in lines)

        deleting = client.container_groups.begin_delete(RG, "web-1")
        assert client.container_groups.get(RG, "web-1").provisioning_state == "Deleting"
        aci_sim.call(lambda c: c.advance(3))
        deleting.result(timeout=30)
        with pytest.raises(ResourceNotFoundError) as info:
            client.container_groups.get(RG, "web-1")
        assert info.value.error.code == "ResourceNotFound"
        # Deleting what is gone is not an error (ARM answers 204).
        client.container_groups.begin_delete(RG, "web-1").result(timeout=30)


def test_list_pages_by_resource_group_and_subscription(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        for i in range(5):
            client.container_groups.begin_create_or_update(RG, f"app-{i}", group(), polling=False)
        client.container_groups.begin_create_or_update("other-rg", "elsewhere", group(), polling=False)
        listed = [g.name for g in client.container_groups.list_by_resource_group(RG)]  # page size is 2
        assert listed == [f"app-{i}" for i in range(5)]
        assert sorted(g.name for g in client.container_groups.list()) == sorted([*listed, "elsewhere"])
        assert [g.name for g in client.container_groups.list_by_resource_group("empty-rg")] == []


def test_a_put_repeated_is_idempotent_and_a_changed_one_replaces(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "same", group(), polling=False)
        client.container_groups.begin_create_or_update(RG, "same", group(), polling=False)
        assert aci_sim.call(lambda c: len(c.live)) == 1
        client.container_groups.begin_create_or_update(RG, "same", group(cpu=2, memory=4), polling=False)
        statuses = aci_sim.call(lambda c: sorted(i.status for i in c.live.values()))
        assert statuses == [model.SCHEDULING, model.TERMINATING]
        assert client.container_groups.get(RG, "same").containers[0].resources.requests.cpu == 2.0


def test_restart_is_a_long_running_operation_that_counts_restarts(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "again", group(), polling=False)
        aci_sim.call(lambda c: c.advance(10))
        client.container_groups.begin_restart(RG, "again").result(timeout=30)
        aci_sim.call(lambda c: c.advance(10))
        restarted = client.container_groups.get(RG, "again")
        assert restarted.instance_view.state == "Running"
        assert restarted.containers[0].instance_view.restart_count == 1
        assert restarted.containers[0].instance_view.previous_state.state == "Terminated"


def test_stop_releases_the_compute_and_start_polls_until_it_runs_again(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "pausable", group(), polling=False)
        aci_sim.call(lambda c: c.advance(10))
        running = client.container_groups.get(RG, "pausable")
        assert running.instance_view.state == "Running"
        used = aci_sim.call(lambda c: c.used_cpu)

        assert client.container_groups.stop(RG, "pausable") is None  # synchronous: 204
        stopped = client.container_groups.get(RG, "pausable")
        assert (stopped.provisioning_state, stopped.instance_view.state) == ("Succeeded", "Stopped")
        assert stopped.containers[0].instance_view.current_state.state == "Terminated"
        assert stopped.ip_address.ip == running.ip_address.ip
        assert aci_sim.call(lambda c: c.used_cpu) == used - 1.0
        billed = aci_sim.call(lambda c: c.cost(next(iter(c.live.values()))))
        aci_sim.call(lambda c: c.advance(100))  # stopped: nothing is billed
        assert aci_sim.call(lambda c: c.cost(next(iter(c.live.values())))) == billed
        client.container_groups.stop(RG, "pausable")  # again: harmless

        poller = client.container_groups.begin_start(RG, "pausable")
        assert client.container_groups.get(RG, "pausable").instance_view.state == "Pending"
        assert not poller.done()
        aci_sim.call(lambda c: c.advance(10))
        assert poller.result(timeout=30) is None
        started = client.container_groups.get(RG, "pausable")
        assert (started.provisioning_state, started.instance_view.state) == ("Succeeded", "Running")
        assert started.containers[0].instance_view.previous_state.state == "Terminated"
        assert aci_sim.call(lambda c: c.used_cpu) == used

        with pytest.raises(HttpResponseError) as info:  # starting a running group
            client.container_groups.begin_start(RG, "pausable")
        assert (info.value.status_code, info.value.error.code) == (409, "ContainerGroupTransitioning")
        with pytest.raises(ResourceNotFoundError):
            client.container_groups.stop(RG, "nothing-here")


def test_patch_replaces_the_tags_in_place_and_the_tag_index_follows(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "tagged", group(), polling=False)
        before = aci_sim.call(lambda c: next(iter(c.live)))
        updated = client.container_groups.update(RG, "tagged", aci_models.Resource(tags={"NodeName": "vk-1"}))
        assert updated.tags == {"NodeName": "vk-1"}
        assert client.container_groups.get(RG, "tagged").tags == {"NodeName": "vk-1"}
        by_tag = aci_sim.call(lambda c: sorted(k for k, v in c.by_tag.items() if before in v and k[0] == "NodeName"))
        assert by_tag == [("NodeName", "vk-1")]
        # A PUT that differs from the group only in its tags updates them in place too (no replacement).
        client.container_groups.begin_create_or_update(RG, "tagged", group(), polling=False)
        assert aci_sim.call(lambda c: list(c.live)) == [before]
        assert client.container_groups.get(RG, "tagged").tags["NodeName"] == "virtual-node-aci-0"
        with pytest.raises(HttpResponseError) as info:
            client.container_groups.update(RG, "tagged", aci_models.Resource(tags={"vnode.io/node": "x"}))
        assert (info.value.status_code, info.value.error.code) == (400, "InvalidTagNameCharacters")
        with pytest.raises(ResourceNotFoundError):
            client.container_groups.update(RG, "nothing-here", aci_models.Resource(tags={}))


def test_jobs_end_succeeded_or_failed_with_exit_codes_and_logs(aci_sim: SimThread) -> None:
    pi = ["perl", "-Mbignum=bpi", "-wle", "print bpi(30)"]
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(
            RG, "pi", group("perl", command=pi, restart_policy="Never"), polling=False
        )
        client.container_groups.begin_create_or_update(
            RG, "fails", group("busybox", command=["sh", "-c", "exit 3"], restart_policy="Never"), polling=False
        )
        aci_sim.call(lambda c: c.advance(30))
        ok = client.container_groups.get(RG, "pi")
        assert (ok.provisioning_state, ok.instance_view.state) == ("Succeeded", "Succeeded")
        assert ok.containers[0].instance_view.current_state.exit_code == 0
        assert client.containers.list_logs(RG, "pi", "main").content.startswith("3.14159")
        bad = client.container_groups.get(RG, "fails")
        assert (bad.provisioning_state, bad.instance_view.state) == ("Succeeded", "Failed")
        state = bad.containers[0].instance_view.current_state
        assert (state.state, state.exit_code) == ("Terminated", 3)


def test_an_unknown_image_fails_the_create_operation(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        poller = client.container_groups.begin_create_or_update(RG, "nope", group("example.com/no-such-image"))
        aci_sim.call(lambda c: c.advance(10))
        with pytest.raises(HttpResponseError) as info:
            poller.result(timeout=30)
        assert info.value.error.code == "InaccessibleImage"
        assert "Failed to pull image" in info.value.error.message
        failed = client.container_groups.get(RG, "nope")
        assert (failed.provisioning_state, failed.instance_view.state) == ("Failed", "Failed")


def test_a_bad_token_is_refused_with_arm_401(aci_sim: SimThread) -> None:
    with aci_sim.client(token="not-the-token") as client, pytest.raises(ClientAuthenticationError) as info:
        client.container_groups.get(RG, "web-1")
    assert info.value.status_code == 401
    assert info.value.error.code == "InvalidAuthenticationToken"
    answer = requests.get(_url(aci_sim, "web-1"), verify=str(aci_sim.tls_dir / "aci-ca.pem"), timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "AuthenticationFailed"


def test_azure_ad_tokens_are_checked_as_arm_checks_them(aci_sim: SimThread) -> None:
    """A JWT the simulator minted works; expired, for another resource or from another directory, or
    with a forged signature, it is refused with ARM's own code."""
    seed = aci_sim.call(lambda c: c.seed)
    with aci_sim.client(token=aci_tokens.mint(seed)) as client:
        list(client.container_groups.list_by_resource_group(RG))  # accepted: no ClientAuthenticationError
    refused = {
        "ExpiredAuthenticationToken": aci_tokens.mint(seed, now=time.time() - 7200),
        "InvalidAuthenticationTokenAudience": aci_tokens.mint(seed, audience="https://vault.azure.net"),
        "InvalidAuthenticationTokenTenant": aci_tokens.mint(seed, tenant_id=str(uuid.uuid4())),
        "InvalidAuthenticationToken": aci_tokens.mint(seed + 1),  # signed by another simulator's key
    }
    for code, token in refused.items():
        with aci_sim.client(token=token) as client, pytest.raises(ClientAuthenticationError) as info:
            client.container_groups.get(RG, "web-1")
        assert (info.value.status_code, info.value.error.code) == (401, code)


def test_throttling_answers_429_with_retry_after_which_the_sdk_honours(
    tmp_path: pathlib.Path, tls_dir: pathlib.Path
) -> None:
    # A clock that runs: the bucket refills in real time, so the SDK's retry after Retry-After succeeds.
    server = SimThread(tmp_path, tls_dir, clock=Clock(), profile=STEPPED).start()
    try:
        server.call(lambda c: c.limiter.set("create", ratelimit.Limit(burst=1, rate=1)))
        with server.client(retry_total=0) as strict:
            strict.container_groups.begin_create_or_update(RG, "first", group(), polling=False)
            with pytest.raises(HttpResponseError) as info:
                strict.container_groups.begin_create_or_update(RG, "second", group(), polling=False)
        assert info.value.status_code == 429
        assert info.value.error.code == "TooManyRequests"
        assert info.value.response.headers["Retry-After"] == "1"
        assert server.call(lambda c: len(c.live)) == 1  # the refused call changed nothing

        with server.client() as patient:
            started = time.monotonic()
            patient.container_groups.begin_create_or_update(RG, "third", group(), polling=False)
            patient.container_groups.begin_create_or_update(RG, "fourth", group(), polling=False)
            took = time.monotonic() - started
        assert server.dialect.throttled >= 2  # the strict client's and at least one the patient client waited out
        assert took >= 0.9
        assert server.call(lambda c: sorted(i.spec.name for i in c.live.values())) == ["first", "fourth", "third"]
    finally:
        server.stop()


def test_malformed_bodies_get_arm_400_and_change_nothing(aci_sim: SimThread) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    verify = str(aci_sim.tls_dir / "aci-ca.pem")
    good = group().serialize()
    wrong_type = json.loads(json.dumps(good))
    wrong_type["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = "lots"
    no_location = {k: v for k, v in good.items() if k != "location"}
    cases = {
        "not json {": "InvalidRequestContent",
        json.dumps(wrong_type): "InvalidRequestContent",
        json.dumps(no_location): "LocationRequired",
    }
    for body, code in cases.items():
        answer = requests.put(_url(aci_sim, "bad"), data=body, headers=headers, verify=verify, timeout=10)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == code
        assert answer.json()["error"]["message"]
    with aci_sim.client() as client:
        with pytest.raises(HttpResponseError) as info:  # as on the real ARM: no "/" in tag names
            client.container_groups.begin_create_or_update(
                RG, "slash", group(tags={"vnode.io/node": "n"}), polling=False
            )
        assert (info.value.status_code, info.value.error.code) == (400, "InvalidTagNameCharacters")
        with pytest.raises(HttpResponseError) as info:
            client.container_groups.begin_create_or_update(RG, "huge", group(cpu=65, memory=128), polling=False)
        assert (info.value.status_code, info.value.error.code) == (400, "InvalidContainerGroupResourceRequest")
        with pytest.raises(HttpResponseError) as info:
            client.container_groups.begin_create_or_update(RG, "Bad_Name", group(), polling=False)
        assert (info.value.status_code, info.value.error.code) == (400, "InvalidResourceName")
    no_version = _url(aci_sim, "bad").split("?")[0]
    answer = requests.get(no_version, headers=headers, verify=verify, timeout=10)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    assert aci_sim.call(lambda c: len(c.live)) == 0


def test_groups_survive_a_restart_of_the_simulator(tmp_path: pathlib.Path, tls_dir: pathlib.Path) -> None:
    first = SimThread(tmp_path, tls_dir, clock=Clock.manual(), profile=STEPPED).start()
    try:
        with first.client() as client:
            client.container_groups.begin_create_or_update(RG, "durable", group(), polling=False)
            ip = client.container_groups.get(RG, "durable").ip_address.ip
    finally:
        first.stop()
    second = SimThread(tmp_path, tls_dir, clock=Clock.manual(), profile=STEPPED).start()
    try:
        with second.client() as client:
            again = client.container_groups.get(RG, "durable")
            assert (again.name, again.ip_address.ip, again.location) == ("durable", ip, "westeurope")
            assert [g.name for g in client.container_groups.list_by_resource_group(RG)] == ["durable"]
    finally:
        second.stop()


def test_the_cloud_tags_each_group_with_its_arm_identity(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "tagged", group(), polling=False)
    tags = wait_for(
        lambda: aci_sim.call(lambda c: {t.key: t.value for i in c.live.values() for t in i.spec.tags}),
        timeout=10,
        what="the instance",
    )
    assert tags[aci.TAG_GROUP] == f"{SUBSCRIPTION}/{RG}".lower()
    assert tags["PodName"] == "web"


async def test_the_dialect_and_console_mount_on_the_simulator_server_with_one_call_each(
    tmp_path: pathlib.Path,
) -> None:
    db = Store(tmp_path / "cloud.db")
    sim = cloud.Cloud(store=db, clock=Clock.manual(), profile=STEPPED, seed=7)
    srv = server.Server(sim)
    mounted = aci.mount(srv, tmp_path)
    srv.add_routes(console.routes(sim))
    task = asyncio.create_task(srv.run())
    try:
        await asyncio.wait_for(srv.ready.wait(), timeout=10)
        info = mounted.connection_info()
        assert info["token"] == TOKEN
        assert info["subscription_id"] == SUBSCRIPTION
        groups = (
            f"{info['endpoint']}/subscriptions/{info['subscription_id']}/resourceGroups/{info['resource_group']}"
            f"/providers/Microsoft.ContainerInstance/containerGroups?api-version={info['api_version']}"
        )
        context = ssl.create_default_context(cafile=info["ca_file"])
        async with aiohttp.ClientSession() as session:
            async with session.get(groups, headers={"Authorization": f"Bearer {info['token']}"}, ssl=context) as answer:
                assert answer.status == 200
                assert await answer.json() == {"value": []}
            async with session.get(f"http://127.0.0.1:{srv.port}/") as answer:
                assert answer.status == 200
                assert "vnode" in await answer.text()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        db.close()


class _AsyncStaticToken:
    """An ``AsyncTokenCredential`` returning the simulator's token (vnode's providers are async)."""

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(TOKEN, int(time.time()) + 3600)

    async def close(self) -> None:
        return None


async def test_the_async_sdk_works_too(tmp_path: pathlib.Path, tls_dir: pathlib.Path) -> None:
    server_thread = SimThread(tmp_path, tls_dir, clock=Clock(), profile=lifecycle.PROFILES["fast"]).start()
    try:
        async with AsyncClient(
            _AsyncStaticToken(),
            SUBSCRIPTION,
            base_url=server_thread.base_url,
            connection_verify=str(tls_dir / "aci-ca.pem"),
        ) as client:
            poller = await client.container_groups.begin_create_or_update(RG, "async-web", group())
            done = await poller.result()
            assert (done.provisioning_state, done.instance_view.state) == ("Succeeded", "Running")
            assert [g.name async for g in client.container_groups.list_by_resource_group(RG)] == ["async-web"]
            await (await client.container_groups.begin_delete(RG, "async-web")).result()
            with pytest.raises(ResourceNotFoundError):
                await client.container_groups.get(RG, "async-web")
    finally:
        server_thread.stop()


def test_vnode_cloudsim_serves_the_sdk_as_its_cloud_json_says(sim: Sim) -> None:
    """End to end: the ``vnode cloudsim`` process (the shared fast simulator of conftest.py)."""
    info = sim.info["aci"]
    client = ContainerInstanceManagementClient(
        StaticToken(info["token"]),
        info["subscription_id"],
        base_url=info["endpoint"],
        connection_verify=info["ca_file"],
    )
    with client:
        rg = info["resource_group"]
        done = client.container_groups.begin_create_or_update(rg, "e2e", group(location=info["location"])).result(
            timeout=60
        )
        assert (done.provisioning_state, done.instance_view.state) == ("Succeeded", "Running")
        assert [g.name for g in client.container_groups.list_by_resource_group(rg)] == ["e2e"]
        status, totals = sim.admin("GET", "totals")
        assert (status, totals["live"]) == (200, 1)  # the same cloud the ECI dialect serves
        with urllib.request.urlopen(sim.info["console_url"], timeout=10) as page:
            assert "vnode" in page.read().decode()
        client.container_groups.begin_delete(rg, "e2e").result(timeout=60)
        assert list(client.container_groups.list_by_resource_group(rg)) == []


def test_azure_monitor_metrics_of_a_container_group(aci_sim: SimThread) -> None:
    """``{group}/providers/Microsoft.Insights/metrics``: CpuUsage in millicores and MemoryUsage in
    bytes per interval, split by container with ``$filter=containerName eq '*'``; a tag pins the CPU."""
    pinned = group(containers=2, tags={"cloudsim-cpu-millicores": "600"})
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "pinned", pinned)
    aci_sim.call(lambda c: c.advance(10))
    aci_sim.call(lambda c: c.advance(240))
    now = aci_sim.call(lambda c: c.now())
    start, end = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) for t in (now - 180, now))
    verify = str(aci_sim.tls_dir / "aci-ca.pem")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = _url(aci_sim, "pinned", "/providers/Microsoft.Insights/metrics").replace("2023-05-01", "2023-10-01")
    query = {"metricnames": "CpuUsage,MemoryUsage", "timespan": f"{start}/{end}", "interval": "PT1M",
             "aggregation": "Average", "$filter": "containerName eq '*'"}  # fmt: skip
    answer = requests.get(base, params=query, headers=headers, verify=verify, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["namespace"] == aci.RESOURCE_TYPE
    cpu, memory = body["value"]
    assert cpu["name"]["value"] == "CpuUsage"
    assert cpu["unit"] == "Count"
    assert memory["name"]["value"] == "MemoryUsage"
    assert memory["unit"] == "Bytes"
    assert cpu["id"].endswith("/containerGroups/pinned/providers/Microsoft.Insights/metrics/CpuUsage")
    by_container = {s["metadatavalues"][0]["value"]: s["data"] for s in cpu["timeseries"]}
    assert set(by_container) == {"c0", "c1"}
    for data in by_container.values():
        full = [point["average"] for point in data[1:-1]]  # the first and last minutes are partial
        assert full
        assert all(value == pytest.approx(300) for value in full)
    assert all(point["average"] > 0 for s in memory["timeseries"] for point in s["data"][1:])

    whole = requests.get(base, params={**query, "$filter": ""}, headers=headers, verify=verify, timeout=10).json()
    (series,) = whole["value"][0]["timeseries"]
    assert series["metadatavalues"] == []
    assert series["data"][-2]["average"] == pytest.approx(600)

    unknown = requests.get(base, params={"metricnames": "DiskIo"}, headers=headers, verify=verify, timeout=10)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "BadRequest"
    lower = base.replace("Microsoft.Insights", "microsoft.insights")
    assert requests.get(lower, params=query, headers=headers, verify=verify, timeout=10).status_code == 200
