"""The system under test: a control plane, the simulated cloud and a StatefulSet of vnode daemons.

The daemons run as host processes, as the playground's replicas do, with the downward API's
variables a StatefulSet's pod would give them (``POD_NAME``, ``POD_NAMESPACE``, ``POD_UID``), so
that ownership, scale-in and the takeover of a dead replica's node work as in a cluster. The
StatefulSet itself exists (its pods never schedule: a node selector nobody matches); the soak plays
the kubelet that would run them: it starts a process per wanted ordinal and sends SIGTERM to the
ones the StatefulSet removes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from vnode.cluster import launcher, procs

NAMESPACE = "soak-system"
STATEFULSET = "vnode-soak"
TERMINATION_GRACE = 90.0  # the StatefulSet pod's terminationGracePeriodSeconds: SIGKILL after it, as a kubelet does
CLUSTER_ID = "soak"
NODE_LABEL = "vnode.io/soak"
TAINT_KEY = "virtual-kubelet.io/provider"  # the ECI profile's taint; workloads tolerate it by key


def http(url: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


@dataclasses.dataclass
class Daemon:
    ordinal: int
    proc: subprocess.Popen[bytes]
    identity: str  # the Lease holder identity's pod uid part
    started: float
    http_port: int  # /metrics


class World:
    """Everything the soak starts; :meth:`close` stops it all (also after a failure)."""

    def __init__(self, state: pathlib.Path, *, seed: int, audit: bool = True) -> None:
        self.state = state
        self.seed = seed
        options = launcher.default_options(
            state / "cluster", audit=audit, attach=True, client_qps=2000, client_burst=4000, leader_lease_seconds=30
        )
        self.cluster = launcher.Cluster(options)
        self.info: launcher.Info | None = None
        self.supervisor = procs.Supervisor(state / "procs.json", state / "logs", attach=True)
        self.cloud: dict[str, Any] = {}
        self.cloud_port = launcher.free_port()
        self.daemons: dict[int, Daemon] = {}
        self.kubeconfigs: dict[str, pathlib.Path] = {}
        self._api: k8s.ApiClient | None = None

    # -- start and stop ----------------------------------------------------------------------

    def start(self, replicas: int) -> None:
        self.info = self.cluster.up()
        self._api = k8s_config.new_client_from_config(config_file=str(self.info.kubeconfig))  # type: ignore[no-untyped-call]
        self.start_cloud()
        self._statefulset(replicas)
        for ordinal in range(replicas):
            self.start_daemon(ordinal)
        self.wait_nodes_ready([self.node(i) for i in range(replicas)])

    def close(self) -> None:
        self.supervisor.stop(timeout=5)
        if self._api is not None:
            self._api.close()
        self.cluster.down()

    @property
    def api(self) -> k8s.ApiClient:
        assert self._api is not None, "the world is not started"
        return self._api

    def node(self, ordinal: int) -> str:
        return f"{STATEFULSET}-{ordinal}"

    # -- the simulated cloud -----------------------------------------------------------------

    def start_cloud(self) -> None:
        """The simulated cloud (``realistic`` profile), on its port and state, fresh or restarted."""
        cloud_state = self.state / "cloud"
        cloud_state.mkdir(exist_ok=True)
        cloud_json = cloud_state / "cloud.json"
        sim = self.supervisor.spawn("cloudsim", [
            sys.executable, "-m", "vnode", "cloudsim", f"--state-dir={cloud_state}", f"--cloud-json={cloud_json}",
            "--profile=realistic", "--no-aci", f"--port={self.cloud_port}", f"--seed={self.seed}",
        ])  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError, ValueError):
                cloud = json.loads(cloud_json.read_text())
                if cloud.get("pid") == sim.pid and http(cloud["admin_url"] + "health")["ok"]:
                    self.cloud = cloud
                    return
            if sim.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulated cloud did not start; see {self.state / 'logs' / 'cloudsim.log'}")
            time.sleep(0.2)

    def kill_cloud(self) -> None:
        pid = self.supervisor.live().get("cloudsim")
        if pid:
            os.kill(pid, signal.SIGKILL)
        self.supervisor.stop(["cloudsim"])

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return http(self.cloud["admin_url"] + path, method, body)

    def instances(self) -> list[dict[str, Any]]:
        """The cloud's live instances of this soak's cluster, from its own record."""
        answer = self.admin("GET", f"instances?tag=vnode.io/cluster={CLUSTER_ID}")
        return list(answer["instances"])

    def delete_in_cloud(self, instance_id: str) -> None:
        """Delete an instance through the ECI API with the official SDK, as a console user would."""
        from alibabacloud_eci20180808 import models as sdk_models
        from alibabacloud_eci20180808.client import Client
        from alibabacloud_tea_openapi import models as openapi_models

        config = openapi_models.Config(
            access_key_id=self.cloud["access_key_id"], access_key_secret=self.cloud["access_key_secret"],
            endpoint=self.cloud["eci"]["endpoint"], protocol="http", region_id=self.cloud["region"],
        )  # fmt: skip
        request = sdk_models.DeleteContainerGroupRequest(region_id=self.cloud["region"], container_group_id=instance_id)
        Client(config).delete_container_group(request)

    # -- the StatefulSet and its daemons ------------------------------------------------------

    def _statefulset(self, replicas: int) -> None:
        core, apps = k8s.CoreV1Api(self.api), k8s.AppsV1Api(self.api)
        with contextlib.suppress(k8s.ApiException):
            core.create_namespace({"metadata": {"name": NAMESPACE}})
        labels = {"app": STATEFULSET}
        apps.create_namespaced_stateful_set(NAMESPACE, {
            "metadata": {"name": STATEFULSET},
            "spec": {"replicas": replicas, "serviceName": STATEFULSET, "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "nodeSelector": {"vnode.io/soak-controller": "nowhere"},
                         "containers": [{"name": "vnode", "image": "vnode"}]}}},
        })  # fmt: skip

    def pod_uid(self, ordinal: int, within: float = 60) -> str:
        core = k8s.CoreV1Api(self.api)
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(k8s.ApiException):
                return str(core.read_namespaced_pod(self.node(ordinal), NAMESPACE).metadata.uid)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the StatefulSet made no pod {self.node(ordinal)} in {within:.0f}s")
            time.sleep(0.5)

    def kubeconfig(self, name: str) -> pathlib.Path:
        if name not in self.kubeconfigs:
            from bench import scale_targets  # a ServiceAccount bound to cluster-admin, as a chart installs one

            assert self.info is not None
            self.kubeconfigs[name] = scale_targets.identity(self.info, name)
        return self.kubeconfigs[name]

    def start_daemon(self, ordinal: int, *, identity: str = "", name: str = "") -> Daemon:
        """Start the daemon of ``ordinal`` (``identity``: another pod uid, as a replacement pod has)."""
        node = self.node(ordinal)
        uid = identity or self.pod_uid(ordinal)
        env = {
            **os.environ,
            "ECI_ACCESS_KEY": self.cloud["access_key_id"],
            "ECI_SECRET_KEY": self.cloud["access_key_secret"],
            "POD_NAME": node, "POD_NAMESPACE": NAMESPACE, "POD_UID": uid,
            "VNODE_TERMINATION_GRACE_SECONDS": str(int(TERMINATION_GRACE)),
        }  # fmt: skip
        http_port = launcher.free_port()
        cmd = [
            sys.executable, "-m", "vnode", "run", "--provider=eci", f"--node-name={node}",
            f"--kubeconfig={self.kubeconfig(name or node)}", f"--cluster-id={CLUSTER_ID}", "--node-ip=127.0.0.1",
            f"--http-port={http_port}", "--kubelet-port=0", "--workers=32",
            "--orphan-interval=20",
            f"--eci-endpoint={self.cloud['eci']['endpoint']}", f"--eci-region={self.cloud['region']}",
            f"--eci-vswitch={','.join(v['id'] for v in self.cloud['vswitches'])}",
            f"--eci-security-group={self.cloud['security_group_id']}",
        ]  # fmt: skip
        proc = self.supervisor.spawn(name or node, cmd, env=env)
        daemon = Daemon(ordinal, proc, uid, time.monotonic(), http_port)
        if not name:
            self.daemons[ordinal] = daemon
        return daemon

    def terminate(self, ordinal: int, grace: float = TERMINATION_GRACE) -> None:
        """What a kubelet does to a pod the StatefulSet removes: SIGTERM, then SIGKILL once its
        termination grace period is over if it is still running (a drain that could not finish in
        time is left to the surviving replicas' takeover, as in a cluster)."""
        daemon = self.daemons.get(ordinal)
        if daemon is None or daemon.proc.poll() is not None:
            return
        os.kill(daemon.proc.pid, signal.SIGTERM)

        def kill() -> None:
            if daemon.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(daemon.proc.pid, signal.SIGKILL)

        timer = threading.Timer(grace, kill)
        timer.daemon = True
        timer.start()

    def signal_daemon(self, ordinal: int, sig: signal.Signals) -> None:
        daemon = self.daemons.get(ordinal)
        if daemon is not None and daemon.proc.poll() is None:
            os.kill(daemon.proc.pid, sig)

    def reap_daemon(self, ordinal: int, within: float = 120) -> int | None:
        """Wait for the daemon of ``ordinal`` to exit; its exit code (None if it is still running)."""
        daemon = self.daemons.pop(ordinal, None)
        if daemon is None:
            return 0
        try:
            return daemon.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.daemons[ordinal] = daemon
            return None

    def wait_lease_holder(self, node: str, identity: str, within: float) -> float:
        """Seconds until ``node``'s Lease names a holder with ``identity`` in it."""
        leases = k8s.CoordinationV1Api(self.api)
        started = time.monotonic()
        while time.monotonic() - started < within:
            with contextlib.suppress(k8s.ApiException, OSError):
                holder = leases.read_namespaced_lease(node, "kube-node-lease").spec.holder_identity or ""
                if identity in holder:
                    return time.monotonic() - started
            time.sleep(1)
        raise TimeoutError(f"the Lease of {node} was not taken over by {identity} in {within:.0f}s")

    def scale(self, replicas: int) -> None:
        k8s.AppsV1Api(self.api).patch_namespaced_stateful_set_scale(
            STATEFULSET, NAMESPACE, {"spec": {"replicas": replicas}}
        )

    def nodes(self) -> dict[str, bool]:
        """The soak's Nodes and whether each is Ready."""
        found = {}
        for n in k8s.CoreV1Api(self.api).list_node().items:
            if n.metadata.name.startswith(STATEFULSET):
                found[n.metadata.name] = any(
                    c.type == "Ready" and c.status == "True" for c in n.status.conditions or []
                )
        return found

    def wait_nodes_ready(self, names: list[str], within: float = 120) -> None:
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(k8s.ApiException, OSError):
                ready = self.nodes()
                if all(ready.get(n) for n in names):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes not Ready after {within:.0f}s: {names}")
            time.sleep(0.5)


@contextlib.contextmanager
def world(replicas: int, *, seed: int, keep: bool = False, parent: pathlib.Path | None = None) -> Iterator[World]:
    """A started :class:`World` in a fresh directory (under ``parent``, else the system's temporary
    directory), stopped and removed afterwards (unless ``keep``)."""
    state = pathlib.Path(tempfile.mkdtemp(prefix="vnode-soak-", dir=parent))
    the_world = World(state, seed=seed)
    try:
        the_world.start(replicas)
        yield the_world
    finally:
        the_world.close()
        if keep:
            print(f"soak: state, logs and audit log kept in {state}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(state, ignore_errors=True)
