"""``vnode run`` as a process: refuses bad settings in one line, serves health and metrics, stops on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.waiting import wait_for
from vnode.cluster import launcher, procs


def test_invalid_settings_refuse_to_start_with_one_line_naming_the_setting() -> None:
    env = {**os.environ, "POD_NAME": "vn-x", "ECI_VSWITCH": "", "ECI_QUOTA_POD": "lots"}
    done = subprocess.run(
        [sys.executable, "-m", "vnode", "run", "--provider", "fake"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "ECI_QUOTA_POD" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    node = core.read_node(name)
    assert next(c.status for c in node.status.conditions if c.type == "Ready") == "True"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert process.stderr is not None
    assert '"node": "' + name + '"' in process.stderr.read()
