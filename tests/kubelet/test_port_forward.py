"""``kubectl port-forward`` to pods on virtual nodes, end to end: ``vnode run`` as a child process.

A process-provider node (its pods are host processes) runs ``python3 -m http.server`` on a free
host port; the built kubectl forwards a local port to it through the real API server and vnode's
kubelet API. kubectl's default transport is the WebSocket tunnel (``SPDY/3.1+portforward.k8s.io``,
forwarded unchanged to a node declaring ``ExtendWebSocketsToKubelet``);
``KUBECTL_PORT_FORWARD_WEBSOCKETS=false`` makes it use plain SPDY/3.1, which the API server
proxies as an ``Upgrade: SPDY/3.1``. An ECI node on the simulated cloud refuses by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.daemons import vnode_run
from tests.waiting import wait_for
from vnode.cluster import launcher
from vnode.provider import process

pytestmark = pytest.mark.cluster

BIG = 4 * 1024 * 1024  # bytes of big.bin: many times any buffer on the way, so flow control matters
PAGE = "hello from the pod\n"
TRANSPORTS = {"websocket": {}, "spdy": {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}}


def _big() -> bytes:
    return random.Random(7).randbytes(BIG)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def process_node(cluster: launcher.Info, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``vnode run --provider process`` node; its pods' processes are stopped at the end."""
    state = tmp_path_factory.mktemp("pf-process")
    env = {"VNODE_PROCESS_DIR": str(state / "instances"), "VNODE_PROCESS_LIFELINE": str(os.getpid())}
    try:
        with vnode_run("process", env, cluster, state) as name:
            yield name
    finally:
        process.stop_all(state / "instances")


@pytest.fixture(scope="module")
def web(process_node: str, cluster: launcher.Info, kube_api: k8s.ApiClient) -> Iterator[tuple[str, str, int]]:
    """A pod serving its working directory (``index.html``, ``big.bin``) on a free host port."""
    core = k8s.CoreV1Api(kube_api)
    namespace = f"pf-{os.getpid()}-{random.Random().randrange(1 << 20):x}"
    core.create_namespace({"metadata": {"name": namespace}})
    port = _free_port()
    prepare = "import random; "
    prepare += (
        f"open('big.bin', 'wb').write(random.Random(7).randbytes({BIG})); open('index.html', 'w').write({PAGE!r})"
    )
    script = f'python3 -c "{prepare}" && exec python3 -m http.server {port} --bind 127.0.0.1'
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": process_node,
            "containers": [{"name": "web", "image": "python", "command": ["sh", "-c", script]}],
            "terminationGracePeriodSeconds": 2,
        },
    }
    try:
        core.create_namespaced_pod(namespace, pod)
        wait_for(lambda: core.read_namespaced_pod("web", namespace).status.phase == "Running", timeout=60,
                 what="the web pod Running")  # fmt: skip
        wait_for(lambda: _listening(port), timeout=30, what=f"the pod's server on port {port}")
        yield namespace, "web", port
    finally:
        core.delete_namespace(namespace)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        return True
    return False


class Forward:
    """``kubectl port-forward pod :PORT`` running; ``local`` is the port kubectl listens on."""

    def __init__(self, proc: subprocess.Popen[str], local: int) -> None:
        self.proc = proc
        self.local = local

    def stderr(self, timeout: float = 30) -> str:
        """kubectl's stderr once it has exited (fails if it does not exit in time)."""
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"kubectl port-forward still running after {timeout}s")
        return err


@contextlib.contextmanager
def port_forward(
    cluster: launcher.Info, namespace: str, pod: str, port: int, env: dict[str, str] | None = None
) -> Iterator[Forward]:
    command = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", "-n", namespace,
               "port-forward", f"pod/{pod}", f":{port}"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while not line.startswith("Forwarding from 127.0.0.1:"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
            if not ready:
                pytest.fail("kubectl port-forward printed no 'Forwarding from' line in 30s")
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"kubectl port-forward exited: {proc.communicate(timeout=10)[1]}")
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        assert match is not None, line
        assert int(match.group(2)) == port, line
        yield Forward(proc, int(match.group(1)))
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)


def http_get(port: int, path: str, timeout: float = 60) -> tuple[int, bytes]:
    """One HTTP/1.0 GET on a fresh connection: the status and the whole body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_port_forward_serves_the_pods_page(web: tuple[str, str, int], cluster: launcher.Info, transport: str) -> None:
    namespace, pod, port = web
    with port_forward(cluster, namespace, pod, port, TRANSPORTS[transport]) as forward:
        assert http_get(forward.local, "/index.html") == (200, PAGE.encode())
        assert http_get(forward.local, "/missing")[0] == 404


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_concurrent_connections_each_get_a_few_megabytes(
    web: tuple[str, str, int], cluster: launcher.Info, transport: str
) -> None:
    namespace, pod, port = web
    expected = hashlib.sha256(_big()).hexdigest()
    results: dict[int, Any] = {}

    def fetch(index: int) -> None:
        try:
            results[index] = http_get(forward.local, "/big.bin")
        except Exception as exc:  # reported below, in the test's thread
            results[index] = exc

    with port_forward(cluster, namespace, pod, port, TRANSPORTS[transport]) as forward:
        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(t.is_alive() for t in threads), "a download through the forward did not finish"
        for index in range(2):
            result = results[index]
            assert not isinstance(result, Exception), result
            status, body = result
            assert (status, len(body), hashlib.sha256(body).hexdigest()) == (200, BIG, expected)
        # the forward is still good afterwards
        assert http_get(forward.local, "/index.html") == (200, PAGE.encode())


def test_a_port_nothing_listens_on_gives_kubectl_an_error_naming_it(
    web: tuple[str, str, int], cluster: launcher.Info
) -> None:
    namespace, pod, _ = web
    closed = _free_port()
    with port_forward(cluster, namespace, pod, closed) as forward:
        with socket.create_connection(("127.0.0.1", forward.local), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert sock.recv(100) == b""  # closed without an answer
        stderr = forward.stderr()
    assert f"error forwarding port {closed} to pod {namespace}/{pod}" in stderr, stderr
    assert f"nothing listens on port {closed}" in stderr, stderr
    assert forward.proc.returncode != 0


@pytest.fixture(scope="module")
def eci_node(cluster: launcher.Info, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sim, str]]:
    with running(tmp_path_factory.mktemp("pf-cloud"), profile="fast") as sim:
        status, body = sim.admin("POST", "clock", {"scale": 10})
        assert status == 200, body
        with vnode_run("eci", sim.eci_env(), cluster, tmp_path_factory.mktemp("pf-eci")) as name:
            yield sim, name


def test_the_eci_provider_refuses_port_forward_by_name(
    eci_node: tuple[Sim, str], cluster: launcher.Info, core: k8s.CoreV1Api, namespace: str
) -> None:
    _, node = eci_node
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "web", "image": "nginx:alpine"}],
            "tolerations": [{"operator": "Exists"}],
        },
    }
    core.create_namespaced_pod(namespace, pod)
    wait_for(lambda: core.read_namespaced_pod("web", namespace).status.phase == "Running", timeout=60,
             what="the ECI pod Running")  # fmt: skip
    result = cluster.kubectl("-n", namespace, "port-forward", "pod/web", ":80", check=False, timeout=60)
    assert result.returncode != 0, result.stdout
    assert "port forwarding is not supported by provider eci" in result.stderr, result.stderr
