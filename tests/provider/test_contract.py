"""The provider contract (``vnode.provider.base``), one suite for every provider.

ECI and ACI against the simulated cloud, the process provider on this host, and ``memory``, a
provider written inside the tests from the profile and the protocol alone. Each must: make an
instance once per client token, answer ``NotFound`` for an instance it does not know, take a
delete twice (and one of an unknown instance), and report through its change feed a new
instance, a change and a removal, starting with a complete answer. The optional abilities
(logs, exec, attach, port-forward, stats) are found by protocol, as the node finds them, and
checked where present.

A new provider runs it by adding a ``Subject`` to ``SUBJECTS`` below: how to make the provider,
a spec of a long-running instance, an id it cannot know, and how its cloud's time moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.cloudsim.conftest import Sim, running
from tests.provider import memory
from vnode import errors, models, settings
from vnode.node import instances
from vnode.provider import base, registry, streams
from vnode.provider.aci import config as aci_config
from vnode.provider.aci import provider as aci
from vnode.provider.eci import config as eci_config
from vnode.provider.eci import provider as eci
from vnode.provider.process import provider as process

NODE = {models.TAG_CLUSTER: "contract", models.TAG_NODE: "vn-contract"}
PROVIDERS = ("eci", "aci", "process", "memory")


LogOptions = base.LogRequest


@dataclasses.dataclass
class Subject:
    """One provider under the contract, and what the suite needs to drive it."""

    provider: base.Provider
    #: The containers of a long-running instance (the pod's name and tags are the suite's).
    containers: tuple[models.ContainerSpec, ...]
    #: An instance id of the provider's own form that it cannot know.
    unknown: str
    #: Moves the cloud's time on (a simulated clock); a real one moves by itself.
    settle: Callable[[], None] = lambda: None
    #: The containers of an instance listening on a TCP port, for port-forward.
    listening: Callable[[int], tuple[models.ContainerSpec, ...]] | None = None
    #: The containers of an instance whose "app" keeps writing, for attach (else ``containers``).
    talking: tuple[models.ContainerSpec, ...] | None = None

    def spec(self, name: str, containers: tuple[models.ContainerSpec, ...] | None = None) -> models.InstanceSpec:
        return models.InstanceSpec(
            name=f"contract-{name}",
            client_token=f"uid-{name}",
            containers=containers or self.containers,
            cpu=1,
            memory_gib=2,
            termination_grace_seconds=0,
            tags={**NODE, models.TAG_NAMESPACE: "ns", models.TAG_NAME: name, models.TAG_POD_UID: f"uid-{name}"},
        )


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("contract-sim"), profile="fast") as sim:
        yield sim


def _eci(sim: Sim) -> Subject:
    config = eci_config.EciSettings(
        region=sim.region,
        endpoint=sim.info["eci"]["endpoint"],
        access_key=sim.info["eci"]["access_key_id"],
        secret_key=sim.info["eci"]["access_key_secret"],
        vswitches=tuple(v["id"] for v in sim.vswitches),
        security_group=sim.info["security_group_id"],
    )
    app = (models.ContainerSpec(name="app", image="nginx"),)
    return Subject(eci.EciProvider(config), app, "eci-doesnotexist", settle=lambda: sim.advance(60))


def _aci(sim: Sim) -> Subject:
    info = sim.info["aci"]
    config = aci_config.AciSettings(
        region=info["location"],
        endpoint=info["endpoint"],
        ca_file=info["ca_file"],
        subscription_id=info["subscription_id"],
        resource_group=info["resource_group"],
        token=info["token"],
    )
    app = (models.ContainerSpec(name="app", image="nginx"),)
    return Subject(aci.AciProvider(config), app, "doesnotexist", settle=lambda: sim.advance(60))


def _process(state_dir: pathlib.Path) -> Subject:
    def server(port: int) -> tuple[models.ContainerSpec, ...]:
        argv = (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1")
        return (models.ContainerSpec(name="app", image="python", command=argv),)

    app = (models.ContainerSpec(name="app", image="busybox", command=("sh", "-c", "echo started; sleep 600")),)
    ticks = ("sh", "-c", "while :; do echo tick; sleep 0.1; done")
    talking = (models.ContainerSpec(name="app", image="busybox", command=ticks),)
    provider = process.ProcessProvider(state_dir, lifeline=os.getpid(), poll_interval=0.05)
    return Subject(provider, app, "proc-doesnotexist", listening=server, talking=talking)


def _memory() -> Subject:
    return Subject(memory.MemoryProvider(), (models.ContainerSpec(name="app", image="any"),), "mem-0")


@pytest.fixture(params=PROVIDERS)
async def subject(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[Subject]:
    name = request.param
    if name in ("eci", "aci"):
        sim: Sim = request.getfixturevalue("cloud")
        status, body = sim.admin("POST", "reset", {})
        assert status == 200, body
        made = _eci(sim) if name == "eci" else _aci(sim)
    elif name == "process":
        made = _process(tmp_path / "process")
    else:
        made = _memory()
    try:
        yield made
    finally:
        await made.provider.close()
        if name == "process":
            process.stop_all(tmp_path / "process")


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 20, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (the process provider's clock is the real one)."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within}s")
        await asyncio.sleep(0.05)


async def running_instance(subject: Subject, name: str, containers: Any = None) -> models.InstanceState:
    made = await subject.provider.create(subject.spec(name, containers))
    subject.settle()

    async def ready() -> models.InstanceState | None:
        state = await subject.provider.get(made.id)
        return state if state.status is models.InstanceStatus.RUNNING else None

    state: models.InstanceState = await eventually(ready, what=f"{name} Running")
    return state


# --- the core ---


def test_it_is_a_provider_and_declares_a_profile(subject: Subject) -> None:
    assert isinstance(subject.provider, base.Provider)
    found = memory.PROFILE if subject.provider.name == "memory" else registry.profile_of(subject.provider.name)
    assert found.container_id_scheme == subject.provider.container_id_scheme


async def test_create_is_idempotent_by_client_token(subject: Subject) -> None:
    first = await subject.provider.create(subject.spec("once"))
    again = await subject.provider.create(subject.spec("once"))
    assert again.id == first.id
    assert first.tags[models.TAG_POD_UID] == "uid-once"
    listed = await subject.provider.list({**NODE, models.TAG_POD_UID: "uid-once"})
    assert [s.id for s in listed] == [first.id]


async def test_get_of_an_unknown_instance_is_not_found(subject: Subject) -> None:
    with pytest.raises(errors.NotFound):
        await subject.provider.get(subject.unknown)


async def test_delete_is_idempotent_and_the_instance_goes(subject: Subject) -> None:
    made = await subject.provider.create(subject.spec("doomed"))
    await subject.provider.delete(made.id, grace_seconds=0)
    await subject.provider.delete(made.id, grace_seconds=0)
    await subject.provider.delete(subject.unknown, grace_seconds=0)

    async def gone() -> bool:
        subject.settle()
        return all(s.id != made.id for s in await subject.provider.list(NODE))

    await eventually(gone, what="the deleted instance gone from the listing")


async def test_the_change_feed_reports_new_changed_and_gone_instances(subject: Subject) -> None:
    node = instances.Instances(NODE[models.TAG_CLUSTER], NODE[models.TAG_NODE])
    first = await subject.provider.changes(NODE, None)
    assert first.complete, "the answer to no cursor holds every instance"
    node.apply(first)
    assert node.by_uid == {}
    kept = await subject.provider.create(subject.spec("kept"))
    doomed = await subject.provider.create(subject.spec("doomed"))
    subject.settle()

    async def step_until(check: Callable[[base.Changes], bool], what: str) -> None:
        async def stepped() -> bool:
            answer = await subject.provider.changes(NODE, node.cursor)
            node.apply(answer)
            return check(answer)

        await eventually(stepped, what=what)

    def running(uid: str) -> bool:
        state = node.by_uid.get(uid)
        return state is not None and state.status is models.InstanceStatus.RUNNING

    # New instances appear, and their change to Running shows.
    await step_until(lambda _: running("uid-kept") and running("uid-doomed"), "both new instances Running")
    assert node.by_uid["uid-kept"].id == kept.id
    await subject.provider.delete(doomed.id, grace_seconds=0)
    reported: list[bool] = []

    def doomed_gone(answer: base.Changes) -> bool:
        changed = {s.id for s in answer.changed}
        reported.append(doomed.id in answer.gone or (answer.complete and doomed.id not in changed))
        subject.settle()
        return "uid-doomed" not in node.by_uid

    await step_until(doomed_gone, "the deleted instance reported gone")
    assert reported[-1], "a removal shows in ``gone``, or by absence from a complete answer"
    assert node.by_uid["uid-kept"].id == kept.id


# --- optional abilities, found by protocol ---


async def test_logs_where_offered(subject: Subject) -> None:
    if not isinstance(subject.provider, base.SupportsLogs):
        pytest.skip("no SupportsLogs")
    state = await running_instance(subject, "logs")
    subject.settle()
    chunks = [chunk async for chunk in subject.provider.logs(state.id, "app", LogOptions())]
    assert all(isinstance(chunk, bytes) for chunk in chunks)


async def test_exec_where_offered(subject: Subject) -> None:
    if not isinstance(subject.provider, base.SupportsExec):
        pytest.skip("no SupportsExec")
    state = await running_instance(subject, "exec")
    result = await subject.provider.exec(state.id, "app", ["sh", "-c", "echo contract"])
    assert (result.exit_code, result.stdout) == (0, b"contract\n")
    with pytest.raises(errors.NotFound):
        await subject.provider.exec(subject.unknown, "app", ["true"])


@dataclasses.dataclass
class Session:
    """The client's side of an attach with nothing to send: what the container writes is kept."""

    out: bytearray = dataclasses.field(default_factory=bytearray)
    stdin: AsyncIterator[bytes] | None = None
    resizes: AsyncIterator[streams.TerminalSize] | None = None

    async def write_stdout(self, data: bytes) -> None:
        self.out += data

    async def write_stderr(self, data: bytes) -> None:
        self.out += data


async def test_attach_where_offered(subject: Subject) -> None:
    if not isinstance(subject.provider, streams.SupportsAttach):
        pytest.skip("no SupportsAttach")
    state = await running_instance(subject, "attach", subject.talking)
    session = Session()
    attached = asyncio.create_task(subject.provider.attach(state.id, "app", session, tty=False))
    try:

        async def shown() -> bool:
            return bool(session.out) or attached.done()

        await eventually(shown, what="output while attached")
        assert session.out
    finally:  # the client goes away: the provider detaches (or has returned)
        attached.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await attached


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_port_forward_where_offered(subject: Subject) -> None:
    if not isinstance(subject.provider, streams.SupportsPortForward):
        pytest.skip("no SupportsPortForward")
    if subject.listening is None:
        pytest.skip("no listening workload given for this provider")
    port = _free_port()
    state = await running_instance(subject, "forward", subject.listening(port))
    provider = subject.provider

    async def connected() -> streams.PortStream | None:
        try:
            return await provider.open_port(state.id, port)
        except errors.NotFound:
            return None  # not listening yet

    stream: streams.PortStream = await eventually(connected, what=f"something listening on {port}")
    try:
        await stream.write(b"GET / HTTP/1.0\r\n\r\n")
        await stream.close_write()
        assert (await asyncio.wait_for(stream.read(), timeout=10)).startswith(b"HTTP/")
    finally:
        await stream.close()


async def test_stats_where_offered(subject: Subject) -> None:
    if not isinstance(subject.provider, base.SupportsStats):
        pytest.skip("no SupportsStats")
    state = await running_instance(subject, "stats")
    subject.settle()
    figures = await subject.provider.stats([state.id, subject.unknown])
    assert subject.unknown not in figures
    names = {"cpu_nanocores", "memory_working_set_bytes", "cpu_usage_core_nanoseconds"}
    for containers in figures.values():
        for values in containers.values():
            assert set(values) <= names


def test_a_new_provider_is_one_profile_and_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory provider registered as a built-in one: settings, factory and profile come from it."""
    monkeypatch.setitem(registry.BUILTIN, "memory", "tests.provider.memory")
    registry.profile_of.cache_clear()
    try:
        loaded = settings.load({"VNODE_NODE_NAME": "vn-0", "VNODE_PROVIDER": "memory"})
        assert (loaded.taint, loaded.profile.container_id_scheme) == ("memory", "mem")
        assert isinstance(registry.load("memory")(loaded), memory.MemoryProvider)
    finally:
        registry.profile_of.cache_clear()
