"""The process provider runs an instance's containers as host processes and honours the provider contract."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import pathlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests import waiting
from vnode import errors, models
from vnode.cluster import launcher
from vnode.provider import base, registry, streams
from vnode.provider.process import provider as process
from vnode.provider.process import records

TERMINAL = (models.InstanceStatus.SUCCEEDED, models.InstanceStatus.FAILED)


LogOptions = base.LogRequest


@pytest.fixture
def state_dir(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """The provider's state dir; every process recorded under it is killed afterwards, pass or fail."""
    directory = tmp_path / "process"
    try:
        yield directory
    finally:
        process.stop_all(directory)


@pytest.fixture
def provider(state_dir: pathlib.Path) -> process.ProcessProvider:
    # The lifeline is this test process: if the session is killed, the runners clean up after it.
    return process.ProcessProvider(state_dir, lifeline=os.getpid(), poll_interval=0.05)


def spec(*containers: models.ContainerSpec, token: str = "tok", restart: str = "Never", grace: int = 30,
         volumes: tuple[models.VolumeSpec, ...] = (), **tags: str) -> models.InstanceSpec:  # fmt: skip
    return models.InstanceSpec(
        name="pod",
        client_token=token,
        containers=containers,
        cpu=1,
        memory_gib=2,
        restart_policy=restart,
        termination_grace_seconds=grace,
        volumes=volumes,
        tags={models.TAG_CLUSTER: "c1", models.TAG_NODE: "vnode-host", **tags},
    )


def sh(name: str, script: str, **env: str) -> models.ContainerSpec:
    envs = tuple(models.EnvVar(k, v) for k, v in env.items())
    return models.ContainerSpec(name=name, image="busybox", command=("sh", "-c", script), env=envs)


async def until(
    provider: process.ProcessProvider,
    instance_id: str,
    check: Callable[[models.InstanceState], bool],
    *,
    within: float = 15,
) -> models.InstanceState:
    seen: list[models.InstanceState] = []

    async def satisfied() -> models.InstanceState | None:
        seen.append(await provider.get(instance_id))
        return seen[-1] if check(seen[-1]) else None

    def what() -> str:
        return f"instance {instance_id} to satisfy the check; last state {seen[-1] if seen else None}"

    return await waiting.until(satisfied, within=within, what=what, interval=0.05)


async def gone(provider: process.ProcessProvider, instance_id: str, *, within: float = 15) -> None:
    async def unlisted() -> bool:
        return all(s.id != instance_id for s in await provider.list({}))

    await waiting.until(unlisted, within=within, what=f"instance {instance_id} to be unlisted", interval=0.05)


async def read(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def test_process_is_a_provider_with_logs_and_is_registered(provider: process.ProcessProvider) -> None:
    assert isinstance(provider, base.Provider)
    assert isinstance(provider, base.SupportsLogs)
    assert "process" in registry.available()
    assert registry.load("process") is process.create


async def test_create_runs_the_command_and_reflects_its_exit_code(provider: process.ProcessProvider) -> None:
    first = await provider.create(spec(sh("main", "echo started $POD_NAME; exit 3", POD_NAME="web-0")))
    again = await provider.create(spec(sh("main", "echo started $POD_NAME; exit 3", POD_NAME="web-0")))
    assert again.id == first.id
    assert first.ip == "127.0.0.1"

    done = await until(provider, first.id, lambda s: s.status in TERMINAL)
    assert done.status == models.InstanceStatus.FAILED
    (main,) = done.containers
    assert (main.state, main.exit_code, main.reason) == (models.ContainerState.TERMINATED, 3, "Error")
    assert main.started_at is not None
    assert main.finished_at is not None
    assert {e.reason for e in done.events} >= {"Created", "Started"}
    assert await read(provider.logs(first.id, "main", LogOptions())) == b"started web-0\n"
    assert len(await provider.list({models.TAG_NODE: "vnode-host"})) == 1


async def test_tags_are_stored_and_list_filters_by_them(provider: process.ProcessProvider) -> None:
    a = await provider.create(spec(sh("c", "sleep 30"), token="a", **{models.TAG_POD_UID: "uid-a"}))
    b = await provider.create(spec(sh("c", "sleep 30"), token="b", **{models.TAG_POD_UID: "uid-b"}))
    assert [s.id for s in await provider.list({models.TAG_POD_UID: "uid-b"})] == [b.id]
    assert (await provider.get(a.id)).tags[models.TAG_POD_UID] == "uid-a"
    assert await provider.list({models.TAG_CLUSTER: "other"}) == []
    with pytest.raises(errors.NotFound):
        await provider.get("proc-unknown")


async def test_on_failure_restarts_and_keeps_the_previous_log(provider: process.ProcessProvider,
                                                              tmp_path: pathlib.Path) -> None:  # fmt: skip
    marker = tmp_path / "ran-once"
    script = f"if [ -e {marker} ]; then echo second; exit 0; fi; touch {marker}; echo first; exit 1"
    created = await provider.create(spec(sh("job", script), restart="OnFailure"))

    done = await until(provider, created.id, lambda s: s.status in TERMINAL)
    assert done.status == models.InstanceStatus.SUCCEEDED
    (job,) = done.containers
    assert (job.exit_code, job.restart_count, job.last_exit_code) == (0, 1, 1)
    assert await read(provider.logs(created.id, "job", LogOptions())) == b"second\n"
    assert await read(provider.logs(created.id, "job", LogOptions(previous=True))) == b"first\n"
    assert "BackOff" in {e.reason for e in done.events}


async def test_delete_sends_sigterm_and_waits_out_the_grace_period(provider: process.ProcessProvider) -> None:
    polite = await provider.create(
        spec(sh("c", 'trap "echo bye; exit 0" TERM; echo up; while true; do sleep 0.05; done'), token="polite")
    )
    stubborn = await provider.create(
        spec(sh("c", 'trap "" TERM; echo up; while true; do sleep 0.05; done'), token="stubborn")
    )
    for created in (polite, stubborn):
        await until(provider, created.id, lambda s: s.status == models.InstanceStatus.RUNNING)
    pids = provider.pids()
    assert len(pids) == 4  # two runners, two containers

    started = time.monotonic()
    await provider.delete(polite.id, grace_seconds=30)
    await provider.delete(stubborn.id, grace_seconds=1)
    await provider.delete(stubborn.id, grace_seconds=1)  # twice: still fine
    await gone(provider, polite.id)
    await gone(provider, stubborn.id)
    elapsed = time.monotonic() - started
    assert 1 <= elapsed < 10, "the stubborn one is killed after its 1 s grace, not after 30"
    assert provider.pids() == []
    await provider.delete(polite.id, grace_seconds=1)  # gone: deleting again succeeds


async def test_logs_tail_timestamps_limit_and_follow(provider: process.ProcessProvider) -> None:
    created = await provider.create(
        spec(sh("c", "echo one; echo two; echo three; sleep 0.5; echo four; sleep 0.3; echo five"))
    )
    await until(provider, created.id, lambda s: s.status == models.InstanceStatus.RUNNING)
    followed = await read(provider.logs(created.id, "c", LogOptions(follow=True)))
    assert followed == b"one\ntwo\nthree\nfour\nfive\n"

    assert await read(provider.logs(created.id, "c", LogOptions(tail_lines=2))) == b"four\nfive\n"
    assert await read(provider.logs(created.id, "c", LogOptions(limit_bytes=6))) == b"one\ntw"
    stamped = (await read(provider.logs(created.id, "c", LogOptions(timestamps=True, tail_lines=1)))).decode()
    stamp, text = stamped.split(" ", 1)
    assert text == "five\n"
    assert datetime.datetime.fromisoformat(stamp) <= datetime.datetime.now(datetime.UTC)
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)
    assert await read(provider.logs(created.id, "c", LogOptions(since=future))) == b""
    with pytest.raises(errors.NotFound):
        provider.logs(created.id, "nope", LogOptions())


@dataclasses.dataclass
class Session:
    """The client's side of an exec or attach: what it sends, what it is given."""

    stdin: AsyncIterator[bytes] | None = None
    resizes: AsyncIterator[streams.TerminalSize] | None = None
    out: bytearray = dataclasses.field(default_factory=bytearray)
    err: bytearray = dataclasses.field(default_factory=bytearray)

    async def write_stdout(self, data: bytes) -> None:
        self.out += data

    async def write_stderr(self, data: bytes) -> None:
        self.err += data


async def chunks(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def test_exec_stream_runs_on_the_host_with_the_containers_env_and_stdin(
    provider: process.ProcessProvider,
) -> None:
    created = await provider.create(spec(sh("c", "sleep 600", GREETING="hello")))
    await until(provider, created.id, lambda s: s.status == models.InstanceStatus.RUNNING)
    assert isinstance(provider, streams.SupportsStreamingExec)
    session = Session(stdin=chunks(b"a\n", b"b\n"))
    script = 'echo "$GREETING"; tr a-z A-Z; echo oops >&2; exit 3'
    assert await provider.exec_stream(created.id, "c", ["sh", "-c", script], session, tty=False) == 3
    assert (bytes(session.out), bytes(session.err)) == (b"hello\nA\nB\n", b"oops\n")
    with pytest.raises(errors.NotFound):
        await provider.exec_stream(created.id, "nope", ["true"], Session(), tty=False)


async def test_attach_shows_what_the_container_writes_from_now_on(provider: process.ProcessProvider) -> None:
    script = 'echo before; i=0; while :; do echo "tick $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.1; done'
    created = await provider.create(spec(sh("c", script)))
    await until(provider, created.id, lambda s: s.status == models.InstanceStatus.RUNNING)
    assert isinstance(provider, streams.SupportsAttach)

    async def logged() -> bool:
        return b"before" in await read(provider.logs(created.id, "c", LogOptions()))

    await waiting.until(logged, within=15, what="the container's first line", interval=0.05)
    session = Session()
    attached = asyncio.create_task(provider.attach(created.id, "c", session, tty=False))
    try:
        await waiting.until(lambda: b"tick" in session.out and b"err" in session.out, within=15,
                            what="output while attached", interval=0.05)  # fmt: skip
        assert b"before" not in session.out  # from now on, not the log so far
    finally:
        attached.cancel()  # the client went away: detach, the container goes on
        with pytest.raises(asyncio.CancelledError):
            await attached
    assert (await provider.get(created.id)).status == models.InstanceStatus.RUNNING

    with pytest.raises(errors.InvalidSpec, match="attach without -i"):
        await provider.attach(created.id, "c", Session(stdin=chunks()), tty=False)
    with pytest.raises(errors.NotFound):
        await provider.attach(created.id, "nope", Session(), tty=False)


async def test_attach_ends_when_the_container_stops(provider: process.ProcessProvider) -> None:
    created = await provider.create(spec(sh("c", "sleep 2; echo last words")))
    await until(provider, created.id, lambda s: s.status == models.InstanceStatus.RUNNING)
    session = Session()
    assert await asyncio.wait_for(provider.attach(created.id, "c", session, tty=False), timeout=15) is None
    assert bytes(session.out) == b"last words\n"
    await until(provider, created.id, lambda s: s.status in TERMINAL)
    with pytest.raises(errors.InvalidSpec, match="not running"):
        await provider.attach(created.id, "c", Session(), tty=False)


async def test_a_restarted_provider_finds_its_running_instances(state_dir: pathlib.Path) -> None:
    before = process.ProcessProvider(state_dir, lifeline=os.getpid(), poll_interval=0.05)
    created = await before.create(spec(sh("c", "echo alive; exec sleep 60"), **{models.TAG_POD_UID: "u1"}))
    running = await until(before, created.id, lambda s: s.status == models.InstanceStatus.RUNNING)
    await before.close()
    del before

    after = process.ProcessProvider(state_dir, lifeline=os.getpid(), poll_interval=0.05)
    (found,) = await after.list({models.TAG_POD_UID: "u1"})
    assert found.id == created.id
    assert found.status == models.InstanceStatus.RUNNING
    assert found.containers[0].started_at == running.containers[0].started_at
    again = await after.create(spec(sh("c", "echo alive; exec sleep 60"), **{models.TAG_POD_UID: "u1"}))
    assert again.id == created.id
    assert len(after.pids()) == 2, "adopted, not started twice"
    await after.delete(created.id, grace_seconds=5)
    await gone(after, created.id)


async def test_a_killed_runner_shows_as_failed_and_delete_still_cleans_up(provider: process.ProcessProvider) -> None:
    created = await provider.create(spec(sh("c", "exec sleep 60")))
    await until(provider, created.id, lambda s: s.status == models.InstanceStatus.RUNNING)
    runner = records.read_json(provider.instance_dir(created.id) / "state.json")["runner"]
    os.kill(runner["pid"], 9)
    lost = await until(provider, created.id, lambda s: s.status == models.InstanceStatus.FAILED)
    assert lost.reason == "ProcessLost"
    await provider.delete(created.id, grace_seconds=1)
    await gone(provider, created.id)
    assert provider.pids() == []


async def test_instances_die_with_their_lifeline(state_dir: pathlib.Path) -> None:
    keeper = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)")
    try:
        cloud = process.ProcessProvider(state_dir, lifeline=keeper.pid, poll_interval=0.05)
        created = await cloud.create(spec(sh("c", "exec sleep 60")))
        await until(cloud, created.id, lambda s: s.status == models.InstanceStatus.RUNNING)
        assert len(cloud.pids()) == 2
    finally:
        keeper.kill()
        await keeper.wait()
    await gone(cloud, created.id)
    assert cloud.pids() == []


async def test_a_pod_without_a_command_is_an_invalid_spec(provider: process.ProcessProvider) -> None:
    with pytest.raises(errors.InvalidSpec, match="needs a command"):
        await provider.create(spec(models.ContainerSpec(name="nginx", image="nginx")))


async def test_volumes_appear_under_the_pod_root(provider: process.ProcessProvider) -> None:
    config = models.VolumeSpec("config", "files", files=(models.KeyToPath("app.conf", b"colour=blue\n"),))
    script = 'cat ../etc/app/app.conf; test "$(pwd)" = "$VNODE_POD_ROOT/srv" && echo in-srv'
    container = dataclasses.replace(
        sh("c", script), working_dir="/srv", volume_mounts=(models.VolumeMount("config", "/etc/app"),)
    )
    created = await provider.create(spec(container, volumes=(config,)))
    await until(provider, created.id, lambda s: s.status in TERMINAL)
    assert await read(provider.logs(created.id, "c", LogOptions())) == b"colour=blue\nin-srv\n"


@pytest.mark.cluster
async def test_in_cluster_clients_use_the_pods_service_account(
    state_dir: pathlib.Path, cluster: launcher.Info, namespace: str
) -> None:
    token = cluster.kubectl("-n", namespace, "create", "token", "default").stdout.strip()
    account = models.VolumeSpec("kube-api-access", "files", files=(
        models.KeyToPath("token", token.encode()),
        models.KeyToPath("ca.crt", cluster.ca_file.read_bytes()),
        models.KeyToPath("namespace", namespace.encode()),
    ))  # fmt: skip
    kubectl = models.ContainerSpec(
        name="client",
        image="bitnami/kubectl",
        command=(str(cluster.bin_dir / "kubectl"), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"),
        volume_mounts=(models.VolumeMount("kube-api-access", process.SERVICE_ACCOUNT_MOUNT, read_only=True),),
    )
    cloud = process.ProcessProvider(state_dir, api_server=cluster.server, lifeline=os.getpid(), poll_interval=0.05)
    created = await cloud.create(spec(kubectl, volumes=(account,)))
    done = await until(cloud, created.id, lambda s: s.status in TERMINAL, within=30)
    output = await read(cloud.logs(created.id, "client", LogOptions()))
    assert done.status == models.InstanceStatus.SUCCEEDED, output
    assert output.decode().strip() == f"system:serviceaccount:{namespace}:default"


def test_a_create_on_uvloop_returns_while_the_runner_lives_on(provider: process.ProcessProvider) -> None:
    """uvloop, the daemon's loop, hands a subprocess's pipe to the children it detaches: waiting for the
    runner's pid until the pipe's EOF waited until the runner exited (the kubectl matrix's pods never ran)."""
    uvloop = pytest.importorskip("uvloop")
    done = threading.Event()

    async def create_then_delete() -> None:
        made = await provider.create(spec(sh("c", "sleep 20")))
        await provider.delete(made.id, grace_seconds=0)
        await gone(provider, made.id)
        done.set()

    # In a thread of its own, so that a create that never returns fails this test instead of hanging it.
    threading.Thread(target=uvloop.run, args=(create_then_delete(),), daemon=True).start()
    assert done.wait(30), "a create on uvloop did not return within 30 s"
