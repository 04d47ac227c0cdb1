"""The targets of bench.scale: KWOK's fake nodes (the reference), virtual-kubelet's own mock
provider (the Go virtual kubelet our users compare us with) and vnode's virtual nodes.

Each process under test gets its own identity, a ServiceAccount in ``kube-system`` bound to
``cluster-admin`` (as a chart would install it), so that the API server counts its requests
apart and applies priority and fairness to it as to any controller, not the admin's exemption.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import os
import pathlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from vnode import certificates
from vnode.cluster import build, kwok, launcher, procs


def _wait_nodes_ready(info: launcher.Info, names: list[str], timeout: float = 60) -> None:
    api = k8s_config.new_client_from_config(config_file=str(info.kubeconfig))  # type: ignore[no-untyped-call]
    core = k8s.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready = {
                n.metadata.name
                for n in core.list_node().items
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            }
            if set(names) <= ready:
                return
            time.sleep(0.2)
    finally:
        api.close()
    missing = sorted(set(names) - ready)
    raise NotReady(f"nodes not Ready after {timeout:.0f}s: {missing}", missing)


class NotReady(RuntimeError):
    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


def _tell_why(exc: NotReady, supervisor: procs.Supervisor, pids: dict[str, int]) -> NotReady:
    """``exc`` with, for each node not Ready, whether its process lives and the end of its log."""
    live = supervisor.live()
    lines = [str(exc)]
    for name in exc.missing[:5]:
        log = supervisor.log_dir / f"{name}.log"
        tail = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else ["(no log)"]
        state = "running" if live.get(name) == pids.get(name) else "ended"
        lines += [f"--- {name} (pid {pids.get(name)}, {state}), the end of {log}:", *tail]
    return NotReady("\n".join(lines), exc.missing)


def _token(info: launcher.Info, name: str) -> str:
    """A day's token of the ServiceAccount ``kube-system/<name>`` (made here, bound to cluster-admin)."""
    api = k8s_config.new_client_from_config(config_file=str(info.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        core = k8s.CoreV1Api(api)
        with contextlib.suppress(k8s.ApiException):
            core.create_namespaced_service_account("kube-system", {"metadata": {"name": name}})
        binding = {
            "metadata": {"name": f"bench-{name}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
        }
        with contextlib.suppress(k8s.ApiException):
            k8s.RbacAuthorizationV1Api(api).create_cluster_role_binding(binding)
        request = {"spec": {"expirationSeconds": 86400}}
        token: str = core.create_namespaced_service_account_token(name, "kube-system", request).status.token
        return token
    finally:
        api.close()


def identity(info: launcher.Info, name: str) -> pathlib.Path:
    """A kubeconfig for the ServiceAccount ``kube-system/<name>``."""
    path = info.state_dir / f"{name}.kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": info.server, "certificate-authority": str(info.ca_file)}}],
        "users": [{"name": name, "user": {"token": _token(info, name)}}],
        "contexts": [{"name": name, "context": {"cluster": "bench", "user": name}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def in_a_pod(info: launcher.Info, name: str, cmd: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """``cmd`` run as in its pod, when this machine allows it: with ``kube-system/<name>``'s token, the
    CA and its namespace mounted where a pod has them (a mount namespace of its own), and the API server
    in ``KUBERNETES_SERVICE_HOST``/``_PORT``: the daemon reads its service account, not a kubeconfig,
    as in a cluster (the ``kubernetes`` package that reads kubeconfigs holds some 10 MB of its memory).
    Elsewhere (not root, no ``unshare``), ``cmd`` with a kubeconfig, and the figures say so."""
    if not can_run_in_a_pod():
        return [*cmd, f"--kubeconfig={identity(info, name)}"], env
    account = info.state_dir / f"{name}.serviceaccount"
    account.mkdir(exist_ok=True)
    (account / "token").write_text(_token(info, name))
    (account / "ca.crt").write_bytes(info.ca_file.read_bytes())
    (account / "namespace").write_text("kube-system")
    server = urllib.parse.urlsplit(info.server)
    pod_env = {k: v for k, v in env.items() if k != "KUBECONFIG"}
    pod_env |= {"KUBERNETES_SERVICE_HOST": server.hostname or "", "KUBERNETES_SERVICE_PORT": str(server.port)}
    mount = 'mount --bind "$0" /var/run/secrets/kubernetes.io/serviceaccount && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, str(account), *cmd], pod_env


@functools.cache
def can_run_in_a_pod() -> bool:
    """Whether a process here can have a mount namespace of its own, with the service account's folder
    (made on this machine if missing: a root's, where no pod runs). Asked once, when a daemon starts."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    with contextlib.suppress(OSError):
        pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount").mkdir(parents=True, exist_ok=True)
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount --bind / /var/run/secrets/kubernetes.io/serviceaccount"]  # fmt: skip
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


class Kwok:
    name = "kwok"

    def __init__(self) -> None:
        self.helpers: dict[str, int] = {}

    def node_names(self, nodes: int) -> list[str]:
        return [f"kwok-bench-{i}" for i in range(nodes)]

    async def start(self, info: launcher.Info, supervisor: procs.Supervisor, nodes: int) -> list[int]:
        binary = kwok.ensure_binary()
        api = k8s_config.new_client_from_config(config_file=str(info.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            taint = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
            manifests = (
                kwok.node(n, cpu="10000", memory="4Ti", pods="5000", taints=[taint]) for n in self.node_names(nodes)
            )
            kwok.register(api, manifests)
        finally:
            api.close()
        proc = supervisor.spawn("kwok", kwok.command(binary, identity(info, "kwok-bench")))
        await asyncio.to_thread(_wait_nodes_ready, info, self.node_names(nodes))
        return [proc.pid]


_ROOT = pathlib.Path(__file__).resolve().parent.parent  # where ``python -m bench.…`` finds the bench package


class KwokKubelet(Kwok):
    """KWOK, and beside it a process making a kubelet's own API calls for its pods (their tokens and
    Events, ``bench.kubelet_calls``): what a faithful virtual node costs the API server at the least.
    That process's CPU is counted apart, as the simulated cloud's is."""

    name = "kwok+kubelet"
    events = True
    as_node = True

    async def start(self, info: launcher.Info, supervisor: procs.Supervisor, nodes: int) -> list[int]:
        pids = await super().start(info, supervisor, nodes)
        cmd = [
            sys.executable, "-m", "bench.kubelet_calls", f"--kubeconfig={identity(info, 'kubelet-calls')}",
            "--namespace=bench", f"--nodes={','.join(self.node_names(nodes))}",
            *([] if self.events else ["--no-events"]),
            *([] if self.as_node else ["--as-account"]),
        ]  # fmt: skip
        self.helpers["kubelet calls"] = supervisor.spawn("kubelet-calls", cmd, cwd=_ROOT).pid
        return pids


class KwokTokens(KwokKubelet):
    """KWOK, and beside it a process making each pod's TokenRequest as its node, and nothing else: the
    call a pod cannot start without. What it costs the control plane bounds every node that makes it."""

    name = "kwok+tokens"
    events = False


class KwokTokensAccount(KwokTokens):
    """``kwok+tokens`` asking as its own ServiceAccount, not as the node: never refused while the API
    server catches up with a new pod, one TokenRequest per pod, the cheapest a pod's token can be."""

    name = "kwok+tokens-sa"
    as_node = False


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    with contextlib.suppress(OSError, ValueError):
        low, high = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    return 32768, 60999  # Linux's default


def _free_port() -> int:
    """A port for a process of the benchmark to listen on, free now and below the ephemeral range: a port
    the kernel picks for ``bind(0)`` is one that outgoing connections are given too, and with fifty
    daemons opening a hundred connections each, one of them could take it before its daemon listens
    there (that daemon then stops on "address in use")."""
    low = _ephemeral_range()[0]
    for _ in range(1000):
        port = random.randrange(max(1024, low - 12000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port below {low}")


def http_ok(url: str, method: str = "GET") -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2) as resp:
            return bool(200 <= resp.status < 300)
    except OSError:
        return False


class Vnode:
    """vnode's daemons, one per node, on the ECI provider against the simulated cloud's ``fast`` profile.

    The cloud's create/delete rate limits (ECI: 20/s) are lifted, on the simulator and in the
    provider, so the figures show what vnode and the control plane allow, not an account's quota.
    """

    name = "vnode"
    loop = "auto"  # VNODE_EVENT_LOOP of the daemons: uvloop's when installed

    def __init__(self) -> None:
        self.helpers: dict[str, int] = {}
        self.admin_url = ""  # the simulated cloud's admin API (its live instances)
        # Per node: the command and environment it was started with, and its /readyz port, so that a
        # benchmark can kill one and start it again as a StatefulSet would (same pod name and UID).
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.http_ports: dict[str, int] = {}

    def node_names(self, nodes: int) -> list[str]:
        return [f"vnode-bench-{i}" for i in range(nodes)]

    async def start(self, info: launcher.Info, supervisor: procs.Supervisor, nodes: int) -> list[int]:
        state = pathlib.Path(tempfile.mkdtemp(prefix="bench-cloud-", dir=info.state_dir))  # a fresh cloud per run
        cloud_json = state / "cloud.json"
        sim = supervisor.spawn(
            "cloudsim",
            [sys.executable, "-m", "vnode", "cloudsim", f"--state-dir={state}", f"--cloud-json={cloud_json}",
             "--profile=fast", "--no-aci"],
        )  # fmt: skip
        self.helpers["cloudsim"] = sim.pid
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError, ValueError):
                cloud = json.loads(cloud_json.read_text())
                if cloud.get("pid") == sim.pid and http_ok(cloud["admin_url"] + "health"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the simulated cloud did not start")
            await asyncio.sleep(0.2)
        self.admin_url = cloud["admin_url"]
        for operation in ("create", "delete"):
            http_ok(f"{cloud['admin_url']}rate-limits/{operation}", method="DELETE")
        env = {
            **os.environ,
            "ECI_ACCESS_KEY": cloud["access_key_id"],
            "ECI_SECRET_KEY": cloud["access_key_secret"],
            "ECI_CREATE_RATE": "0",
            "VNODE_EVENT_LOOP": self.loop,
        }
        pids = []
        for name in self.node_names(nodes):
            self.http_ports[name] = port = _free_port()
            cmd = [
                sys.executable, "-m", "vnode", "run", "--provider=eci", f"--node-name={name}",
                "--cluster-id=bench", "--node-ip=127.0.0.1",
                f"--http-port={port}", "--kubelet-port=0", "--status-interval=1", "--workers=64",
                f"--eci-endpoint={cloud['eci']['endpoint']}", f"--eci-region={cloud['region']}",
                f"--eci-vswitch={','.join(v['id'] for v in cloud['vswitches'])}",
                f"--eci-security-group={cloud['security_group_id']}",
            ]  # fmt: skip
            own = {**env, "POD_NAME": f"{name}-pod", "POD_UID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name))}
            cmd, own = in_a_pod(info, name, cmd, own)
            self.commands[name] = (cmd, own)
            pids.append(supervisor.spawn(name, cmd, env=own).pid)
        try:
            await asyncio.to_thread(_wait_nodes_ready, info, self.node_names(nodes), 60 + 3 * nodes)
        except NotReady as exc:
            raise _tell_why(exc, supervisor, dict(zip(self.node_names(nodes), pids, strict=True))) from None
        return pids


class VnodeAsyncio(Vnode):
    """vnode on asyncio's own event loop: beside ``vnode`` (uvloop's, when installed) in the same run,
    the A/B that decides whether uvloop earns its place as a dependency."""

    name = "vnode-asyncio"
    loop = "asyncio"

    def node_names(self, nodes: int) -> list[str]:
        return [f"vnode-asyncio-bench-{i}" for i in range(nodes)]


class VirtualKubelet:
    """virtual-kubelet (Go) with its mock provider, one process per node, built from the Go module proxy.

    The mock provider runs a pod at once (Running and Ready in its CreatePod), so what it shows is
    the cost of virtual-kubelet's own node and pod controllers: informers, the pod sync workers, the
    status updates. It serves the kubelet API over TLS (a certificate made here for 127.0.0.1). Its client's
    rate limit is lifted at build time, as vnode sets none (``vnode.cluster.build.ensure_vk_mock``).
    """

    name = "virtual-kubelet"

    def __init__(self) -> None:
        self.helpers: dict[str, int] = {}

    def node_names(self, nodes: int) -> list[str]:
        return [f"vk-bench-{i}" for i in range(nodes)]

    async def start(self, info: launcher.Info, supervisor: procs.Supervisor, nodes: int) -> list[int]:
        binary = await asyncio.to_thread(build.ensure_vk_mock)
        state = pathlib.Path(tempfile.mkdtemp(prefix="bench-vk-", dir=info.state_dir))
        ca = certificates.make_ca("vk-bench", validity=datetime.timedelta(days=1), path_length=None)
        serving = certificates.issue(
            ca, common_name="vk-bench", hosts=("127.0.0.1",), server=True, validity=datetime.timedelta(days=1)
        )
        certificates.write_pair(serving, state / "serving.crt", state / "serving.key")
        capacity = {"cpu": "10000", "memory": "4Ti", "pods": "5000"}  # KWOK's nodes' capacity
        config = state / "mock.json"
        config.write_text(json.dumps({name: capacity for name in self.node_names(nodes)}))
        pids = []
        for name in self.node_names(nodes):
            env = {
                **os.environ,
                "KUBELET_PORT": str(_free_port()),
                "APISERVER_CERT_LOCATION": str(state / "serving.crt"),
                "APISERVER_KEY_LOCATION": str(state / "serving.key"),
                "VKUBELET_POD_IP": "127.0.0.1",
            }
            cmd = [
                str(binary), "--provider=mock", f"--provider-config={config}", f"--nodename={name}",
                f"--kubeconfig={identity(info, name)}", "--pod-sync-workers=64", "--enable-node-lease",
                f"--metrics-addr=127.0.0.1:{_free_port()}", "--klog.v=0", "--log-level=warn",
            ]  # fmt: skip
            pids.append(supervisor.spawn(name, cmd, env=env).pid)
        await asyncio.to_thread(_wait_nodes_ready, info, self.node_names(nodes))
        return pids


TARGETS: dict[str, Callable[[], object]] = {
    "kwok": Kwok,
    "kwok+kubelet": KwokKubelet,
    "kwok+tokens": KwokTokens,
    "kwok+tokens-sa": KwokTokensAccount,
    "virtual-kubelet": VirtualKubelet,
    "vnode": Vnode,
    "vnode-asyncio": VnodeAsyncio,
}
