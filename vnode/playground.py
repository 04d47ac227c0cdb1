"""The local playground behind ``make up``: the control plane and, around it, the rest of vnode's world.

A playground is a state directory (``.vnode/``) holding the control plane's files and a
record of the other long-running parts (``playground.json``), each a detached process with its
log in ``logs/``. ``up`` starts what is not running and leaves alone what is; ``down`` stops
every part it recorded, then the control plane. Parts are listed in start order by
``services()``, each with a readiness check, so ``up`` returns only when the world answers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from vnode import playground_aci
from vnode.cluster import build, launcher, metrics_server, procs
from vnode.provider.process import provider as process

HOST_NODE = "vnode-host"  # the process-provider node that runs the chart's StatefulSet
DEDICATED_TAINT = "vnode.io/dedicated=vnode"
RELEASE = "vnode"
CHART = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "helm" / "vnode"
VIRTUAL_NODE = "virtual-node-eci-0"


class PlaygroundError(RuntimeError):
    """A part of the playground failed to start; the message names it and its log."""


@dataclasses.dataclass(frozen=True)
class Service:
    """One long-running part: how to start it and how to know it is ready.

    ``command`` and ``env`` are called at start time, so a part can read what the parts started
    before it wrote (the simulated cloud's ``cloud.json``). ``ready`` is given the pid started.
    """

    name: str
    command: Callable[[], list[str]]
    ready: Callable[[int], bool]
    env: Callable[[], dict[str, str]] = dict
    timeout: float = 60.0


@dataclasses.dataclass(frozen=True)
class Context:
    state_dir: pathlib.Path
    cluster: launcher.Info

    def vnode(self, *args: str) -> list[str]:
        """A command line running this very vnode installation."""
        return [sys.executable, "-m", "vnode", *args]


def http_ok(url: str, *, cafile: pathlib.Path | None = None, timeout: float = 1.0) -> bool:
    try:
        context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return bool(200 <= resp.status < 300)
    except (OSError, urllib.error.URLError):
        return False


def free_port() -> int:
    """A port for a server that may restart on it (the simulated cloud, the webhook): below the ephemeral range."""
    return launcher.free_port()


def cloud_info(state_dir: pathlib.Path) -> dict[str, Any]:
    """What the simulated cloud wrote about itself: endpoints, credentials, vSwitches."""
    data: dict[str, Any] = json.loads((state_dir / "cloud.json").read_text())
    return data


def _cloud_ready(state_dir: pathlib.Path, pid: int) -> bool:
    try:
        info = cloud_info(state_dir)
    except (OSError, ValueError):
        return False
    return bool(info.get("pid") == pid and http_ok(info["admin_url"] + "health"))


def _ports(state_dir: pathlib.Path) -> dict[str, int]:
    """Ports of the playground's parts, chosen once and kept, so addresses stay stable across `up`s."""
    path = state_dir / "ports.json"
    try:
        ports: dict[str, int] = json.loads(path.read_text())
    except (OSError, ValueError):
        ports = {}
    for name in ("webhook", "kwok", "node_http", "node_kubelet"):
        ports.setdefault(name, free_port())
    path.write_text(json.dumps(ports))
    return ports


def services(ctx: Context) -> list[Service]:
    """The parts after the control plane, in start order."""
    ports = _ports(ctx.state_dir)
    parts = [_cloudsim(ctx), _webhook(ctx, ports), _kwok(ctx, ports), _host(ctx, ports), _operator(ctx)]
    if metrics_server.supported() is None:
        parts.append(_metrics_server(ctx))
    return parts


def _cloudsim(ctx: Context) -> Service:
    state = ctx.state_dir
    return Service(
        "cloudsim",
        lambda: ctx.vnode(
            "cloudsim",
            f"--state-dir={state / 'cloudsim'}",
            f"--cloud-json={state / 'cloud.json'}",
            "--profile=realistic",
        ),
        lambda pid: _cloud_ready(state, pid),
    )


def _webhook(ctx: Context, ports: dict[str, int]) -> Service:
    kubeconfig, webhook_dir = str(ctx.cluster.kubeconfig), ctx.state_dir / "webhook"
    return Service(
        "webhook",
        lambda: ctx.vnode(
            "webhook", f"--kubeconfig={kubeconfig}", f"--port={ports['webhook']}", f"--cert-dir={webhook_dir}"
        ),
        lambda pid: http_ok(f"https://127.0.0.1:{ports['webhook']}/readyz", cafile=webhook_dir / "ca.crt"),
    )


def _kwok(ctx: Context, ports: dict[str, int]) -> Service:
    return Service(
        "kwok",
        lambda: [
            sys.executable,
            "-m",
            "vnode.cluster.kwok",
            f"--kubeconfig={ctx.cluster.kubeconfig}",
            "--nodes=2",
            "--cpu=4",
            "--memory=8Gi",
            f"--server-address=127.0.0.1:{ports['kwok']}",
        ],
        lambda pid: http_ok(f"http://127.0.0.1:{ports['kwok']}/healthz"),
        timeout=300,  # the first run builds kwok
    )


def _host(ctx: Context, ports: dict[str, int]) -> Service:
    """The process-provider node that runs the chart's StatefulSet."""

    def env() -> dict[str, str]:
        # The chart's replicas run as host processes: `vnode` must be on their PATH.
        path = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {"VNODE_PROCESS_DIR": str(ctx.state_dir / "process"), "PATH": path}

    command = ctx.vnode(
        "run",
        "--provider=process",
        f"--node-name={HOST_NODE}",
        f"--kubeconfig={ctx.cluster.kubeconfig}",
        "--cluster-id=playground-host",
        "--node-ip=127.0.0.1",
        f"--http-port={ports['node_http']}",
        f"--kubelet-port={ports['node_kubelet']}",
    )
    return Service(
        HOST_NODE, lambda: command, lambda pid: http_ok(f"http://127.0.0.1:{ports['node_http']}/readyz"), env=env
    )


def _operator(ctx: Context) -> Service:
    """``vnode operator`` on loopback: ImageCache objects (the chart's CRD) into the simulated cloud."""

    def command() -> list[str]:
        ctx.cluster.kubectl("apply", "-f", str(CHART / "crds"))
        return ctx.vnode("operator", f"--kubeconfig={ctx.cluster.kubeconfig}")

    def env() -> dict[str, str]:
        info = cloud_info(ctx.state_dir)
        return {
            "ECI_REGION": info["region"],
            "ECI_ENDPOINT": info["eci"]["endpoint"],
            "ECI_ACCESS_KEY": info["eci"]["access_key_id"],
            "ECI_SECRET_KEY": info["eci"]["access_key_secret"],
            "ECI_VSWITCH": ",".join(v["id"] for v in info["vswitches"]),
            "ECI_SECURITY_GROUP": info["security_group_id"],
        }

    return Service("operator", command, lambda pid: True, env=env)  # kopf serves no readiness endpoint


def _metrics_server(ctx: Context) -> Service:
    where = metrics_server.plan(ctx.state_dir)

    def command() -> list[str]:
        # Its address and APIService first: they outlive a restart of the process.
        metrics_server.ensure_address(where)
        metrics_server.register(ctx.cluster, where)
        return metrics_server.command(ctx.cluster, where)

    return Service("metrics-server", command, lambda pid: metrics_server.available(ctx.cluster), timeout=120)


class Playground:
    def __init__(self, state_dir: pathlib.Path, *, options: launcher.Options | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.cluster = launcher.Cluster(options or launcher.default_options(self.state_dir))
        # Attached (the test suite): every part, process instances included, dies with this process.
        self.attach = self.cluster.options.attach
        self.procs = procs.Supervisor(self.state_dir / "playground.json", self.state_dir / "logs", attach=self.attach)

    def up(self) -> Context:
        ctx = Context(self.state_dir, self.cluster.up())
        env = {**os.environ, "KUBECONFIG": str(ctx.cluster.kubeconfig)}
        if self.attach:
            env["VNODE_PROCESS_LIFELINE"] = str(os.getpid())
        live = self.procs.live()
        for service in services(ctx):
            if service.name in live and service.ready(live[service.name]):
                continue
            if service.name in live:
                self.procs.stop([service.name])
            child = self.procs.spawn(service.name, service.command(), env={**env, **service.env()})
            deadline = time.monotonic() + service.timeout
            while not service.ready(child.pid):
                if child.poll() is not None:
                    log = self.state_dir / "logs" / f"{service.name}.log"
                    raise PlaygroundError(f"{service.name} exited with {child.returncode}; see {log}")
                if time.monotonic() > deadline:
                    raise PlaygroundError(f"{service.name} not ready after {service.timeout:.0f}s")
                time.sleep(0.2)
        self._dedicate_host(ctx)
        self._install_chart(ctx)
        return ctx

    @staticmethod
    def _dedicate_host(ctx: Context) -> None:
        """Keep users' pods off vnode-host: the webhook's toleration covers every
        virtual-kubelet.io/provider taint, so the host needs one of its own (the daemon keeps
        taints it does not own)."""
        taint = f"{DEDICATED_TAINT}:NoSchedule"
        result = ctx.cluster.kubectl("taint", "node", HOST_NODE, taint, "--overwrite", check=False)
        if result.returncode != 0:
            raise PlaygroundError(f"could not taint {HOST_NODE}: {result.stderr.strip()}")

    def _helm(self, ctx: Context, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        helm = build.ensure_go_tool("helm", "helm.sh/helm/v3/cmd/helm", build.HELM_VERSION)
        cmd = [str(helm), f"--kubeconfig={ctx.cluster.kubeconfig}", "--namespace=kube-system", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def _install_chart(self, ctx: Context) -> None:
        """The chart's StatefulSet, on vnode-host, registers the virtual node(s) against the simulated cloud."""
        cloud = cloud_info(ctx.state_dir)
        values = {
            "eci.endpoint": cloud["eci"]["endpoint"],
            "eci.region": cloud["region"],
            "eci.securityGroup": cloud["security_group_id"],
            "credentials.accessKeyId": cloud["access_key_id"],
            "credentials.accessKeySecret": cloud["access_key_secret"],
        }
        sets = [f"--set={key}={value}" for key, value in values.items()]
        vswitches = json.dumps([v["id"] for v in cloud["vswitches"]])
        values_file = CHART.parent.parent / "playground-values.yaml"
        install = ["upgrade", "--install", RELEASE, str(CHART), f"--values={values_file}", *sets]
        result = self._helm(ctx, *install, f"--set-json=eci.vSwitches={vswitches}")
        if result.returncode != 0:
            raise PlaygroundError(f"helm install failed: {result.stderr.strip().splitlines()[-1:]}")
        failed = playground_aci.install(ctx.cluster.kubectl, lambda *a: self._helm(ctx, *a), CHART, values_file, cloud)
        if failed:
            raise PlaygroundError(failed)
        deadline = time.monotonic() + 120
        for node in (VIRTUAL_NODE, playground_aci.VIRTUAL_NODE):
            while not self._node_ready(ctx, node):
                if time.monotonic() > deadline:
                    raise PlaygroundError(f"{node} not Ready 120s after helm install; see {ctx.state_dir / 'process'}")
                time.sleep(0.5)

    @staticmethod
    def _node_ready(ctx: Context, name: str) -> bool:
        out = ctx.cluster.kubectl("get", "node", name, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def down(self) -> list[str]:
        stopped = []
        if self.cluster.status()["ready"]:
            # Uninstall while vnode-host and the cloud still run: the chart's hook drains the
            # virtual nodes and deletes their instances, so nothing is left in the cloud.
            ctx = Context(self.state_dir, self.cluster.info())
            for release in (playground_aci.RELEASE, RELEASE):
                if self._helm(ctx, "uninstall", release, "--timeout=3m", "--wait").returncode == 0:
                    stopped.append(f"helm release {release}")
        record = self.procs.read()
        started = list(record.get("processes", {}))
        if "metrics-server" in started:
            ready = self.cluster.status()["ready"]
            metrics_server.remove(self.cluster.info() if ready else None, metrics_server.plan(self.state_dir))
        stopped += self.procs.stop(reversed(started))
        # Process instances outlive vnode-host by design (a daemon restart must not kill pods):
        # stop them, and whatever they started that names the state dir (process.stop_all's reaper).
        process.stop_all(self.state_dir / "process")
        return stopped + self.cluster.down()

    def status(self) -> dict[str, object]:
        return {"cluster": self.cluster.status(), "services": self.procs.live()}


STORIES = """\
Try next:
  export KUBECONFIG={kubeconfig} PATH=$PWD/.venv/bin:$PATH
  kubectl get nodes -o wide   # virtual-node-eci-0, virtual-node-aci-0 (agents), vnode-host, two KWOK workers
  kubectl -n kube-system get statefulset virtual-node-eci virtual-node-aci
  kubectl -n kube-system scale statefulset virtual-node-eci --replicas=3   # more virtual nodes
  kubectl create namespace vk && kubectl label namespace vk virtual-node-affinity-injection=enabled
  kubectl -n vk create deployment nginx --image nginx:alpine --replicas 3
  kubectl -n vk get pods -o wide                 # Running on the virtual nodes, ECI's and ACI's
  kubectl run pi --image perl --restart Never -l alibabacloud.com/eci=true \\
      --command -- perl -Mbignum=bpi -wle 'print bpi(2000)'
  kubectl -n vk top pods                         # usage from the cloud's metrics API (give it ~30 s)
  kubectl -n vk create deployment spin --image busybox -- sh -c 'while true; do :; done'
  kubectl -n vk set resources deployment spin --requests cpu=100m --limits cpu=250m
  kubectl -n vk autoscale deployment spin --cpu=50% --max=4 && kubectl -n vk get hpa -w
  open {console}   # the simulated cloud's console: instances, stock, cost
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=pathlib.Path, default=pathlib.Path(".vnode"), help="default: .vnode")


def run(args: argparse.Namespace) -> int:
    playground = Playground(args.state_dir)
    try:
        if args.action == "up":
            started = time.monotonic()
            ctx = playground.up()
            print(f"playground ready in {time.monotonic() - started:.1f}s: {ctx.cluster.server}")
            console = cloud_info(ctx.state_dir).get("console_url", "")
            print(STORIES.format(kubeconfig=ctx.cluster.kubeconfig, console=console))
        elif args.action == "down":
            stopped = playground.down()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        else:
            print(json.dumps(playground.status(), indent=2))
    except (launcher.ClusterError, PlaygroundError) as exc:
        print(f"vnode playground {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
