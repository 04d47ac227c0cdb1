"""The ACI provider against the simulator's ARM dialect over HTTPS (its own CA, bearer token).

The simulator runs as a child process with a paused clock; tests move time through its admin API.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.cloudsim.conftest import Sim, running
from tests.provider.fake_streams import FakeStreams, started
from tests.waiting import open_transports, until, wait_for
from vnode import errors, models, settings
from vnode.cloudsim import aci_tokens, catalog
from vnode.provider import base, registry, streams
from vnode.provider.aci import config as aci_config
from vnode.provider.aci import mapping as aci_mapping
from vnode.provider.aci import provider as aci
from vnode.provider.aci import terminal

NODE_TAGS = {models.TAG_CLUSTER: "c1", models.TAG_NODE: "vn-aci-0"}


LogOptions = base.LogRequest


@pytest.fixture(scope="module")
def aci_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("aci-provider-sim"), profile="fast") as sim:
        yield sim


@pytest.fixture
def sim(aci_sim: Sim) -> Sim:
    status, body = aci_sim.admin("POST", "reset", {})
    assert status == 200, body
    return aci_sim


def aci_settings(sim: Sim, **overrides: object) -> aci_config.AciSettings:
    info = sim.info["aci"]
    fields: dict[str, object] = {
        "region": info["location"],
        "endpoint": info["endpoint"],
        "ca_file": info["ca_file"],
        "subscription_id": info["subscription_id"],
        "resource_group": info["resource_group"],
        "token": info["token"],
    }
    fields.update(overrides)
    return aci_config.AciSettings.model_validate(fields)


@pytest.fixture
async def provider(sim: Sim) -> AsyncIterator[aci.AciProvider]:
    provider = aci.AciProvider(aci_settings(sim))
    try:
        yield provider
    finally:
        await provider.close()
        # A closed TLS connection (an exec's WebSocket) ends its shutdown over the loop's next turns.
        loop = asyncio.get_running_loop()
        await until(lambda: not open_transports(loop), within=10, what="the provider's sockets closed")


def spec(
    name: str = "web",
    *command: str,
    token: str = "",
    image: str = "nginx",
    cpu: float = 1,
    memory: float = 2,
    restart: str = "Always",
    vswitches: tuple[str, ...] = (),
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
        placement=models.Placement(vswitches=vswitches),
        tags={**NODE_TAGS, models.TAG_POD_UID: f"uid-{name}", **(tags or {})},
        annotations=annotations or {},
    )


def test_the_registry_names_the_aci_provider_and_it_meets_the_protocols(sim: Sim) -> None:
    provider = registry.load("aci")(settings.Settings(node_name="vn-aci-0", provider="aci", cloud=aci_settings(sim)))
    assert isinstance(provider, base.Provider)
    assert isinstance(provider, base.SupportsLogs)
    assert isinstance(provider, base.SupportsExec)
    assert isinstance(provider, base.SupportsStats)
    assert provider.container_id_scheme == "aci"


def test_missing_subscription_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="ACI_SUBSCRIPTION_ID"):
        aci.AciProvider(aci_config.AciSettings())


def test_missing_credentials_are_a_config_error_naming_both_kinds() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        aci.AciProvider(aci_config.AciSettings(subscription_id="sub", resource_group="rg"))
    assert "ACI_TOKEN" in str(caught.value)
    assert "ACI_CLIENT_SECRET" in str(caught.value)


async def test_create_returns_at_once_and_list_reports_running(sim: Sim, provider: aci.AciProvider) -> None:
    created = await provider.create(spec("web"))
    assert created.id == "web"
    assert created.status in (models.InstanceStatus.SCHEDULING, models.InstanceStatus.PENDING)
    assert created.tags == spec("web").tags
    sim.advance(10)
    (listed,) = await provider.list(NODE_TAGS)
    assert listed.status is models.InstanceStatus.RUNNING
    assert listed.tags == spec("web").tags
    assert listed.containers[0].state is models.ContainerState.RUNNING
    assert listed.ip
    assert "Started" in [e.reason for e in listed.events]
    assert (await provider.get("web")).status is models.InstanceStatus.RUNNING


async def test_create_is_idempotent_by_client_token(sim: Sim, provider: aci.AciProvider) -> None:
    first = await provider.create(spec("once"))
    sim.advance(5)
    again = await provider.create(spec("once"))
    assert again.id == first.id
    assert again.status is models.InstanceStatus.RUNNING
    assert sim.totals()["live"] == 1
    with pytest.raises(errors.Unavailable, match="another pod"):
        await provider.create(spec("once", token="uid-other"))
    assert sim.totals()["live"] == 1


async def test_delete_removes_the_group_and_repeats_harmlessly(sim: Sim, provider: aci.AciProvider) -> None:
    await provider.create(spec("gone"))
    await provider.delete("gone", grace_seconds=5)
    await provider.delete("gone", grace_seconds=5)
    sim.advance(60)
    assert await provider.list(NODE_TAGS) == []
    with pytest.raises(errors.NotFound):
        await provider.get("gone")
    await provider.delete("gone", grace_seconds=5)


async def test_capacity_refusal_in_the_first_subnet_moves_to_the_next(sim: Sim, provider: aci.AciProvider) -> None:
    first, second = sim.vswitches[0], sim.vswitches[1]
    status, body = sim.admin("POST", "stock", {"zone": first["zone"], "available": 0})
    assert status == 200, body
    created = await provider.create(spec("spill", vswitches=(first["id"], second["id"])))
    assert created.vswitch == second["id"]
    status, body = sim.admin("POST", "stock", {"zone": second["zone"], "available": 0})
    with pytest.raises(errors.CapacityError):
        await provider.create(spec("nowhere", vswitches=(first["id"], second["id"])))


async def test_http_429_is_throttled_with_retry_after(sim: Sim) -> None:
    provider = aci.AciProvider(aci_settings(sim), create_limit=None)
    try:
        status, body = sim.admin("PUT", "rate-limits/create", {"burst": 1, "rate": 0})
        assert status == 200, body
        await provider.create(spec("a"))
        with pytest.raises(errors.Throttled) as caught:
            await provider.create(spec("b"))
        assert caught.value.code == "TooManyRequests"
        assert caught.value.retry_after is not None
        assert caught.value.retry_after >= 1
    finally:
        await provider.close()


async def test_a_5xx_storm_is_unavailable_and_the_retry_makes_no_duplicate(sim: Sim, provider: aci.AciProvider) -> None:
    status, body = sim.admin("PUT", "faults/create", {"error_rate": 1.0, "error_status": 503})
    assert status == 200, body
    for _ in range(3):
        with pytest.raises(errors.Unavailable):
            await provider.create(spec("storm"))
    sim.admin("DELETE", "faults")
    first = await provider.create(spec("storm"))
    second = await provider.create(spec("storm"))
    assert first.id == second.id
    assert sim.totals()["live"] == 1


async def test_65_vcpu_is_an_invalid_spec(provider: aci.AciProvider) -> None:
    with pytest.raises(errors.InvalidSpec):
        await provider.create(spec("huge", cpu=65, memory=128))


async def test_a_wrong_token_is_forbidden(sim: Sim) -> None:
    provider = aci.AciProvider(aci_settings(sim, token="not-the-token"))
    try:
        with pytest.raises(errors.Forbidden):
            await provider.list(NODE_TAGS)
    finally:
        await provider.close()


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"now": time.time() - 7200}, "ExpiredAuthenticationToken"),
        ({"audience": "https://graph.microsoft.com"}, "InvalidAuthenticationTokenAudience"),
        ({"tenant_id": "00000000-0000-0000-0000-000000000001"}, "InvalidAuthenticationTokenTenant"),
    ],
)
async def test_an_azure_ad_token_arm_refuses_is_forbidden_with_arms_code(
    sim: Sim, claims: dict[str, Any], code: str
) -> None:
    """The daemon reads Forbidden as a configuration error (the node NotReady, saying why); the code
    tells the operator which: an expired token, one for another resource, one from another tenant."""
    provider = aci.AciProvider(aci_settings(sim, token=aci_tokens.mint(sim.seed, **claims)))
    try:
        with pytest.raises(errors.Forbidden) as caught:
            await provider.list(NODE_TAGS)
        assert caught.value.code == code
    finally:
        await provider.close()
    good = aci.AciProvider(aci_settings(sim, token=aci_tokens.mint(sim.seed)))
    try:
        await good.list(NODE_TAGS)  # accepted: no Forbidden
    finally:
        await good.close()


async def test_logs_and_exec_keep_arguments(sim: Sim, provider: aci.AciProvider) -> None:
    await provider.create(spec("hello", "sh", "-c", "echo hello; echo world", image="busybox", restart="Never"))
    await provider.create(spec("server"))
    sim.advance(5)
    assert b"".join([c async for c in provider.logs("hello", "app", LogOptions())]) == b"hello\nworld\n"
    assert b"".join([c async for c in provider.logs("hello", "app", LogOptions(tail_lines=1))]) == b"world\n"
    echoed = await provider.exec("server", "app", ["sh", "-c", 'echo "a b"'])
    assert echoed.stdout == b"a b\n"
    with pytest.raises(errors.NotFound):
        await provider.exec("server", "nope", ["true"])


async def test_list_follows_next_links_and_keeps_to_its_tags(sim: Sim) -> None:
    # More than one ARM page (100); the rate limits are lifted for the burst of creates.
    sim.admin("DELETE", "rate-limits/create")
    provider = aci.AciProvider(aci_settings(sim), create_limit=None)
    try:
        names = {(await provider.create(spec(f"p-{n}"))).id for n in range(105)}
        await provider.create(spec("other", tags={models.TAG_NODE: "vn-aci-1"}))
        listed = await provider.list(NODE_TAGS)
        assert {s.id for s in listed} == names
    finally:
        await provider.close()


async def test_a_16_vcpu_job_is_billed_at_its_spec(sim: Sim, provider: aci.AciProvider) -> None:
    command = ("perl", "-Mbignum=bpi", "-wle", "print bpi(2000)")
    await provider.create(spec("pi", *command, image="perl:5.34", cpu=16, memory=32, restart="Never"))
    sim.advance(120)
    done = await provider.get("pi")
    assert done.status is models.InstanceStatus.SUCCEEDED
    assert (done.cpu, done.memory_gib) == (16.0, 32.0)
    assert done.containers[0].exit_code == 0
    status, totals = sim.admin("GET", "totals")
    assert status == 200
    rate = 16 * catalog.USD_PER_VCPU_SECOND + 32 * catalog.USD_PER_GIB_SECOND
    assert 0 < totals["cost_usd"] < 120 * rate


def test_tags_round_trip_through_arm_spelling() -> None:
    tags = {models.TAG_NODE: "n", "plain": "v"}
    encoded = aci_mapping.encode_tags(tags)
    assert encoded == {"vnode.io-node": "n", "plain": "v"}
    assert aci_mapping.decode_tags({**encoded, aci_mapping.TOKEN_TAG: "t"}) == tags
    with pytest.raises(errors.InvalidSpec):
        aci_mapping.encode_tags({"other.io/x": "v"})


def test_group_names_are_ones_arm_accepts() -> None:
    valid = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,61}[a-z0-9]$")
    assert aci_mapping.arm_name("default-web") == "default-web"
    for name in ("t-" + "a" * 80 + "-x", "ns--pod", "Upper.Case", "-edge-"):
        assert valid.match(aci_mapping.arm_name(name)), aci_mapping.arm_name(name)
    assert aci_mapping.arm_name("a" * 70) != aci_mapping.arm_name("a" * 71)


async def test_a_put_whose_answer_is_lost_is_unavailable_and_its_retry_finds_the_group(sim: Sim) -> None:
    impatient = aci.AciProvider(aci_settings(sim), timeout=0.3)
    try:
        status, body = sim.admin("PUT", "faults/create", {"latency_ms": 1500})
        assert status == 200, body
        with pytest.raises(errors.Unavailable):
            await impatient.create(spec("lost"))
        await asyncio.to_thread(wait_for, lambda: sim.totals()["live"] == 1, timeout=10, what="the cloud to act")
        sim.admin("DELETE", "faults")
        again = await impatient.create(spec("lost"))
        assert again.id == "lost"
        assert sim.totals()["live"] == 1
    finally:
        await impatient.close()


async def test_follow_yields_what_the_log_gains(sim: Sim) -> None:
    provider = aci.AciProvider(aci_settings(sim), log_poll_interval=0.05)
    try:
        await provider.create(spec("follow"))
        sim.advance(25)
        stream = provider.logs("follow", "app", LogOptions(follow=True))
        first = await asyncio.wait_for(anext(stream), timeout=10)
        sim.advance(30)  # nginx writes an access-log line every 10 s
        more = await asyncio.wait_for(anext(stream), timeout=10)
        assert more
        assert not first.endswith(more)
        await stream.aclose()
    finally:
        await provider.close()


async def test_stats_read_azure_monitor_and_keep_a_cumulative_cpu_counter(sim: Sim, provider: aci.AciProvider) -> None:
    pinned = await provider.create(spec("pinned", tags={"cloudsim-cpu-millicores": "500"}))
    idle = await provider.create(spec("idle"))
    sim.advance(150)
    first = await provider.stats([pinned.id, idle.id, "not-a-group"])
    assert set(first) == {pinned.id, idle.id}
    assert first[pinned.id]["app"]["cpu_nanocores"] == pytest.approx(500_000_000)
    assert 0 < first[idle.id]["app"]["cpu_nanocores"] < 10_000_000
    assert first[idle.id]["app"]["memory_working_set_bytes"] > 0
    second = await provider.stats([pinned.id, idle.id])
    # Azure reports rates: the provider integrates them between its reads, so the counter grows.
    assert (
        second[pinned.id]["app"]["cpu_usage_core_nanoseconds"] > first[pinned.id]["app"]["cpu_usage_core_nanoseconds"]
    )


async def test_a_spot_pod_is_a_spot_group_and_refused_in_a_subnet(sim: Sim, provider: aci.AciProvider) -> None:
    created = await provider.create(spec("cheap", annotations={aci_mapping.PRIORITY: "Spot"}))
    assert created.interruptible
    sim.advance(5)
    got = await provider.get("cheap")
    assert got.status is models.InstanceStatus.RUNNING
    assert got.interruptible
    assert not (await provider.create(spec("dear", annotations={aci_mapping.PRIORITY: "Regular"}))).interruptible
    with pytest.raises(errors.InvalidSpec, match="outside a virtual network"):
        await provider.create(
            spec("netted", vswitches=(sim.vswitches[0]["id"],), annotations={aci_mapping.PRIORITY: "spot"})
        )
    assert sim.totals()["live"] == 2


# --- ACI's exec is a terminal (vnode/provider/aci/terminal.py): kubectl exec -it is joined to it; a
# command with nothing typed gives its output; stdin without a terminal is refused by name, since
# typed into a terminal it would come back echoed, not piped.


async def _terminal_running(sim: Sim, provider: aci.AciProvider, name: str) -> str:
    return await started(sim, provider, spec(name))


async def test_exec_it_joins_the_client_to_the_terminal(sim: Sim, provider: aci.AciProvider) -> None:
    group = await _terminal_running(sim, provider, "tty")
    typed = [b"stty size\r", b'echo "a b"\r', b"exit\r"]
    session = FakeStreams(typed, [streams.TerminalSize(width=120, height=40)])
    assert await provider.exec_stream(group, "app", ["sh"], session, tty=True) == 0, "ACI gives no exit code"
    shown = session.out.decode()
    assert shown.startswith("# stty size\r\n40 120\r\n# "), shown  # the prompt, the echo, the first size
    assert 'echo "a b"\r\na b\r\n# exit\r\n' in shown
    assert session.err == b""


async def test_the_end_of_what_is_typed_ends_the_shell_as_ctrl_d(sim: Sim, provider: aci.AciProvider) -> None:
    group = await _terminal_running(sim, provider, "eof")
    session = FakeStreams([b"echo bye\r"])
    assert await asyncio.wait_for(provider.exec_stream(group, "app", ["sh"], session, tty=True), 20) == 0
    assert session.out.decode() == "# echo bye\r\nbye\r\n# "


async def test_a_command_with_nothing_typed_gives_its_output(sim: Sim, provider: aci.AciProvider) -> None:
    group = await _terminal_running(sim, provider, "once")
    session = FakeStreams([], stdin=False)
    assert await provider.exec_stream(group, "app", ["echo", "a  b"], session, tty=False) == 0
    assert session.out == b"a  b\n"


async def test_stdin_without_a_terminal_is_refused_by_name(sim: Sim, provider: aci.AciProvider) -> None:
    group = await _terminal_running(sim, provider, "pipe")
    with pytest.raises(errors.InvalidSpec, match="ACI's exec is a terminal") as refused:
        await provider.exec_stream(group, "app", ["cat"], FakeStreams([b"data\n"]), tty=False)
    assert refused.value.message == terminal.NO_PIPE
    with pytest.raises(errors.InvalidSpec, match="use exec -it"):
        await provider.exec(group, "app", ["cat"], stdin=b"data\n")


async def test_what_aci_cannot_do_is_refused_by_name_not_answered_wrongly(sim: Sim, provider: aci.AciProvider) -> None:
    """A previous run's log ACI does not keep, and kubectl cp's tar through a terminal: refused, naming why."""
    group = await _terminal_running(sim, provider, "norefuse")
    with pytest.raises(errors.InvalidSpec, match="no log of a container's previous run"):
        _ = [c async for c in provider.logs(group, "app", LogOptions(previous=True))]
    with pytest.raises(errors.InvalidSpec, match="kubectl cp is not supported by provider aci"):
        await provider.exec_stream(
            group, "app", ["tar", "cf", "-", "data.txt"], FakeStreams([], stdin=False), tty=False
        )
