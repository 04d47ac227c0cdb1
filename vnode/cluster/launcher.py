"""Run a real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler.

This stands in for kind, which needs a container engine these machines lack. The launcher keeps
everything under one state directory (``.vnode/`` by default): the PKI, etcd's data, the
kubeconfigs, one log per component and ``cluster.json``, which records the ports and the
processes it started. A process is identified by its pid *and* its start time, so ``down``
never signals a process that merely reused a pid, and ``up`` after a crash can tell stale
records from live ones. What each component is told (its command line) is ``components``'s.

Two ways to own the processes:

* detached (``vnode cluster up``): the children get a session of their own and outlive the
  command; ``vnode cluster down`` ends them.
* attached (the test suite): the children also get ``PR_SET_PDEATHSIG``, so they die with the
  process that started them even if it is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from vnode.cluster import build, components, pki, procs
from vnode.kube import api

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
LEADER_LEASES = ("kube-controller-manager", "kube-scheduler")


class ClusterError(RuntimeError):
    """The cluster could not be brought up or down; the message is one line naming the problem."""


@dataclasses.dataclass(frozen=True)
class Options:
    """How to run the control plane. ``None`` ports are picked free on 127.0.0.1."""

    state_dir: pathlib.Path
    bin_dir: pathlib.Path
    apiserver_port: int | None = None
    node_monitor_grace_period: int = 40
    attach: bool = False
    client_qps: int = 500
    client_burst: int = 1000
    ready_timeout: float = 90.0
    # Benchmarks: log every request's metadata to <state>/audit.log, to count API calls per client.
    audit: bool = False
    # The controller-manager's and scheduler's leader lease. Short, so that a restarted playground
    # does not wait out the old one; a benchmark lengthens it, since it loads the API server until
    # a renewal (timeout: a third of the lease) fails, and a lost lease ends the process.
    leader_lease_seconds: int = 6


@dataclasses.dataclass(frozen=True)
class Info:
    """What a running cluster offers its clients."""

    server: str
    kubeconfig: pathlib.Path
    ca_file: pathlib.Path
    bin_dir: pathlib.Path
    state_dir: pathlib.Path
    version: str

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster."""
        cmd = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Go's listeners do: a port lingering in TIME_WAIT is free; one with a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (Linux's default range: 32768-60999)."""
    try:
        return int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(avoid: set[int] | None = None) -> int:
    """A free port on 127.0.0.1 below the kernel's ephemeral range, as 6443 and 2379 are.

    A server that restarts on a port of that range can find it taken by an outgoing connection
    that got it as its local port while the server was down (with many clients reconnecting to
    it on loopback, soon): the soak's restarted kube-apiserver failed with "address already in
    use" that way. Below the range, only listeners take ports.
    """
    avoid = avoid or set()
    low, high = 20000, _ephemeral_low()
    rng = random.Random()
    for _ in range(200) if high - low > 100 else ():
        port = rng.randrange(low, high)
        if port not in avoid and _port_free(port):
            return port
    while True:  # an unusual range: whatever the kernel gives
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def _kubeconfig(server: str, ca: pathlib.Path, cert: pathlib.Path, key: pathlib.Path, user: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: vnode\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: {user}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n"
        f"contexts:\n- name: vnode\n  context:\n    cluster: vnode\n    user: {user}\n"
        "current-context: vnode\n"
    )


class Cluster:
    """One local control plane, described by its state directory."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.state_dir = options.state_dir.resolve()
        self.pki_dir = self.state_dir / "pki"
        self.log_dir = self.state_dir / "logs"
        self.record_path = self.state_dir / "cluster.json"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.procs = procs.Supervisor(self.record_path, self.log_dir, attach=options.attach)

    # -- public ------------------------------------------------------------------------------

    def info(self) -> Info:
        record = self.procs.read()
        if not record:
            raise ClusterError(f"no cluster recorded in {self.state_dir}")
        return Info(
            server=f"https://127.0.0.1:{record['ports']['apiserver']}",
            kubeconfig=self.kubeconfig,
            ca_file=self.pki_dir / "ca.crt",
            bin_dir=pathlib.Path(record["bin_dir"]),
            state_dir=self.state_dir,
            version=record.get("version", ""),
        )

    def status(self) -> dict[str, Any]:
        """Which components run, and whether the API server answers ``/readyz``."""
        record = self.procs.read()
        live = self.procs.live(record)
        ready = False
        if "kube-apiserver" in live:
            ready = self._get("/readyz", record, timeout=3) is not None
        return {
            "state_dir": str(self.state_dir),
            "server": f"https://127.0.0.1:{record['ports']['apiserver']}" if record else None,
            "components": {name: live.get(name) for name in COMPONENTS},
            "ready": ready,
        }

    def up(self) -> Info:
        """Start the cluster, or return at once if it already runs healthy. Idempotent."""
        self._check_binaries()
        record = self.procs.read()
        live = self.procs.live(record)
        if record and set(live) == set(COMPONENTS) and self._healthy(record):
            return self.info()
        if live:
            # A partial cluster (a component crashed): stop what is left and start clean.
            self.down()
        ports = self._choose_ports(record)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        paths = self._prepare_pki()
        record = {
            "version": build.KUBERNETES_VERSION,
            "bin_dir": str(self.options.bin_dir.resolve()),
            "ports": ports,
            "processes": {},
            "attached": self.options.attach,
        }
        self._write_kubeconfigs(ports["apiserver"], paths)
        self.procs.write(record)
        try:
            self._start_all(record, paths)
        except BaseException:
            self.down()
            raise
        return self.info()

    def down(self) -> list[str]:
        """Stop every process this cluster started (and nothing else); returns their names."""
        # Reverse start order, each once the one before has ended (etcd last). Told all at once, the API
        # server outlived its SIGTERM by the full 15 s and was killed: it had lost etcd while it shut
        # down (one after the other, the whole takes about 1.5 s).
        return sorted(name for component in reversed(COMPONENTS) for name in self.procs.stop([component]))

    def restart(self, name: str, *, kill: bool = True) -> None:
        """Stop one running component (``kill``: SIGKILL, as a crash would) and start it again with the
        same command, ports and state; waits for the API server's ``/readyz`` when that is the one.
        The soak's faults (``soak/faults.py``) use it; the other components carry on."""
        if name not in COMPONENTS:
            raise ClusterError(f"no component named {name!r}: one of {', '.join(COMPONENTS)}")
        record = self.procs.read()
        pid = self.procs.live(record).get(name)
        if pid is not None:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.procs.stop([name])
        command = components.commands(self._plan(record["ports"], self._prepare_pki()))[name]
        for attempt in range(3):
            child = self.procs.spawn(name, command)
            if name != "kube-apiserver":
                return
            deadline = time.monotonic() + self.options.ready_timeout
            while self._get("/readyz", record) is None and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if child.poll() is None and self._get("/readyz", record) is not None:
                return
            self.procs.stop([name])
            time.sleep(1.0 + attempt)
        raise ClusterError(f"kube-apiserver did not come back; see {self._tail(name)}")

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision (what etcd does on its own every few minutes
        in a real cluster): a watch resumed from before it then gets 410 Gone. Returns the revision."""
        port = self.procs.read()["ports"]["etcd"]
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(
            str(self.pki_dir / "apiserver-etcd-client.crt"), str(self.pki_dir / "apiserver-etcd-client.key")
        )

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            request = urllib.request.Request(
                f"https://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
                return dict(json.loads(resp.read()))

        revision = int(post("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
        post("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    # -- up, step by step --------------------------------------------------------------------

    def _check_binaries(self) -> None:
        for name in (*build.KUBE_BINARIES, *build.ETCD_BINARIES):
            path = self.options.bin_dir / name
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise ClusterError(f"{name} not found in {self.options.bin_dir} (run `make binaries` to build it)")

    def _choose_ports(self, previous: dict[str, Any]) -> dict[str, int]:
        wanted = self.options.apiserver_port
        if wanted is not None and not _port_free(wanted):
            raise ClusterError(f"port {wanted} on 127.0.0.1 is already in use by another process")
        old = previous.get("ports", {})
        ports: dict[str, int] = {}
        for name in ("apiserver", "etcd", "etcd_peer", "controller_manager", "scheduler"):
            if name == "apiserver" and wanted is not None:
                ports[name] = wanted
            elif name in old and old[name] not in ports.values() and _port_free(old[name]):
                ports[name] = old[name]  # keep the address clients already have in their kubeconfig
            else:
                ports[name] = free_port(set(ports.values()))
        return ports

    def _prepare_pki(self) -> dict[str, pathlib.Path]:
        d = self.pki_dir
        ca = pki.ensure_ca(d, "ca", "vnode-ca")
        front = pki.ensure_ca(d, "front-proxy-ca", "vnode-front-proxy-ca")
        local = ("127.0.0.1", "localhost")
        service_ip = "10.96.0.1"
        names = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
        hosts = (*local, service_ip, *names)
        serving = pki.issue(ca, d, "apiserver", common_name="kube-apiserver", hosts=hosts, server=True)
        etcd_server = pki.issue(ca, d, "etcd-server", common_name="etcd", hosts=local, server=True, client=True)
        etcd_client = pki.issue(ca, d, "apiserver-etcd-client", common_name="kube-apiserver-etcd-client", client=True)
        kubelet_client = pki.issue(
            ca, d, "apiserver-kubelet-client", common_name="kube-apiserver-kubelet-client",
            organization="system:masters", client=True,
        )  # fmt: skip
        proxy_client = pki.issue(front, d, "front-proxy-client", common_name="front-proxy-client", client=True)
        admin = pki.issue(ca, d, "admin", common_name="vnode-admin", organization="system:masters", client=True)
        cm = pki.issue(ca, d, "controller-manager", common_name="system:kube-controller-manager", client=True)
        sched = pki.issue(ca, d, "scheduler", common_name="system:kube-scheduler", client=True)
        sa = pki.ensure_service_account_keys(d)
        return {
            "ca.crt": ca.cert,
            "ca.key": ca.key,
            "front-proxy-ca.crt": front.cert,
            "apiserver.crt": serving.cert,
            "apiserver.key": serving.key,
            "etcd.crt": etcd_server.cert,
            "etcd.key": etcd_server.key,
            "etcd-client.crt": etcd_client.cert,
            "etcd-client.key": etcd_client.key,
            "kubelet-client.crt": kubelet_client.cert,
            "kubelet-client.key": kubelet_client.key,
            "proxy-client.crt": proxy_client.cert,
            "proxy-client.key": proxy_client.key,
            "admin.crt": admin.cert,
            "admin.key": admin.key,
            "cm.crt": cm.cert,
            "cm.key": cm.key,
            "sched.crt": sched.cert,
            "sched.key": sched.key,
            "sa.pub": sa.cert,
            "sa.key": sa.key,
        }

    def _write_kubeconfigs(self, port: int, p: dict[str, pathlib.Path]) -> None:
        server = f"https://127.0.0.1:{port}"
        self.kubeconfig.write_text(_kubeconfig(server, p["ca.crt"], p["admin.crt"], p["admin.key"], "vnode-admin"))
        self.kubeconfig.chmod(0o600)
        for name, user in (("cm", "system:kube-controller-manager"), ("sched", "system:kube-scheduler")):
            text = _kubeconfig(server, p["ca.crt"], p[f"{name}.crt"], p[f"{name}.key"], user)
            (self.state_dir / f"{name}.kubeconfig").write_text(text)
        sched_config = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {
                "kubeconfig": str(self.state_dir / "sched.kubeconfig"),
                "qps": self.options.client_qps,
                "burst": self.options.client_burst,
            },
            "leaderElection": {"leaderElect": True, **components.lease_timing(self.options.leader_lease_seconds)},
        }
        (self.state_dir / "scheduler.json").write_text(json.dumps(sched_config, indent=2))

    def _plan(self, ports: dict[str, int], paths: dict[str, pathlib.Path]) -> components.Plan:
        o = self.options
        return components.Plan(
            bin_dir=o.bin_dir.resolve(),
            state_dir=self.state_dir,
            ports=ports,
            pki=paths,
            node_monitor_grace_period=o.node_monitor_grace_period,
            client_qps=o.client_qps,
            client_burst=o.client_burst,
            leader_lease_seconds=o.leader_lease_seconds,
            audit=o.audit,
        )

    def _start_all(self, record: dict[str, Any], paths: dict[str, pathlib.Path]) -> None:
        ports = record["ports"]
        commands = components.commands(self._plan(ports, paths))
        deadline = time.monotonic() + self.options.ready_timeout
        children: dict[str, subprocess.Popen[bytes]] = {}

        def wait(what: str, check: Callable[[], bool], names: Iterable[str]) -> None:
            while not check():
                for name in names:
                    if children[name].poll() is not None:
                        raise ClusterError(f"{name} exited with {children[name].returncode}; see {self._tail(name)}")
                if time.monotonic() > deadline:
                    raise ClusterError(f"timed out after {self.options.ready_timeout:.0f}s waiting for {what}")
                time.sleep(0.2)

        children["etcd"] = self.procs.spawn("etcd", commands["etcd"])
        wait("etcd to serve", lambda: self._etcd_healthy(ports["etcd"]), ["etcd"])
        children["kube-apiserver"] = self.procs.spawn("kube-apiserver", commands["kube-apiserver"])
        wait("kube-apiserver /readyz", lambda: self._get("/readyz", record) is not None, ["etcd", "kube-apiserver"])
        started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
        # Leader leases left by the processes we stopped would make the new ones wait them out.
        for name in LEADER_LEASES:
            self._request("DELETE", api.lease_path("kube-system", name), record)
        for name in ("kube-controller-manager", "kube-scheduler"):
            children[name] = self.procs.spawn(name, commands[name])
        wait(
            "the scheduler and controller-manager leader leases", lambda: self._leases_held(record, started), COMPONENTS
        )

    def _tail(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        with contextlib.suppress(OSError):
            lines = path.read_text(errors="replace").strip().splitlines()
            for line in reversed(lines[-40:]):
                lowered = line.lower()
                if "error" in lowered or "failed" in lowered or "fatal" in lowered:
                    return f"{path}: {line.strip()[:300]}"
        return str(path)

    # -- health ------------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return ctx

    def _etcd_healthy(self, port: int) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(
            str(self.pki_dir / "apiserver-etcd-client.crt"), str(self.pki_dir / "apiserver-etcd-client.key")
        )
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=ctx, timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _get(self, path: str, record: dict[str, Any], timeout: float = 2) -> bytes | None:
        return self._request("GET", path, record, timeout)

    def _request(self, method: str, path: str, record: dict[str, Any], timeout: float = 2) -> bytes | None:
        url = f"https://127.0.0.1:{record['ports']['apiserver']}{path}"
        req = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=timeout) as resp:
                body: bytes = resp.read()
                return body
        except (OSError, urllib.error.HTTPError):
            return None

    def _healthy(self, record: dict[str, Any]) -> bool:
        return self._get("/readyz", record) is not None

    def _leases_held(self, record: dict[str, Any], since: datetime.datetime) -> bool:
        for name in LEADER_LEASES:
            body = self._get(api.lease_path("kube-system", name), record)
            if body is None:
                return False
            spec = json.loads(body).get("spec", {})
            renewed = spec.get("renewTime")
            if not spec.get("holderIdentity") or not renewed:
                return False
            if datetime.datetime.fromisoformat(renewed.replace("Z", "+00:00")) < since:
                return False
        return True


def default_options(state_dir: pathlib.Path | None = None, **overrides: Any) -> Options:
    """Options for the playground: ``.vnode/`` and the cached binaries of the pinned release."""
    return Options(
        state_dir=state_dir or pathlib.Path(".vnode"),
        bin_dir=pathlib.Path(os.environ.get("VNODE_BIN_DIR") or build.bin_dir()),
        **overrides,
    )
