"""``vnode run`` as a process: refuses bad settings in one line, serves health and metrics, stops on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from prometheus_client import parser

from tests.cloudsim.conftest import running
from tests.node.conftest import pod_manifest
from tests.waiting import wait_for
from vnode.cluster import launcher, procs
from vnode.provider.fake import provider as fake


@pytest.mark.parametrize(
    ("provider", "env", "named"),
    [
        ("eci", {"ECI_VSWITCH": "", "ECI_QUOTA_POD": "lots"}, ("ECI_QUOTA_POD",)),
        ("aci", {"ACI_TOKEN": "tok", "ACI_CLIENT_SECRET": "sec"}, ("ACI_TOKEN", "ACI_CLIENT_SECRET")),
    ],
)
def test_invalid_settings_refuse_to_start_with_one_line_naming_the_setting(
    provider: str, env: dict[str, str], named: tuple[str, ...]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vnode", "run", "--provider", provider],
        env={**os.environ, "POD_NAME": "vn-x", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    for name in named:
        assert name in done.stderr


def test_an_unreadable_aci_ca_file_and_an_unreachable_api_server_each_end_the_start_in_one_line(
    tmp_path: pathlib.Path,
) -> None:
    """Each used to end in a traceback (a bare FileNotFoundError from the first TLS call; the task
    group's ExceptionGroup around the API server's connection error)."""
    closed = _free_port()  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{closed}', insecure-skip-tls-verify: true}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    cases = [
        ({"VNODE_PROVIDER": "aci", "ACI_TOKEN": "t", "ACI_CA_FILE": str(tmp_path / "missing.pem")}, 2, "ACI_CA_FILE"),
        ({"VNODE_PROVIDER": "fake", "VNODE_HTTP_PORT": "0", "VNODE_KUBELET_PORT": "0"}, 1, f"127.0.0.1:{closed}"),
    ]
    for env, code, named in cases:
        done = subprocess.run(
            [sys.executable, "-m", "vnode", "run"],
            env={**os.environ, "POD_NAME": "vn-x", "KUBECONFIG": str(kubeconfig), **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        assert (done.returncode, "Traceback" in done.stderr) == (code, False), done.stderr[-2000:]
        assert last.startswith("vnode run: "), last
        assert named in last, last


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(env: dict[str, str], port: int, log: pathlib.Path | None = None, *extra: str) -> subprocess.Popen[str]:
    """``vnode run`` as a child that dies with this process; with ``log``, its log goes there (not a pipe)."""
    cmd = [
        sys.executable,
        "-m",
        "vnode",
        "run",
        "--provider",
        "fake",
        "--http-address",
        "127.0.0.1",
        "--http-port",
        str(port),
        "--status-interval",
        "0.5",
        *extra,
    ]
    if log is None:
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=procs.die_with_parent
        )
    with log.open("a") as sink:
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=sink, text=True, preexec_fn=procs.die_with_parent
        )


@pytest.fixture
def daemon_process(cluster: launcher.Info, core: k8s.CoreV1Api) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    port, name = _free_port(), f"vn-cmd-{os.getpid()}"
    env = {**os.environ, "VNODE_NODE_NAME": name, "KUBECONFIG": str(cluster.kubeconfig)}
    cmd = [
        sys.executable,
        "-m",
        "vnode",
        "run",
        "--provider",
        "fake",
        "--http-address",
        "127.0.0.1",
        "--http-port",
        str(port),
        "--status-interval",
        "0.5",
    ]
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=procs.die_with_parent
    )
    try:
        yield process, port, name
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(name)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.cluster
def test_vnode_run_serves_health_and_metrics_and_stops_on_sigterm(
    daemon_process: tuple[subprocess.Popen[str], int, str], core: k8s.CoreV1Api
) -> None:
    process, port, name = daemon_process
    wait_for(lambda: _get(port, "/readyz")[0] == 200, timeout=30, what="/readyz answering 200")
    assert _get(port, "/healthz") == (200, "ok")
    status, text = _get(port, "/metrics")
    assert status == 200
    assert f'vnode_cloud_up{{node="{name}"}} 1.0' in text
    # The process's own metrics, for memory and CPU per daemon (the soak reads the allocator's blocks).
    samples = {s.name: s.value for f in parser.text_string_to_metric_families(text) for s in f.samples}
    assert samples["process_resident_memory_bytes"] > 10 * 2**20
    assert samples["vnode_python_allocated_blocks"] > 10_000
    assert "python_gc_collections_total" in samples

    def node_ready() -> bool:
        conditions = core.read_node(name).status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    wait_for(node_ready, timeout=5, what="node Ready")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert process.stderr is not None
    logged = [json.loads(line) for line in process.stderr.read().splitlines() if line.startswith("{")]
    assert any(entry.get("node") == name for entry in logged)  # its JSON lines name the node


@pytest.mark.cluster
@pytest.mark.slow
def test_kill_9_while_creating_50_pods_then_restart_gives_exactly_50_instances_and_no_orphan(
    cluster: launcher.Info, core: k8s.CoreV1Api, namespace: str, tmp_path: pathlib.Path
) -> None:
    name, port, state = f"vn-kill-{os.getpid()}", _free_port(), tmp_path / "cloud.json"
    env = {
        **os.environ,
        "VNODE_NODE_NAME": name,
        "KUBECONFIG": str(cluster.kubeconfig),
        "POD_NAME": name,
        "POD_UID": "0000-kill-test",
        "VNODE_FAKE_STATE": str(state),
        "VNODE_FAKE_ANSWER_LATENCY": "0.5",
    }
    running: list[subprocess.Popen[str]] = []
    try:
        # Four workers and a slow answer: the 52 creates take several seconds, so the kill lands mid-way.
        running.append(_spawn(env, port, tmp_path / "daemon.log", "--workers", "4"))
        wait_for(lambda: _get(port, "/readyz")[0] == 200, timeout=60, what="the first daemon ready")
        for i in range(52):
            core.create_namespaced_pod(namespace, pod_manifest(f"k-{i:02d}", name))
        wait_for(
            lambda: len(fake.FakeProvider.read_state(state).created) >= 15, timeout=60, what="instances being created"
        )
        running[0].kill()  # SIGKILL: creates in flight, answers lost, nothing flushed
        running[0].wait(timeout=10)
        assert len(fake.FakeProvider.read_state(state).created) < 52
        # Two pods with instances are force-deleted while no daemon runs: their instances are orphans.
        with_instance = {s.pod_uid for s in fake.FakeProvider.read_state(state).instances()}
        doomed = [p for p in core.list_namespaced_pod(namespace).items if p.metadata.uid in with_instance][:2]
        for pod in doomed:
            core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
        running.append(_spawn({**env, "VNODE_FAKE_ANSWER_LATENCY": "0"}, port, tmp_path / "daemon.log"))

        def settled() -> bool:
            pods = core.list_namespaced_pod(namespace).items
            instances = fake.FakeProvider.read_state(state).instances()
            return sum(p.status.phase == "Running" for p in pods) == 50 and len(instances) == 50

        wait_for(settled, timeout=120, what="50 pods Running on 50 instances", interval=0.5)
        uids = [s.pod_uid for s in fake.FakeProvider.read_state(state).instances()]
        assert len(set(uids)) == len(uids) == 50
        assert set(uids) == {p.metadata.uid for p in core.list_namespaced_pod(namespace).items}
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stderr:
                process.stderr.close()
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(name)


@pytest.mark.cluster
def test_a_cloud_refusing_the_key_ends_the_start_in_one_line_naming_the_setting(
    cluster: launcher.Info, core: k8s.CoreV1Api, tmp_path: pathlib.Path
) -> None:
    """Issue #15: wrong credentials end start-up with one line naming the setting, never a traceback
    (after the Node says NotReady with the cloud's refusal: tests/node/test_cloud_readiness.py)."""
    name = f"vn-key-{os.getpid()}"
    with running(tmp_path / "sim", profile="fast") as sim:
        env = {**os.environ, **sim.eci_env(), "ECI_SECRET_KEY": "not-the-secret", "VNODE_NODE_NAME": name,
               "KUBECONFIG": str(cluster.kubeconfig), "VNODE_HTTP_PORT": "0", "KUBELET_PORT": "0"}  # fmt: skip
        try:
            done = subprocess.run([sys.executable, "-m", "vnode", "run", "--provider", "eci"], env=env,
                                  capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        finally:
            with contextlib.suppress(k8s.ApiException):
                core.delete_node(name)
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    assert (done.returncode, "Traceback" in done.stderr) == (2, False), done.stderr[-2000:]
    assert last.startswith("vnode run: ECI_ACCESS_KEY/ECI_SECRET_KEY: the eci cloud refuses them: "), last
    assert "SignatureDoesNotMatch" in last, last
