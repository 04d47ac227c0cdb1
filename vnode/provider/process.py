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

``PR_SET_PDEATHSIG`` would be wrong here: it would kill every pod whenever the daemon
restarts. Tests instead give a *lifeline* (a pid, ``VNODE_PROCESS_LIFELINE``): a runner stops
its containers and removes its instance as soon as that process is gone.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime
import hashlib
import json
import os
import pathlib
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vnode import errors, models
from vnode.provider import streams

if TYPE_CHECKING:  # the runner imports this module too, and must start fast: no pydantic
    from vnode import settings
    from vnode.provider import base

__all__ = ["ProcessProvider", "create", "stop_all"]

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
IP = "127.0.0.1"
_TERMINAL = ("Succeeded", "Failed")
_BACKOFF_CAP = 30.0


# --- process bookkeeping (stdlib; shared by the provider and the runner) ---


def _start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid``; None if it is gone or a zombie."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _alive(record: Mapping[str, Any] | None) -> bool:
    return bool(record) and record is not None and _start_time(int(record["pid"])) == record.get("start_time")


def _signal_group(record: Mapping[str, Any] | None, sig: int) -> None:
    """Signal the process group led by the recorded process, if it is still that process."""
    if record and _alive(record):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(record["pid"]), sig)


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _write_json(path: pathlib.Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(value) if value else None


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
        self.state_dir = state_dir
        self.api_server = api_server.rstrip("/")
        self.ca_file = ca_file
        self.python = python
        host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin") if path is None else path
        self.path = os.pathsep.join([str(pathlib.Path(python).parent), host_path])
        self.lifeline = lifeline
        self.poll_interval = poll_interval

    # --- the contract ---

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        instance_id = "proc-" + hashlib.sha256(spec.client_token.encode()).hexdigest()[:20]
        directory = self.state_dir / instance_id
        state = _read_json(directory / "state.json")
        if state.get("runner"):
            return self._state(directory)
        if directory.exists() and not state:  # a create that died half-way: start it over
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
            "created_at": _now(),
            "cpu": spec.cpu,
            "memory_gib": spec.memory_gib,
            "runner": None,
        }
        _write_json(directory / "spec.json", runner_spec)
        _write_json(directory / "state.json", state)
        state["runner"] = await self._spawn_runner(directory)
        _write_json(directory / "state.json", state)
        return self._state(directory)

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        directory = self._dir(instance_id)
        state = _read_json(directory / "state.json")
        if not directory.exists():
            return
        runner = state.get("runner")
        if _alive(runner):
            _write_json(directory / "stop.json", {"grace_seconds": max(0.0, grace_seconds), "remove": True})
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(runner["pid"]), signal.SIGTERM)  # type: ignore[index]
            return
        # The runner is gone (the instance had finished, or the runner was killed): clean up here.
        _kill_containers(_read_json(directory / "status.json"))
        _retire(directory)

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
        found = []
        try:
            entries = sorted(self.state_dir.iterdir())
        except FileNotFoundError:
            return []
        for directory in entries:
            state = _read_json(directory / "state.json")
            if not state:
                continue
            own = state.get("tags", {})
            if all(own.get(key) == value for key, value in tags.items()):
                found.append(self._state(directory, state))
        return found

    async def quota(self) -> models.Quota:
        return models.Quota()

    async def close(self) -> None:
        return None

    # --- logs ---

    def logs(self, instance_id: str, container: str, options: base.LogOptions) -> AsyncIterator[bytes]:
        directory = self._dir(instance_id)
        spec = _read_json(directory / "spec.json")
        names = [c["name"] for c in (*spec.get("init_containers", []), *spec.get("containers", []))]
        if container not in names:
            raise errors.NotFound(f"process provider: no container {container!r} in instance {instance_id}")
        path = directory / "logs" / (f"{container}.previous.log" if options.previous else f"{container}.log")
        return self._log_stream(directory, container, path, options)

    async def _log_stream(
        self, directory: pathlib.Path, container: str, path: pathlib.Path, options: base.LogOptions
    ) -> AsyncIterator[bytes]:
        data = await asyncio.to_thread(_read_bytes, path)
        offset = len(data)
        inode = _inode(path)
        lines = [line for line in data.splitlines(keepends=True) if line.endswith(b"\n")]
        offset -= len(data) - sum(len(line) for line in lines)  # an unfinished last line waits for follow
        if options.since is not None:
            lines = [line for line in lines if _line_time(line) >= options.since]
        if options.tail_lines is not None:
            lines = lines[-options.tail_lines :] if options.tail_lines > 0 else []
        budget = options.limit_bytes
        for line in lines:
            chunk = _render(line, options.timestamps)
            if budget is not None:
                chunk, budget = chunk[:budget], budget - len(chunk)
            if chunk:
                yield chunk
            if budget is not None and budget <= 0:
                return
        if not options.follow or options.previous:
            return
        pending = b""
        stopped = False
        while True:
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    more = handle.read()
            except FileNotFoundError:
                more = b""
            if more:
                offset += len(more)
                pending += more
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    chunk = _render(line + b"\n", options.timestamps)
                    if budget is not None:
                        chunk, budget = chunk[:budget], budget - len(chunk)
                    if chunk:
                        yield chunk
                    if budget is not None and budget <= 0:
                        return
                continue
            if stopped:
                if pending:  # the container's last words, without a final newline
                    chunk = _render(pending, options.timestamps)
                    yield chunk if budget is None else chunk[:budget]
                return
            if _inode(path) != inode:
                return
            if not self._container_running(directory, container):
                # What it wrote between the last read and its exit is still to be read: once more.
                stopped = True
                continue
            await asyncio.sleep(self.poll_interval)

    def _container_running(self, directory: pathlib.Path, container: str) -> bool:
        if not _alive(_read_json(directory / "state.json").get("runner")):
            return False
        status = _read_json(directory / "status.json")
        for entry in (*status.get("init_containers", []), *status.get("containers", [])):
            if entry["name"] == container:
                return bool(entry["state"] == "Running")
        return True  # not started yet

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
            runner = _read_json(directory / "state.json").get("runner")
            if _alive(runner):
                found.append(int(runner["pid"]))  # type: ignore[index]
            for entry in _container_records(_read_json(directory / "status.json")):
                if _alive(entry):
                    found.append(int(entry["pid"]))
        return found

    # --- inside ---

    def _dir(self, instance_id: str) -> pathlib.Path:
        if not instance_id.startswith("proc-") or "/" in instance_id or instance_id in ("proc-", "proc-."):
            raise errors.NotFound(f"process provider: no instance {instance_id}")
        return self.state_dir / instance_id

    def _prepare(self, instance_id: str, directory: pathlib.Path, spec: models.InstanceSpec) -> dict[str, Any]:
        """Lay out the instance directory and return what the runner needs (all plain JSON)."""
        for c in (*spec.init_containers, *spec.containers):
            if not c.command and not c.args:
                raise errors.InvalidSpec(
                    f"container {c.name}: the process provider runs commands on the host and needs a command "
                    "(there is no image to take an entrypoint from)",
                    code="NoCommand",
                )
        root, volumes, logs = directory / "root", directory / "volumes", directory / "logs"
        for part in (root, volumes, logs):
            part.mkdir(parents=True, exist_ok=True)
        volume_dirs: dict[str, pathlib.Path] = {}
        for volume in spec.volumes:
            target = volumes / volume.name
            target.mkdir(parents=True, exist_ok=True)
            for item in volume.files:
                file = (target / item.path).resolve()
                if not file.is_relative_to(target.resolve()):
                    raise errors.InvalidSpec(f"volume {volume.name}: path {item.path!r} leaves the volume")
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(item.content)
                file.chmod(item.mode if item.mode is not None else 0o644)
            volume_dirs[volume.name] = target
        token_volume: pathlib.Path | None = None
        for c in (*spec.init_containers, *spec.containers):
            for mount in c.volume_mounts:
                source = volume_dirs.get(mount.name)
                if source is None:
                    raise errors.InvalidSpec(f"container {c.name}: no volume named {mount.name!r}")
                if mount.sub_path:
                    source = source / mount.sub_path
                    source.mkdir(parents=True, exist_ok=True)
                link = root / mount.mount_path.lstrip("/")
                if mount.mount_path.rstrip("/") == SERVICE_ACCOUNT_MOUNT and (source / "token").exists():
                    token_volume = source
                if not link.is_symlink() and not link.exists():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(source)
        kubeconfig = self._kubeconfig(directory, token_volume)
        base_env = {
            "PATH": self.path,
            "HOME": str(root),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "VNODE_POD_ROOT": str(root),
            "HOSTNAME": spec.hostname or spec.name,
        }
        if kubeconfig is not None:
            base_env["KUBECONFIG"] = str(kubeconfig)

        def container(c: models.ContainerSpec) -> dict[str, Any]:
            cwd = root / c.working_dir.lstrip("/") if c.working_dir else root
            cwd.mkdir(parents=True, exist_ok=True)
            # The instance's IP (status.podIP) is the loopback address every instance here has.
            env = {**base_env, **{e.name: IP if e.field_path == models.FIELD_POD_IP else e.value for e in c.env}}
            return {"name": c.name, "image": c.image, "argv": [*c.command, *c.args], "env": env, "cwd": str(cwd)}

        lifeline = None
        if self.lifeline is not None:
            lifeline = {"pid": self.lifeline, "start_time": _start_time(self.lifeline)}
        return {
            "id": instance_id,
            "containers": [container(c) for c in spec.containers],
            "init_containers": [container(c) for c in spec.init_containers],
            "restart_policy": spec.restart_policy,
            "grace_seconds": spec.termination_grace_seconds,
            "lifeline": lifeline,
            "poll_interval": self.poll_interval,
        }

    def _kubeconfig(self, directory: pathlib.Path, token_volume: pathlib.Path | None) -> pathlib.Path | None:
        """A kubeconfig for the pod's own service account, so in-cluster clients work on the host."""
        if token_volume is None or not self.api_server:
            return None
        ca = self.ca_file or (str(token_volume / "ca.crt") if (token_volume / "ca.crt").exists() else "")
        namespace = (token_volume / "namespace").read_text().strip() if (token_volume / "namespace").exists() else ""
        cluster: dict[str, Any] = {"server": self.api_server}
        if ca:
            cluster["certificate-authority"] = ca
        context: dict[str, Any] = {"cluster": "in-cluster", "user": "service-account"}
        if namespace:
            context["namespace"] = namespace
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "in-cluster", "cluster": cluster}],
            "users": [{"name": "service-account", "user": {"tokenFile": str(token_volume / "token")}}],
            "contexts": [{"name": "in-cluster", "context": context}],
            "current-context": "in-cluster",
        }
        path = directory / "kubeconfig"
        _write_json(path, doc)  # JSON is YAML
        path.chmod(0o600)
        return path

    async def _spawn_runner(self, directory: pathlib.Path) -> dict[str, Any]:
        """Start the runner detached (its own session, re-parented away from us) and record it."""
        # `sh -c '... &'` forks it away from this process, so it is never our child (no zombie,
        # no Popen left running when the daemon stops) and it outlives a daemon restart.
        script = 'setsid "$@" </dev/null >>"$LOG" 2>&1 & echo $!'
        env = {"PATH": self.path, "LOG": str(directory / "runner.log"), "PYTHONPATH": _pythonpath()}
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            script,
            "sh",
            self.python,
            "-m",
            "vnode.provider.process",
            str(directory),
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        out, _ = await proc.communicate()
        try:
            pid = int(out.strip())
        except ValueError as exc:
            raise errors.Unavailable(f"process provider: could not start the runner: {out!r}") from exc
        started = _start_time(pid)
        deadline = time.monotonic() + 5
        while started is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            started = _start_time(pid)
        return {"pid": pid, "start_time": started}

    def _state(self, directory: pathlib.Path, state: dict[str, Any] | None = None) -> models.InstanceState:
        state = state if state is not None else _read_json(directory / "state.json")
        status = _read_json(directory / "status.json")
        runner_alive = _alive(state.get("runner"))
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
            created_at=_dt(state.get("created_at")),
            started_at=_dt(status.get("started_at")),
            finished_at=_dt(status.get("finished_at")),
            reason=reason,
            message=message,
            events=tuple(
                models.InstanceEvent(
                    reason=e["reason"],
                    message=e["message"],
                    type=models.EventType(e.get("type", "Normal")),
                    timestamp=_dt(e.get("timestamp")),
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
        started_at=_dt(entry.get("started_at")),
        finished_at=_dt(entry.get("finished_at")),
        restart_count=entry.get("restart_count", 0),
        ready=entry["state"] == "Running",
        last_exit_code=entry.get("last_exit_code"),
        last_reason=entry.get("last_reason", ""),
        last_started_at=_dt(entry.get("last_started_at")),
        last_finished_at=_dt(entry.get("last_finished_at")),
    )


def _container_records(status: Mapping[str, Any]) -> builtins.list[dict[str, Any]]:
    return [
        e["process"] for e in (*status.get("init_containers", []), *status.get("containers", [])) if e.get("process")
    ]


def _kill_containers(status: Mapping[str, Any]) -> None:
    for record in _container_records(status):
        _signal_group(record, signal.SIGKILL)


def _read_bytes(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _inode(path: pathlib.Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _line_time(line: bytes) -> datetime.datetime:
    stamp = line.split(b" ", 1)[0].decode(errors="replace")
    try:
        return datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)


def _render(line: bytes, timestamps: bool) -> bytes:
    """A stored line (``<RFC 3339 time> <text>``) as kubectl shows it."""
    stamp, _, text = line.partition(b" ")
    return stamp + b" " + text if timestamps else text


def _pythonpath() -> str:
    """Where this vnode is importable from, so the runner imports the same code."""
    package_root = pathlib.Path(__file__).resolve().parents[2]
    existing = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in (str(package_root), existing) if p)


def stop_all(state_dir: pathlib.Path, *, timeout: float = 10.0) -> builtins.list[int]:
    """Kill every runner and container recorded under ``state_dir`` (test teardown, operators' last resort).

    Returns the pids that were still alive. Waits up to ``timeout`` for them to be gone.
    """
    killed: builtins.list[int] = []
    for directory in sorted(state_dir.glob("proc-*")):
        runner = _read_json(directory / "state.json").get("runner")
        records = [runner] if runner else []
        records += _container_records(_read_json(directory / "status.json"))
        for record in records:
            if _alive(record):
                killed.append(int(record["pid"]))
                _signal_group(record, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_start_time(pid) is not None for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.02)
    return killed


def create(config: settings.Settings) -> ProcessProvider:
    """The ``--provider process`` factory.

    ``VNODE_PROCESS_DIR`` (default ``~/.local/state/vnode/process/<node>``) holds the instances;
    ``VNODE_PROCESS_API_SERVER`` and ``VNODE_PROCESS_CA_FILE`` are the API server that pods'
    in-cluster clients should use (default: the server and CA of the daemon's own kubeconfig,
    read on first use); ``VNODE_PROCESS_LIFELINE`` a pid whose death stops every instance.
    """
    environ = os.environ
    state_home = pathlib.Path(environ.get("XDG_STATE_HOME") or pathlib.Path.home() / ".local" / "state")
    state_dir = pathlib.Path(environ.get("VNODE_PROCESS_DIR") or state_home / "vnode" / "process" / config.node_name)
    lifeline = environ.get("VNODE_PROCESS_LIFELINE", "")
    provider = ProcessProvider(
        state_dir,
        api_server=environ.get("VNODE_PROCESS_API_SERVER", ""),
        ca_file=environ.get("VNODE_PROCESS_CA_FILE", ""),
        lifeline=int(lifeline) if lifeline.isdigit() else None,
    )
    if not provider.api_server and config.kubeconfig:
        provider.api_server, ca = _server_of(pathlib.Path(config.kubeconfig), state_dir)
        provider.ca_file = provider.ca_file or ca
    return provider


def _server_of(kubeconfig: pathlib.Path, directory: pathlib.Path) -> tuple[str, str]:
    """The current context's server URL of a kubeconfig, and its CA written into ``directory``."""
    from vnode.kube import config

    try:
        loaded = config.load_kubeconfig(kubeconfig)
    except errors.ConfigError:
        return "", ""
    if not loaded.ca_pem:
        return loaded.server, ""
    target = directory / "api-server-ca.crt"  # a file of ours: the kubeconfig's may be a temporary copy
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_bytes(loaded.ca_pem)
    except OSError:
        return loaded.server, ""
    return loaded.server, str(target)


# --- the runner: `python -m vnode.provider.process INSTANCE_DIR` (standard library only) ---


class _Container:
    def __init__(self, spec: dict[str, Any], logs: pathlib.Path, events: builtins.list[dict[str, Any]]) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.log_path = logs / f"{self.name}.log"
        self.previous_path = logs / f"{self.name}.previous.log"
        self.events = events
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Any = None
        self.pending = b""
        self.status: dict[str, Any] = {
            "name": self.name,
            "image": spec.get("image", ""),
            "state": "Waiting",
            "reason": "ContainerCreating",
            "restart_count": 0,
        }
        self.restart_at: float | None = None

    def start(self) -> None:
        if self.status.get("started_at"):  # a restart: this run's log becomes the previous one
            with contextlib.suppress(FileNotFoundError):
                self.log_path.replace(self.previous_path)
        self.log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.spec["argv"],
                env=self.spec["env"],
                cwd=self.spec["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:  # no such command: a container that cannot start
            self.log.close()
            self._terminated(127, "StartError", str(exc))
            self.events.append(_event("Failed", f"Error: {exc}", self.name, warning=True))
            return
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        last = {k: self.status.get(k) for k in ("exit_code", "reason", "started_at", "finished_at")}
        self.status = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "state": "Running",
            "started_at": _now(),
            "restart_count": self.status["restart_count"],
            "process": {"pid": self.proc.pid, "start_time": _start_time(self.proc.pid)},
        }
        if last["finished_at"]:
            self.status.update(
                last_exit_code=last["exit_code"],
                last_reason=last["reason"],
                last_started_at=last["started_at"],
                last_finished_at=last["finished_at"],
            )
        self.events.append(_event("Created", f"Created container {self.name}", self.name))
        self.events.append(_event("Started", f"Started container {self.name}", self.name))

    def pump(self) -> None:
        """Move what the process wrote into the log, one timestamped line at a time."""
        if self.proc is None or self.proc.stdout is None:
            return
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                self._flush(final=True)
                return
            self.pending += chunk
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        *lines, self.pending = self.pending.split(b"\n")
        if final and self.pending:
            lines, self.pending = [*lines, self.pending], b""
        stamp = _now().replace("+00:00", "Z").encode()
        for line in lines:
            self.log.write(stamp + b" " + line + b"\n")
        self.log.flush()

    def reap(self) -> int | None:
        """The exit code once the process ended (its output drained), else None."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        self.pump()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        self.proc = None
        exit_code = code if code >= 0 else 128 - code
        self._terminated(exit_code, "Completed" if exit_code == 0 else "Error", "")
        return exit_code

    def _terminated(self, exit_code: int, reason: str, message: str) -> None:
        self.status = {
            **self.status,
            "state": "Terminated",
            "exit_code": exit_code,
            "reason": reason,
            "message": message,
            "finished_at": _now(),
        }
        self.status.pop("process", None)

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def back_off(self, now: float) -> None:
        self.status["restart_count"] += 1
        delay = min(_BACKOFF_CAP, 0.5 * 2 ** (self.status["restart_count"] - 1))
        self.restart_at = now + delay
        self.status.update(
            state="Waiting",
            reason="CrashLoopBackOff",
            message=f"back-off {delay:g}s restarting failed container",
            last_exit_code=self.status.get("exit_code"),
            last_reason=self.status.get("reason"),
            last_started_at=self.status.get("started_at"),
            last_finished_at=self.status.get("finished_at"),
        )
        self.events.append(_event("BackOff", f"Back-off restarting container {self.name}", self.name, warning=True))


def _event(reason: str, message: str, container: str = "", *, warning: bool = False) -> dict[str, Any]:
    return {
        "reason": reason,
        "message": message,
        "container": container,
        "timestamp": _now(),
        "type": "Warning" if warning else "Normal",
    }


def _run_instance(directory: pathlib.Path) -> int:
    """Supervise one instance until it ends or is deleted; the status file is the only output."""
    spec = _read_json(directory / "spec.json")
    interval = float(spec.get("poll_interval", 0.1))
    policy = spec.get("restart_policy", "Always")
    lifeline = spec.get("lifeline")
    events: list[dict[str, Any]] = []
    inits = [_Container(c, directory / "logs", events) for c in spec.get("init_containers", [])]
    mains = [_Container(c, directory / "logs", events) for c in spec.get("containers", [])]
    stopping: dict[str, Any] = {}
    status: dict[str, Any] = {"status": "Pending"}

    def on_term(signum: int, frame: object) -> None:
        stopping.setdefault("at", time.monotonic())

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    selector = selectors.DefaultSelector()
    phase, init_index = "init", 0
    last_written = ""
    last_lifeline_check = 0.0

    def register(c: _Container) -> None:
        if c.proc is not None and c.proc.stdout is not None:
            selector.register(c.proc.stdout, selectors.EVENT_READ, c)

    def unregister(c: _Container) -> None:
        if c.proc is not None and c.proc.stdout is not None:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(c.proc.stdout)

    def write() -> None:
        nonlocal last_written
        status["containers"] = [c.status for c in mains]
        status["init_containers"] = [c.status for c in inits]
        status["events"] = events[-50:]
        text = json.dumps(status, sort_keys=True)
        if text != last_written:
            _write_json(directory / "status.json", status)
            last_written = text

    write()
    while True:
        now = time.monotonic()
        if lifeline and now - last_lifeline_check > 0.5:
            last_lifeline_check = now
            if not _alive(lifeline):
                stopping.setdefault("at", now)
                stopping["grace"] = 0.0
                stopping["remove"] = True
        if stopping and "deadline" not in stopping:
            stop = _read_json(directory / "stop.json")
            grace = float(stopping.get("grace", stop.get("grace_seconds", spec.get("grace_seconds", 30))))
            stopping["deadline"] = stopping["at"] + grace
            stopping["remove"] = stopping.get("remove") or bool(stop.get("remove"))
            status["status"] = "Terminating"
            for c in (*inits, *mains):
                if c.proc is not None:
                    events.append(_event("Killing", f"Stopping container {c.name}", c.name))
                    c.signal(signal.SIGTERM)
                c.restart_at = None
        if stopping and now >= stopping["deadline"] and not stopping.get("killed"):
            stopping["killed"] = True
            for c in (*inits, *mains):
                c.signal(signal.SIGKILL)
        for key, _ in selector.select(timeout=interval):
            key.data.pump()
        # Reap, and decide restarts by the pod's restart policy.
        for c in (*inits, *mains):
            proc = c.proc
            if proc is None:
                continue
            if proc.poll() is not None:
                unregister(c)
            exit_code = c.reap()
            if exit_code is None or stopping:
                continue
            if c in inits:
                if exit_code == 0:
                    init_index += 1
                elif policy == "Never":
                    status.update(
                        status="Failed",
                        reason="InitError",
                        finished_at=_now(),
                        message=f"init container {c.name} exited with {exit_code}",
                    )
                else:
                    c.back_off(now)
            elif policy == "Always" or (policy == "OnFailure" and exit_code != 0):
                c.back_off(now)
        if stopping:
            if all(c.proc is None for c in (*inits, *mains)):
                break
            write()
            continue
        if status["status"] == "Failed" and phase == "init":
            break
        # Start what is due.
        if phase == "init":
            if init_index >= len(inits):
                phase = "main"
                for c in mains:
                    c.start()
                    register(c)
            else:
                c = inits[init_index]
                if c.proc is None and c.status["state"] != "Running" and (c.restart_at or 0) <= now:
                    c.restart_at = None
                    c.start()
                    register(c)
                    if c.proc is None and policy == "Never":  # could not start at all
                        status.update(status="Failed", reason="InitError", finished_at=_now())
        else:
            for c in mains:
                if c.proc is None and c.restart_at is not None and c.restart_at <= now:
                    c.restart_at = None
                    c.start()
                    register(c)
                    if c.proc is None and policy != "Never":  # could not start: back off as for a crash
                        c.back_off(now)
        if phase == "main":
            states = [c.status["state"] for c in mains]
            if all(s == "Terminated" for s in states) and all(c.restart_at is None for c in mains):
                ok = all(c.status.get("exit_code") == 0 for c in mains)
                status.update(status="Succeeded" if ok else "Failed", finished_at=_now())
                if not ok:
                    status["reason"] = "Error"
                write()
                break
            started = any(s == "Running" for s in states) or all(c.status.get("restart_count") for c in mains)
            if status["status"] == "Pending" and started:
                status.update(status="Running", started_at=status.get("started_at") or _now())
        write()
    # The instance has ended (or been stopped): stay, idle, until it is deleted, so that a delete
    # always finds its runner and there is exactly one process that removes the directory.
    write()
    while not stopping:
        if lifeline and not _alive(lifeline):
            stopping.update(at=time.monotonic(), remove=True)
        time.sleep(0.2)
    if stopping.get("remove") or _read_json(directory / "stop.json").get("remove"):
        _retire(directory)
    return 0


def _retire(directory: pathlib.Path) -> None:
    """Remove a deleted instance, keeping its logs and state beside the state directory for debugging
    (``<state dir>-logs/<instance id>/``); the last run of each instance id is kept."""
    kept = directory.parent.with_name(directory.parent.name + "-logs") / directory.name
    with contextlib.suppress(OSError):
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        for name in ("logs", "state.json", "status.json"):
            if (directory / name).exists():
                shutil.move(str(directory / name), str(kept / name))
    shutil.rmtree(directory, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m vnode.provider.process INSTANCE_DIR", file=sys.stderr)
        return 2
    return _run_instance(pathlib.Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
