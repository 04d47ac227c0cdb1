"""The process provider presents volumes at their mount paths, and no process it ran outlives its pod.

The second half replays the sequences of the leak once found in a playground (a ``vnode run``
that outlived its pod, its directory deleted and its runner gone): kill -9 of the runner, of the
daemon's provider half-way through a create, a delete while a restart is due, a container's own
children, in several orders; after each, ``/proc`` holds nothing that names the state dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import shutil
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests import waiting
from tests.provider.test_process import TERMINAL, LogOptions, gone, read, sh, spec, until
from vnode import errors, models
from vnode.provider.process import provider as process
from vnode.provider.process import records, workspace

RUNNING = models.InstanceStatus.RUNNING


@pytest.fixture
def state_dir(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    directory = tmp_path / "process"
    try:
        yield directory
    finally:
        process.stop_all(directory)


@pytest.fixture
def provider(state_dir: pathlib.Path) -> process.ProcessProvider:
    return process.ProcessProvider(state_dir, lifeline=os.getpid(), poll_interval=0.05)


def _belonging(state_dir: pathlib.Path) -> list[str]:
    """Every process whose command line, environment or working directory names the state dir."""
    mark = os.fsencode(str(state_dir.resolve()))
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            cwd = os.fsencode(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if records.start_time(int(entry.name)) is not None and any(mark in part for part in (cmdline, environ, cwd)):
            argv = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {argv}")
    return found


async def _none_left(state_dir: pathlib.Path, *, within: float = 10) -> None:
    left: list[list[str]] = [[]]

    async def empty() -> bool:
        left[0] = _belonging(state_dir)
        return not left[0]

    await waiting.until(empty, within=within, what=lambda: f"no process of {state_dir}; left: {left[0]}")


def _runner(provider: process.ProcessProvider, instance_id: str) -> dict[str, int]:
    runner: dict[str, int] = records.read_json(provider.instance_dir(instance_id) / "state.json")["runner"]
    return runner


def _container(provider: process.ProcessProvider, instance_id: str) -> dict[str, int]:
    status = records.read_json(provider.instance_dir(instance_id) / "status.json")
    found: dict[str, int] = status["containers"][0]["process"]
    return found


# --- volumes at their mount paths ---


needs_namespaces = pytest.mark.skipif(
    bool(workspace.mount_namespace_available()), reason=f"no mount namespace: {workspace.mount_namespace_available()}"
)


@needs_namespaces
async def test_every_volume_is_at_its_mount_path(provider: process.ProcessProvider) -> None:
    top = f"/tmp/vnode-mount-test-{uuid.uuid4().hex[:8]}"  # a path the host does not have
    ca = models.VolumeSpec("aci-ca", "files", files=(models.KeyToPath("ca.crt", b"PEM\n"),))
    scratch = models.VolumeSpec("scratch", "emptyDir")
    script = f"cat {top}/aci-ca/ca.crt; echo written >{top}/scratch/f; cat {top}/scratch/f; "
    script += f"echo x 2>/dev/null >{top}/aci-ca/y"
    container = dataclasses.replace(
        sh("c", script + " || echo read-only"),
        volume_mounts=(
            models.VolumeMount("aci-ca", f"{top}/aci-ca", read_only=True),
            models.VolumeMount("scratch", f"{top}/scratch"),
        ),
    )
    try:
        created = await provider.create(spec(container, volumes=(ca, scratch)))
        await until(provider, created.id, lambda s: s.status in TERMINAL)
        assert await read(provider.logs(created.id, "c", LogOptions())) == b"PEM\nwritten\nread-only\n"
        host_sees = await asyncio.to_thread(lambda: list(pathlib.Path(top).rglob("*.crt")))
        assert not host_sees, "the mounts are the container's own, not the host's"
    finally:
        await asyncio.to_thread(shutil.rmtree, top, True)


@needs_namespaces
async def test_a_mount_over_an_ancestor_of_the_state_dir_hides_no_other_volume(
    provider: process.ProcessProvider, state_dir: pathlib.Path
) -> None:
    """The chart's emptyDir at /tmp while the state dir is under /tmp (the test suite's playground):
    the other volumes and the pod's own files stay where they are."""
    top = "/" + state_dir.parts[1]  # /tmp under pytest
    etc = f"/etc/vnode-mount-test-{uuid.uuid4().hex[:8]}"  # a path the host does not have
    ca = models.VolumeSpec("aci-ca", "files", files=(models.KeyToPath("ca.pem", b"PEM\n"),))
    scratch = models.VolumeSpec("tmp", "emptyDir")
    container = dataclasses.replace(
        sh("c", f'cat {etc}/aci-ca/ca.pem; ls -A {top}; test -d "$VNODE_POD_ROOT" && echo its root'),
        volume_mounts=(models.VolumeMount("tmp", top), models.VolumeMount("aci-ca", f"{etc}/aci-ca", read_only=True)),
    )
    try:
        created = await provider.create(spec(container, volumes=(ca, scratch)))
        await until(provider, created.id, lambda s: s.status in TERMINAL)
        # /tmp is the emptyDir, where only the host paths kept are bound back: the state dir (its
        # kubeconfig, token, CA), and this checkout and its venv when they are under /tmp too.
        kept = workspace.host_paths_to_keep(state_dir, provider.python)
        shown = sorted({p.relative_to(top).parts[0] for p in kept if p.exists() and p.is_relative_to(top)})
        listing = "".join(f"{name}\n" for name in shown).encode()
        assert await read(provider.logs(created.id, "c", LogOptions())) == b"PEM\n" + listing + b"its root\n"
    finally:
        await asyncio.to_thread(shutil.rmtree, etc, True)


@needs_namespaces
async def test_a_mount_over_the_pythons_prefix_leaves_its_commands_on_the_path(state_dir: pathlib.Path) -> None:
    """A checkout under /tmp while the chart mounts an emptyDir at /tmp: its ``vnode run`` (a
    console script of the venv that leads PATH) crash-looped with ENOENT in a fresh clone there."""
    prefix = state_dir.parent / "venv"
    (prefix / "bin").mkdir(parents=True)
    for name, body in (("python", f'exec {sys.executable} "$@"'), ("greet", "echo hello from the venv")):
        (prefix / "bin" / name).write_text(f"#!/bin/sh\n{body}\n")
        (prefix / "bin" / name).chmod(0o755)
    provider = process.ProcessProvider(
        state_dir, python=str(prefix / "bin" / "python"), lifeline=os.getpid(), poll_interval=0.05
    )
    top = "/" + state_dir.parts[1]  # /tmp under pytest: it covers the venv and the state dir
    container = dataclasses.replace(
        models.ContainerSpec("c", "vnode:dev", command=("greet",)),
        volume_mounts=(models.VolumeMount("tmp", top),),
    )
    created = await provider.create(spec(container, volumes=(models.VolumeSpec("tmp", "emptyDir"),)))
    await until(provider, created.id, lambda s: s.status in TERMINAL)
    assert await read(provider.logs(created.id, "c", LogOptions())) == b"hello from the venv\n"


async def test_a_mount_that_cannot_be_presented_is_refused_naming_the_volume(
    provider: process.ProcessProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace, "mount_namespace_available", lambda: "the daemon does not run as root")
    volume = models.VolumeSpec("aci-ca", "files", files=(models.KeyToPath("ca.crt", b"PEM\n"),))
    container = dataclasses.replace(sh("c", "true"), volume_mounts=(models.VolumeMount("aci-ca", "/etc/vnode/aci-ca"),))
    with pytest.raises(errors.InvalidSpec, match=r"volume 'aci-ca' cannot be presented at /etc/vnode/aci-ca.*root"):
        await provider.create(spec(container, volumes=(volume,)))


# --- nothing outlives its pod ---


async def test_a_runner_killed_takes_its_container_and_its_childrens_children(
    provider: process.ProcessProvider, state_dir: pathlib.Path
) -> None:
    # The container starts a child in a session of its own: out of its process group, still its pod's.
    created = await provider.create(spec(sh("c", "setsid sleep 300 & exec sleep 300"), restart="Always"))
    await until(provider, created.id, lambda s: s.status == RUNNING)
    os.kill(_runner(provider, created.id)["pid"], 9)
    await waiting.until(lambda: not records.alive(_container(provider, created.id)), within=10, what="container dies")
    await provider.delete(created.id, grace_seconds=1)
    await gone(provider, created.id)
    await _none_left(state_dir)


async def test_a_delete_while_a_restart_is_due_leaves_nothing(
    provider: process.ProcessProvider, state_dir: pathlib.Path
) -> None:
    # The container is killed (as the daemons were, kill -9) and the runner is about to restart it.
    created = await provider.create(spec(sh("c", "setsid sleep 300 & exec sleep 300"), restart="Always"))
    await until(provider, created.id, lambda s: s.status == RUNNING)
    os.kill(_container(provider, created.id)["pid"], 9)
    await until(provider, created.id, lambda s: s.containers[0].restart_count >= 1)
    await provider.delete(created.id, grace_seconds=1)
    await gone(provider, created.id)
    await _none_left(state_dir)


async def test_a_runner_killed_during_the_delete_leaves_nothing(
    provider: process.ProcessProvider, state_dir: pathlib.Path
) -> None:
    created = await provider.create(spec(sh("c", "trap '' TERM; setsid sleep 300 & sleep 300 & wait")))
    await until(provider, created.id, lambda s: s.status == RUNNING)
    runner = _runner(provider, created.id)
    await provider.delete(created.id, grace_seconds=30)  # the container ignores SIGTERM: the runner waits
    os.kill(runner["pid"], 9)
    await provider.delete(created.id, grace_seconds=30)  # the node retries; the runner is gone now
    await gone(provider, created.id)
    await _none_left(state_dir)


async def test_a_create_cut_short_by_a_daemon_kill_is_started_over_without_a_twin(
    provider: process.ProcessProvider, state_dir: pathlib.Path
) -> None:
    # The daemon died after the runner started and before it was recorded: the next create must not
    # leave that first runner (and its container) running beside the second, unrecorded.
    created = await provider.create(spec(sh("c", "exec sleep 300")))
    await until(provider, created.id, lambda s: s.status == RUNNING)
    first = _container(provider, created.id)
    state = records.read_json(provider.instance_dir(created.id) / "state.json")
    records.write_json(provider.instance_dir(created.id) / "state.json", {**state, "runner": None})
    again = await process.ProcessProvider(state_dir, lifeline=os.getpid(), poll_interval=0.05).create(
        spec(sh("c", "exec sleep 300"))
    )
    assert again.id == created.id
    await waiting.until(lambda: not records.alive(first), within=10, what="the first run's container gone")
    await provider.delete(created.id, grace_seconds=1)
    await gone(provider, created.id)
    await _none_left(state_dir)


async def test_a_process_of_an_instance_that_is_gone_is_reaped_by_the_next_listing(
    state_dir: pathlib.Path,
) -> None:
    # What the leak left: a process whose pod root was removed, with no runner and no record.
    root = await asyncio.to_thread(lambda: state_dir.resolve() / "proc-gone" / "root")
    env = {**os.environ, "VNODE_POD_ROOT": str(root)}
    orphan = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(300)", env=env)
    try:
        await waiting.until(lambda: records.start_time(orphan.pid) is not None, within=5, what="orphan started")
        assert await process.ProcessProvider(state_dir, poll_interval=0.05).list({}) == []
        async with asyncio.timeout(10):
            assert await orphan.wait() == -9
    finally:
        with contextlib.suppress(ProcessLookupError):
            orphan.kill()
        await orphan.wait()


async def test_stop_all_leaves_no_process_naming_the_state_dir(
    provider: process.ProcessProvider, state_dir: pathlib.Path
) -> None:
    for token in ("a", "b"):
        created = await provider.create(spec(sh("c", "setsid sleep 300 & exec sleep 300"), token=token))
        await until(provider, created.id, lambda s: s.status == RUNNING)
    process.stop_all(state_dir)
    await _none_left(state_dir)
