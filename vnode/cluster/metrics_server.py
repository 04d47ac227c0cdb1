"""metrics-server beside a local control plane, so that ``kubectl top`` and HPAs work in the playground.

The API server reaches an aggregated API (``v1beta1.metrics.k8s.io``) through its Service's
endpoints (the launcher runs it with ``--enable-aggregator-routing``), and it refuses loopback
addresses there: Endpoints may not hold 127.0.0.0/8, and the API server will not proxy to one.
So metrics-server listens on a private address of its own, on a network interface made for it
(a veth pair with both ends in the host namespace: some kernels lack the ``dummy`` link type;
root only). From there it reaches the API server at
127.0.0.1 and every node's kubelet API at the node's InternalIP, which for vnode's nodes in the
playground is the host's own address (``VNODE_NODE_IP=auto`` in deploy/playground-values.yaml).
(``tests/kubelet/test_metrics_server.py`` runs it inside a network namespace instead.)
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess

from vnode.cluster import build, launcher

__all__ = ["APISERVICE", "Plan", "available", "command", "plan", "register", "remove", "supported"]

APISERVICE = "v1beta1.metrics.k8s.io"
SERVICE = "vnode-metrics-server"  # in kube-system
PORT = 4443
TOOL = next(tool for tool in build.TOOLS if tool[0] == "metrics-server")


class Plan:
    """Where one playground's metrics-server listens: a veth pair and a /32 derived from the state dir."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        digest = hashlib.sha256(str(state_dir.resolve()).encode()).digest()
        self.link = f"vnms{digest[:3].hex()}a"  # at most 15 characters, as Linux wants
        self.peer = f"vnms{digest[:3].hex()}b"
        self.ip = f"10.214.{digest[3]}.{1 + digest[4] % 254}"
        self.cert_dir = state_dir / "metrics-server"


def plan(state_dir: pathlib.Path) -> Plan:
    return Plan(state_dir)


def supported() -> str | None:
    """None if metrics-server can run here, else why not."""
    if os.geteuid() != 0:
        return "metrics-server needs root here (a network interface for its address)"
    if shutil.which("ip") is None:
        return "metrics-server needs iproute2 (`ip`) for its address"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def ensure_address(where: Plan) -> None:
    """The veth pair with the address on one end, made if missing (repeating is harmless)."""
    if _ip("link", "show", where.link, check=False).returncode != 0:
        _ip("link", "add", where.link, "type", "veth", "peer", "name", where.peer)
    if where.ip not in _ip("-4", "addr", "show", "dev", where.link).stdout:
        _ip("addr", "add", f"{where.ip}/32", "dev", where.link)
    _ip("link", "set", where.peer, "up")
    _ip("link", "set", where.link, "up")


def command(cluster: launcher.Info, where: Plan) -> list[str]:
    """The metrics-server command line (building it into the tool cache on first use)."""
    binary = build.ensure_go_tool(*TOOL)
    where.cert_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = str(cluster.kubeconfig)
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={where.ip}",
        f"--secure-port={PORT}",
        f"--cert-dir={where.cert_dir}",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        f"--kubelet-certificate-authority={cluster.ca_file}",
        "--metric-resolution=15s",
        "--kubelet-request-timeout=5s",
    ]


def register(cluster: launcher.Info, where: Plan) -> None:
    """The Service, its hand-made Endpoints and the APIService (``kubectl apply``: repeatable)."""
    objects = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": "kube-system"},
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": PORT}]},
            },
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": SERVICE, "namespace": "kube-system"},
                "subsets": [{"addresses": [{"ip": where.ip}], "ports": [{"name": "https", "port": PORT}]}],
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "insecureSkipTLSVerify": True,  # metrics-server's certificate is self-signed
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                    "service": {"name": SERVICE, "namespace": "kube-system", "port": 443},
                },
            },
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(objects))


def available(cluster: launcher.Info) -> bool:
    out = cluster.kubectl("get", "apiservice", APISERVICE, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)


def remove(cluster: launcher.Info | None, where: Plan) -> None:
    """Unregister (an APIService without a server makes every discovery complain) and drop the pair."""
    if cluster is not None:
        cluster.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        for kind in ("service", "endpoints"):
            cluster.kubectl("-n", "kube-system", "delete", kind, SERVICE, "--ignore-not-found", check=False)
    if supported() is None:
        _ip("link", "del", where.link, check=False)
