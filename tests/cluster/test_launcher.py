"""The local control plane: real binaries, real scheduling, and a launcher that cleans up after itself."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.waiting import wait_for
from vnode import procinfo
from vnode.cluster import build, launcher

pytestmark = pytest.mark.cluster


def test_kubectl_version_reports_the_pinned_release(cluster: launcher.Info) -> None:
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)

    assert out["serverVersion"]["gitVersion"] == build.KUBERNETES_VERSION
    assert out["clientVersion"]["gitVersion"] == build.KUBERNETES_VERSION


def _fake_node(name: str) -> k8s.V1Node:
    return k8s.V1Node(
        metadata=k8s.V1ObjectMeta(name=name, labels={"kubernetes.io/hostname": name, "vnode.test/launcher": name}),
        spec=k8s.V1NodeSpec(taints=[k8s.V1Taint(key="vnode.test/launcher", value=name, effect="NoSchedule")]),
    )


def _ready_status() -> dict[str, object]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "status": {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node",
                 "lastHeartbeatTime": now, "lastTransitionTime": now},
            ],
        }
    }  # fmt: skip


@pytest.fixture
def registered_node(kube_api: k8s.ApiClient, namespace: str) -> Iterator[str]:
    """A Node that reports Ready and keeps its Lease fresh while the test runs, then is deleted."""
    core = k8s.CoreV1Api(kube_api)
    leases = k8s.CoordinationV1Api(kube_api)
    name = f"node-{namespace}"[:63]
    core.create_node(_fake_node(name))
    stop = threading.Event()

    def heartbeat() -> None:
        lease = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=name, namespace="kube-node-lease"),
            spec=k8s.V1LeaseSpec(holder_identity=name, lease_duration_seconds=40),
        )
        while not stop.is_set():
            lease.spec.renew_time = datetime.datetime.now(datetime.UTC)
            try:
                leases.replace_namespaced_lease(name, "kube-node-lease", lease)
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise
                leases.create_namespaced_lease("kube-node-lease", lease)
            core.patch_node_status(name, _ready_status())
            stop.wait(2)

    thread = threading.Thread(target=heartbeat, daemon=True)
    thread.start()
    try:
        yield name
    finally:
        stop.set()
        thread.join(timeout=10)
        core.delete_node(name)
        leases.delete_namespaced_lease(name, "kube-node-lease")


def test_deployment_pods_wait_unscheduled_until_a_ready_node_registers(
    kube_api: k8s.ApiClient, namespace: str, request: pytest.FixtureRequest
) -> None:
    core = k8s.CoreV1Api(kube_api)
    apps = k8s.AppsV1Api(kube_api)
    node_name = f"node-{namespace}"[:63]
    labels = {"app": "web"}
    container = k8s.V1Container(name="web", image="nginx:alpine")
    template = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=labels),
        spec=k8s.V1PodSpec(
            containers=[container],
            node_selector={"vnode.test/launcher": node_name},
            tolerations=[k8s.V1Toleration(key="vnode.test/launcher", operator="Exists", effect="NoSchedule")],
        ),
    )
    spec = k8s.V1DeploymentSpec(replicas=3, selector=k8s.V1LabelSelector(match_labels=labels), template=template)
    apps.create_namespaced_deployment(namespace, k8s.V1Deployment(metadata=k8s.V1ObjectMeta(name="web"), spec=spec))

    # The controller-manager works: a ReplicaSet and three Pods appear.
    wait_for(lambda: apps.list_namespaced_replica_set(namespace).items, timeout=30, what="the ReplicaSet")
    wait_for(lambda: len(core.list_namespaced_pod(namespace).items) == 3, timeout=30, what="3 pods")
    # The scheduler works: with no node for them, they stay Pending with FailedScheduling.
    wait_for(
        lambda: any(e.reason == "FailedScheduling" for e in core.list_namespaced_event(namespace).items),
        timeout=30,
        what="a FailedScheduling event",
    )
    assert all(p.status.phase == "Pending" and not p.spec.node_name for p in core.list_namespaced_pod(namespace).items)

    # A Ready node with a Lease gets them bound.
    request.getfixturevalue("registered_node")
    wait_for(
        lambda: all(p.spec.node_name == node_name for p in core.list_namespaced_pod(namespace).items),
        timeout=60,
        what=f"all 3 pods bound to {node_name}",
    )


# -- the launcher's own lifecycle, on clusters of their own ---------------------------------------


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _gone(pid: int) -> bool:
    return procinfo.start_time(pid) is None


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory, bin_dir: pathlib.Path) -> Iterator[launcher.Cluster]:
    """A second control plane beside the session's: the two must not collide."""
    options = launcher.Options(state_dir=tmp_path_factory.mktemp("own"), bin_dir=bin_dir, attach=True)
    control_plane = launcher.Cluster(options)
    control_plane.up()
    try:
        yield control_plane
    finally:
        control_plane.down()


def _pids(control_plane: launcher.Cluster) -> dict[str, int]:
    return {name: pid for name, pid in control_plane.status()["components"].items() if pid}


def test_up_twice_is_idempotent(own_cluster: launcher.Cluster) -> None:
    before = _pids(own_cluster)

    own_cluster.up()

    assert _pids(own_cluster) == before
    assert set(before) == set(launcher.COMPONENTS)


def test_up_after_kill_9_of_the_apiserver_recovers(own_cluster: launcher.Cluster) -> None:
    old = _pids(own_cluster)
    os.kill(old["kube-apiserver"], signal.SIGKILL)
    wait_for(lambda: not own_cluster.status()["ready"], timeout=10, what="the apiserver to die")

    info = own_cluster.up()

    now = _pids(own_cluster)
    assert set(now) == set(launcher.COMPONENTS)
    assert now["kube-apiserver"] != old["kube-apiserver"]
    assert all(_gone(pid) for name, pid in old.items() if now[name] != pid)
    assert info.kubectl("get", "--raw=/readyz").stdout.strip() == "ok"


def test_down_leaves_no_process_and_no_listening_port(own_cluster: launcher.Cluster) -> None:
    pids = _pids(own_cluster)
    ports = json.loads(own_cluster.record_path.read_text())["ports"]
    assert all(_listening(port) for name, port in ports.items() if name != "etcd_peer")

    stopped = own_cluster.down()

    assert sorted(stopped) == sorted(launcher.COMPONENTS)
    assert own_cluster.procs.killed == []  # each ended at its SIGTERM: none was waited for and killed
    assert all(_gone(pid) for pid in pids.values())
    assert not any(_listening(port) for port in ports.values())
    assert own_cluster.status()["components"] == dict.fromkeys(launcher.COMPONENTS)


def test_down_never_signals_a_process_that_reused_a_recorded_pid(tmp_path: pathlib.Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {
            "ports": {"apiserver": 1},
            "processes": {"etcd": {"pid": stranger.pid, "start_time": 1, "cmd": "etcd"}},
        }
        (tmp_path / "cluster.json").write_text(json.dumps(record))
        control_plane = launcher.Cluster(launcher.Options(state_dir=tmp_path, bin_dir=tmp_path))

        assert control_plane.down() == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


# -- bad input: one line naming the problem, non-zero exit, nothing left running -------------------


def _cli_up(state_dir: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "vnode", "cluster", "up", f"--state-dir={state_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def _nothing_running_from(state_dir: pathlib.Path) -> bool:
    control_plane = launcher.Cluster(launcher.Options(state_dir=state_dir, bin_dir=state_dir))
    if any(control_plane.status()["components"].values()):
        return False
    needle = str(state_dir.resolve())
    for proc in pathlib.Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    return False
            except OSError:
                continue
    return True


def test_up_refuses_a_port_taken_by_someone_else(tmp_path: pathlib.Path, bin_dir: pathlib.Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        result = _cli_up(tmp_path / "state", f"--bin-dir={bin_dir}", f"--port={port}")

    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert f"port {port}" in result.stderr
    assert "in use" in result.stderr
    assert _nothing_running_from(tmp_path / "state")


def test_up_refuses_when_a_binary_is_missing(tmp_path: pathlib.Path, bin_dir: pathlib.Path) -> None:
    partial = tmp_path / "bin"
    partial.mkdir()
    for name in (*build.KUBE_BINARIES, *build.ETCD_BINARIES):
        if name != "kube-scheduler":
            (partial / name).symlink_to(bin_dir / name)

    result = _cli_up(tmp_path / "state", f"--bin-dir={partial}")

    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "kube-scheduler not found" in result.stderr
    assert _nothing_running_from(tmp_path / "state")


def test_ports_are_chosen_below_the_ephemeral_range() -> None:
    """A restarted API server must find its port free: below the range the kernel gives outgoing
    connections, no client can hold it as its local port (the soak's restart failed so)."""
    low = launcher._ephemeral_low()
    ports = {launcher.free_port() for _ in range(20)}
    assert all(20000 <= p < low for p in ports), ports
    taken = launcher.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", taken))
        sock.listen()
        assert all(launcher.free_port({taken}) != taken for _ in range(20))
