"""The ``process`` provider: each instance's containers run as processes on this very host.

**A development provider.** It runs the commands of the pods bound to its node on the host,
as the user the daemon runs as, with no isolation at all: only ever point it at a node that
nothing but your own workloads tolerates (the playground's ``vnode-host``). It exists so that
a machine with a control plane but no container runtime (this project's playground and test
suite) can still run vnode's own StatefulSet: its pods are ``vnode run`` processes.

What a pod gets, in place of a container:

* argv = ``command + args`` (the image is not used: there is no image to run), the resolved
  env of the spec on top of a small host env (``PATH`` led by this Python's ``bin``),
  ``KUBECONFIG`` built from the pod's projected service-account token so in-cluster clients
  work, and ``VNODE_POD_ROOT``;
* every volume at its ``mountPath``, bind-mounted in the container's own mount namespace
  (``workspace.in_mount_namespace``: root and ``unshare -m``; else the pod is refused naming
  the volume, never run without it);
* a directory per instance under the state dir: ``root/`` is the pod's working directory
  (a container's ``workingDir`` is taken inside it) and each volume mount appears under it as
  a symlink (``root/etc/config`` for a mount at ``/etc/config``), ``logs/`` keeps each
  container's log and the previous run's, ``state.json`` the tags and bookkeeping;
* the instance's IP is 127.0.0.1.

Why a runner process per instance: the containers must outlive the daemon (a restarted
daemon adopts running instances, it never recreates them), yet someone must collect exit
codes, restart containers by the restart policy and time the SIGTERM-then-SIGKILL of a
delete. So :func:`create` starts a small detached supervisor (``python -m
vnode.provider.process RUNNER_DIR``, standard library only) that owns the containers and
writes ``status.json`` on every change; the provider only reads files and signals the
runner. Every process is recorded by pid *and* kernel start time (as ``vnode.cluster.procs``
does), so a provider started later finds its runners and never signals a stranger.

``PR_SET_PDEATHSIG`` on the runner would be wrong here: it would kill every pod whenever the
daemon restarts. Tests instead give a *lifeline* (a pid, ``VNODE_PROCESS_LIFELINE``): a runner
stops its containers and removes its instance as soon as that process is gone. The containers,
though, die with their runner (the runner sets it), and the reaper (``records.strays``) finds by
``/proc`` whatever no record names, so that no process outlives its pod.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import os
import pathlib
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from vnode import errors, models, settings
from vnode.provider import base, streams
from vnode.provider.process import execs, logs, records, spawn, workspace
from vnode.provider.process import profile as process_profile

__all__ = ["ProcessProvider", "create", "stop_all"]

SERVICE_ACCOUNT_MOUNT = workspace.SERVICE_ACCOUNT_MOUNT
IP = workspace.IP
_TERMINAL = ("Succeeded", "Failed")
_SWEEP_INTERVAL = 5.0


# --- the provider ---


class ProcessProvider:
    """Runs instances as local processes under ``state_dir`` (see the module's warning)."""

    name = "process"
    container_id_scheme = "process"

    def __init__(
        self,
        state_dir: pathlib.Path,
        *,
        api_server: str = "",
        ca_file: str = "",
        python: str = sys.executable,
        path: str | None = None,
        lifeline: int | None = None,
        poll_interval: float = 0.1,
    ) -> None:
        self.state_dir = state_dir.resolve()  # the reaper matches paths byte for byte (records.strays)
        self.api_server = api_server.rstrip("/")
        self.ca_file = ca_file
        self.python = python
        host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin") if path is None else path
        self.path = os.pathsep.join([str(pathlib.Path(python).parent), host_path])
        self.lifeline = lifeline
        self.poll_interval = poll_interval
        self._next_sweep = 0.0

    # --- the contract ---

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        instance_id = "proc-" + hashlib.sha256(spec.client_token.encode()).hexdigest()[:20]
        directory = self.state_dir / instance_id
        state = records.read_json(directory / "state.json")
        if state.get("runner"):
            return self._state(directory)
        if directory.exists():  # a create that died half-way: start it over, its stray processes killed
            records.kill_strays(directory)
            shutil.rmtree(directory, ignore_errors=True)
        try:
            runner_spec = self._prepare(instance_id, directory, spec)
        except OSError as exc:
            raise errors.Unavailable(f"process provider: cannot prepare {directory}: {exc}", code="IOError") from exc
        state = {
            "id": instance_id,
            "name": spec.name,
            "client_token": spec.client_token,
            "tags": dict(spec.tags),
            "created_at": records.now(),
            "cpu": spec.cpu,
            "memory_gib": spec.memory_gib,
            "runner": None,
        }
        records.write_json(directory / "spec.json", runner_spec)
        records.write_json(directory / "state.json", state)
        state["runner"] = await spawn.runner(directory, python=self.python, path=self.path)
        records.write_json(directory / "state.json", state)
        return self._state(directory)

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        directory = self._dir(instance_id)
        state = records.read_json(directory / "state.json")
        if not directory.exists():
            return
        runner = state.get("runner")
        if records.alive(runner):
            records.write_json(directory / "stop.json", {"grace_seconds": max(0.0, grace_seconds), "remove": True})
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(runner["pid"]), signal.SIGTERM)  # type: ignore[index]
            return
        # The runner is gone (the instance had finished, or the runner was killed): clean up here.
        records.kill_containers(records.read_json(directory / "status.json"))
        records.kill_strays(directory)
        records.retire(directory)

    async def update_volumes(
        self, instance_id: str, volumes: Sequence[models.VolumeSpec], *, client_token: str
    ) -> None:
        """``base.SupportsVolumeUpdate``: rewrite the files under the instance's ``volumes/<name>/``, each
        by write-then-rename (a reader never sees half a file); files no longer in the volume are removed.
        Writing the same content again is harmless, so ``client_token`` needs no bookkeeping."""
        directory = self._dir(instance_id)
        if not (directory / "state.json").exists() or (directory / "stop.json").exists():
            raise errors.NotFound(f"process provider: no instance {instance_id}")
        for volume in volumes:
            target = (directory / "volumes" / volume.name).resolve()
            if not target.is_dir():
                raise errors.InvalidSpec(f"volume {volume.name}: the instance has no such volume")
            wanted: set[pathlib.Path] = set()
            for item in volume.files:
                file = (target / item.path).resolve()
                if not file.is_relative_to(target):
                    raise errors.InvalidSpec(f"volume {volume.name}: path {item.path!r} leaves the volume")
                file.parent.mkdir(parents=True, exist_ok=True)
                temporary = file.with_name(f".{file.name}.{client_token[-12:]}.tmp")
                temporary.write_bytes(item.content)
                temporary.chmod(item.mode if item.mode is not None else 0o644)
                temporary.replace(file)
                wanted.add(file)
            for old in [f for f in target.rglob("*") if f.is_file() and f not in wanted]:
                old.unlink(missing_ok=True)

    async def get(self, instance_id: str) -> models.InstanceState:
        directory = self._dir(instance_id)
        if not (directory / "state.json").exists():
            raise errors.NotFound(f"process provider: no instance {instance_id}")
        return self._state(directory)

    async def list(self, tags: Mapping[str, str]) -> Sequence[models.InstanceState]:
        self._sweep_orphans()
        found = []
        try:
            entries = sorted(self.state_dir.iterdir())
        except FileNotFoundError:
            return []
        for directory in entries:
            state = records.read_json(directory / "state.json")
            if not state or self._finish_delete(directory, state):
                continue
            own = state.get("tags", {})
            if all(own.get(key) == value for key, value in tags.items()):
                found.append(self._state(directory, state))
        return found

    async def changes(self, tags: Mapping[str, str], cursor: base.Cursor | None) -> base.Changes:
        """``base.Provider.changes``: every instance, every time (the node tells what changed)."""
        return base.Changes.listing(await self.list(tags))

    def _sweep_orphans(self) -> None:
        """The reaper, at most every few seconds: kill every process that names an instance directory
        under the state dir that no longer holds an instance (its ``state.json`` is written before any
        process starts and removed only after they were stopped), so nothing outlives its pod."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL
        state_dir = self.state_dir.resolve()

        def has_instance(path: pathlib.Path) -> bool:
            parts = path.relative_to(state_dir).parts
            return bool(parts) and (state_dir / parts[0] / "state.json").exists()

        records.kill_strays(state_dir, keep=has_instance)

    def _finish_delete(self, directory: pathlib.Path, state: Mapping[str, Any]) -> bool:
        """Whether ``directory`` was a deleted instance whose runner is gone, now removed here: a delete
        right after the create can SIGTERM the runner before it catches the signal, and then nobody
        else would remove the instance."""
        if records.alive(state.get("runner")) or not records.read_json(directory / "stop.json").get("remove"):
            return False
        records.kill_containers(records.read_json(directory / "status.json"))
        records.kill_strays(directory)
        records.retire(directory)
        return True

    async def quota(self) -> models.Quota:
        return models.Quota()

    async def close(self) -> None:
        return None

    # --- logs ---

    def logs(self, instance_id: str, container: str, options: base.LogOptions) -> AsyncIterator[bytes]:
        directory = self._dir(instance_id)
        spec = records.read_json(directory / "spec.json")
        names = [c["name"] for c in (*spec.get("init_containers", []), *spec.get("containers", []))]
        if container not in names:
            raise errors.NotFound(f"process provider: no container {container!r} in instance {instance_id}")
        path = directory / "logs" / (f"{container}.previous.log" if options.previous else f"{container}.log")
        return logs.stream(path, options, lambda: self._container_running(directory, container), self.poll_interval)

    def _container_running(self, directory: pathlib.Path, container: str) -> bool:
        if not records.alive(records.read_json(directory / "state.json").get("runner")):
            return False
        status = records.read_json(directory / "status.json")
        for entry in (*status.get("init_containers", []), *status.get("containers", [])):
            if entry["name"] == container:
                return bool(entry["state"] == "Running")
        return True  # not started yet

    # --- exec ---

    async def exec_stream(
        self, instance_id: str, container: str, command: Sequence[str], session: streams.Streams, *, tty: bool
    ) -> int:
        """``streams.SupportsStreamingExec``: ``command`` runs on the host with the container's env
        and working directory, a pseudo-terminal with ``tty`` (``execs``)."""
        directory = self._dir(instance_id)
        spec = records.read_json(directory / "spec.json")
        entries = [c for c in (*spec.get("init_containers", []), *spec.get("containers", [])) if c["name"] == container]
        if not entries:
            raise errors.NotFound(f"process provider: no container {container!r} in instance {instance_id}")
        if not self._container_running(directory, container):
            raise errors.InvalidSpec(f"process provider: container {container!r} of {instance_id} is not running")
        return await execs.run(entries[0], command, session, tty=tty)

    async def attach(self, instance_id: str, container: str, session: streams.Streams, *, tty: bool) -> int | None:
        """``streams.SupportsAttach``: what the container writes from now on (its log, followed, stdout
        and stderr as one stream), until it stops or restarts (``None``: the kubelet reports no exit
        code for an attach). Its stdin is ``/dev/null``, so ``kubectl attach -i`` is refused."""
        directory = self._dir(instance_id)
        chunks = self.logs(instance_id, container, base.LogRequest(tail_lines=0, follow=True))  # NotFound first
        if session.stdin is not None:
            raise errors.InvalidSpec("process provider: a container's stdin is not kept open; attach without -i")
        if not self._container_running(directory, container):
            raise errors.InvalidSpec(f"process provider: container {container!r} of {instance_id} is not running")
        async for chunk in chunks:
            await session.write_stdout(chunk)
        return None

    # --- port forwarding ---

    async def open_port(self, instance_id: str, port: int) -> streams.PortStream:
        """``streams.SupportsPortForward``: a TCP connection to 127.0.0.1:``port``, where the instance's
        processes listen (they share the host's network: any process on the host listening on that
        port answers, which is the price of running pods without isolation)."""
        directory = self._dir(instance_id)
        if not (directory / "state.json").exists() or (directory / "stop.json").exists():
            raise errors.NotFound(f"process provider: no instance {instance_id}")
        phase = self._state(directory).status
        if phase not in (models.InstanceStatus.RUNNING, models.InstanceStatus.UPDATING):
            raise errors.InvalidSpec(f"process provider: instance {instance_id} is {phase.value}, not Running")
        try:
            reader, writer = await asyncio.open_connection(IP, port)
        except ConnectionRefusedError as exc:
            raise errors.NotFound(f"nothing listens on port {port} ({IP}:{port}: connection refused)") from exc
        except OSError as exc:
            raise errors.Unavailable(f"cannot connect to {IP}:{port}: {exc}", code="ConnectError") from exc
        return streams.SocketPortStream(reader, writer)

    # --- for tests and operators ---

    def instance_dir(self, instance_id: str) -> pathlib.Path:
        return self._dir(instance_id)

    def pids(self) -> builtins.list[int]:
        """Every live process this provider's instances own (runners and containers)."""
        found = []
        for directory in self.state_dir.glob("proc-*"):
            runner = records.read_json(directory / "state.json").get("runner")
            if records.alive(runner):
                found.append(int(runner["pid"]))  # type: ignore[index]
            for entry in records.container_records(records.read_json(directory / "status.json")):
                if records.alive(entry):
                    found.append(int(entry["pid"]))
        return found

    # --- inside ---

    def _dir(self, instance_id: str) -> pathlib.Path:
        if not instance_id.startswith("proc-") or "/" in instance_id or instance_id in ("proc-", "proc-."):
            raise errors.NotFound(f"process provider: no instance {instance_id}")
        return self.state_dir / instance_id

    def _prepare(self, instance_id: str, directory: pathlib.Path, spec: models.InstanceSpec) -> dict[str, Any]:
        """Lay out the instance directory and return what the runner needs (all plain JSON)."""
        workspace.check_commands(spec)
        workspace.check_mounts(spec)
        root, token_volume = workspace.lay_out(directory, spec)
        kubeconfig = workspace.kubeconfig(directory, token_volume, self.api_server, self.ca_file)
        base_env = {
            "PATH": self.path,
            "HOME": str(root),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "VNODE_POD_ROOT": str(root),
            "HOSTNAME": spec.hostname or spec.name,
        }
        if kubeconfig is not None:
            base_env["KUBECONFIG"] = str(kubeconfig)

        keep = workspace.host_paths_to_keep(self.state_dir, self.python)

        def container(c: models.ContainerSpec) -> dict[str, Any]:
            cwd = root / c.working_dir.lstrip("/") if c.working_dir else root
            cwd.mkdir(parents=True, exist_ok=True)
            # The instance's IP (status.podIP) is the loopback address every instance here has.
            env = {**base_env, **{e.name: IP if e.field_path == models.FIELD_POD_IP else e.value for e in c.env}}
            binds = workspace.binds_of(directory, c)
            argv = workspace.in_mount_namespace([*c.command, *c.args], binds, keep)
            return {"name": c.name, "image": c.image, "argv": argv, "env": env, "cwd": str(cwd)}

        lifeline = None
        if self.lifeline is not None:
            lifeline = {"pid": self.lifeline, "start_time": records.start_time(self.lifeline)}
        return {
            "id": instance_id,
            "containers": [container(c) for c in spec.containers],
            "init_containers": [container(c) for c in spec.init_containers],
            "restart_policy": spec.restart_policy,
            "grace_seconds": spec.termination_grace_seconds,
            "lifeline": lifeline,
            "poll_interval": self.poll_interval,
        }

    def _state(self, directory: pathlib.Path, state: dict[str, Any] | None = None) -> models.InstanceState:
        state = state if state is not None else records.read_json(directory / "state.json")
        status = records.read_json(directory / "status.json")
        runner_alive = records.alive(state.get("runner"))
        phase = status.get("status", "Pending")
        reason, message = status.get("reason", ""), status.get("message", "")
        if not runner_alive and phase not in _TERMINAL:
            if (directory / "stop.json").exists():
                phase = "Terminating"
            elif state.get("runner"):
                phase, reason = "Failed", "ProcessLost"
                message = "the process provider's runner for this instance is gone (killed?)"
        return models.InstanceState(
            id=state["id"],
            status=models.InstanceStatus(phase),
            tags=dict(state.get("tags", {})),
            containers=tuple(_container_status(entry) for entry in status.get("containers", [])),
            init_containers=tuple(_container_status(entry) for entry in status.get("init_containers", [])),
            ip=IP,
            zone="localhost",
            created_at=records.parse_time(state.get("created_at")),
            started_at=records.parse_time(status.get("started_at")),
            finished_at=records.parse_time(status.get("finished_at")),
            reason=reason,
            message=message,
            events=tuple(
                models.InstanceEvent(
                    reason=e["reason"],
                    message=e["message"],
                    type=models.EventType(e.get("type", "Normal")),
                    timestamp=records.parse_time(e.get("timestamp")),
                    container=e.get("container", ""),
                )
                for e in status.get("events", [])
            ),
            cpu=float(state.get("cpu", 0.0)),
            memory_gib=float(state.get("memory_gib", 0.0)),
        )


def _container_status(entry: Mapping[str, Any]) -> models.ContainerStatus:
    return models.ContainerStatus(
        name=entry["name"],
        state=models.ContainerState(entry["state"]),
        image=entry.get("image", ""),
        reason=entry.get("reason", ""),
        message=entry.get("message", ""),
        exit_code=entry.get("exit_code"),
        started_at=records.parse_time(entry.get("started_at")),
        finished_at=records.parse_time(entry.get("finished_at")),
        restart_count=entry.get("restart_count", 0),
        ready=entry["state"] == "Running",
        last_exit_code=entry.get("last_exit_code"),
        last_reason=entry.get("last_reason", ""),
        last_started_at=records.parse_time(entry.get("last_started_at")),
        last_finished_at=records.parse_time(entry.get("last_finished_at")),
    )


def stop_all(state_dir: pathlib.Path, *, timeout: float = 10.0) -> builtins.list[int]:
    """Kill every runner and container recorded under ``state_dir`` (test teardown, operators' last resort).

    Returns the pids that were still alive. Waits up to ``timeout`` for them to be gone.
    """
    killed: builtins.list[int] = []
    for directory in sorted(state_dir.glob("proc-*")):
        runner = records.read_json(directory / "state.json").get("runner")
        recorded = [runner] if runner else []
        recorded += records.container_records(records.read_json(directory / "status.json"))
        for record in recorded:
            if records.alive(record):
                killed.append(int(record["pid"]))
                records.signal_group(record, signal.SIGKILL)
    killed += records.kill_strays(state_dir.resolve())  # what no record names (see records.strays)
    deadline = time.monotonic() + timeout
    while any(records.start_time(pid) is not None for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.02)
    return killed


def create(config: settings.Settings) -> ProcessProvider:
    """The ``--provider process`` factory.

    ``VNODE_PROCESS_DIR`` (default ``~/.local/state/vnode/process/<node>``) holds the instances;
    ``VNODE_PROCESS_API_SERVER`` and ``VNODE_PROCESS_CA_FILE`` are the API server that pods'
    in-cluster clients should use (default: the server and CA of the daemon's own kubeconfig,
    read on first use); ``VNODE_PROCESS_LIFELINE`` a pid whose death stops every instance.
    """
    own = config.cloud
    if not isinstance(own, process_profile.ProcessSettings):
        raise errors.ConfigError(f"--provider=process: settings of another provider ({type(own).__name__})")
    state_home = pathlib.Path(os.environ.get("XDG_STATE_HOME") or pathlib.Path.home() / ".local" / "state")
    state_dir = pathlib.Path(own.state_dir or state_home / "vnode" / "process" / config.node_name)
    provider = ProcessProvider(
        state_dir,
        api_server=own.api_server,
        ca_file=own.ca_file,
        lifeline=int(own.lifeline) if own.lifeline.isdigit() else None,
    )
    if not provider.api_server and config.kubeconfig:
        provider.api_server, ca = workspace.server_of(pathlib.Path(config.kubeconfig), state_dir)
        provider.ca_file = provider.ca_file or ca
    return provider
