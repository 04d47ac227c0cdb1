"""``kubectl port-forward`` to pods on virtual nodes, end to end: ``vnode run`` as a child process.

A process-provider node (its pods are host processes) runs ``python3 -m http.server`` on a free
host port; the built kubectl forwards a local port to it through the real API server and vnode's
kubelet API. kubectl's default transport is the WebSocket tunnel (``SPDY/3.1+portforward.k8s.io``,
forwarded unchanged to a node declaring ``ExtendWebSocketsToKubelet``);
``KUBECTL_PORT_FORWARD_WEBSOCKETS=false`` makes it use plain SPDY/3.1, which the API server
proxies as an ``Upgrade: SPDY/3.1``. The older WebSocket channel protocol (``v4.channel.k8s.io``,
ports in the query), which kubectl does not use, is driven directly against the API server. An
ECI node on the simulated cloud refuses by name.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pathlib
import random
import re
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.daemons import vnode_run
from tests.waiting import until, wait_for
from vnode.cluster import launcher
from vnode.provider.process import provider as process

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


def _open_connections(port: int) -> list[str]:
    """TCP connections to or from 127.0.0.1:``port`` that are not finished (TIME_WAIT is)."""
    found = []
    for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if port in (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) and state not in ("06", "0A"):
            found.append(line)  # 06 TIME_WAIT, 0A LISTEN
    return found


def test_clients_leaving_mid_transfer_close_the_connection_to_the_pod(
    web: tuple[str, str, int], cluster: launcher.Info
) -> None:
    namespace, pod, port = web
    with port_forward(cluster, namespace, pod, port) as forward:
        with socket.create_connection(("127.0.0.1", forward.local), timeout=30) as sock:
            sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
            assert sock.recv(65536)  # the transfer is under way; then the client goes
        wait_for(lambda: not _open_connections(port), timeout=30, what="the connection to the pod closed")
        assert http_get(forward.local, "/index.html") == (200, PAGE.encode())  # the forward goes on
        with socket.create_connection(("127.0.0.1", forward.local), timeout=30) as sock:
            sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
            assert sock.recv(65536)
            forward.proc.kill()  # kubectl itself goes, mid-transfer
            forward.proc.wait(10)
            wait_for(lambda: not _open_connections(port), timeout=30, what="the connection to the pod closed")


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


async def channel_forward(
    cluster: launcher.Info, namespace: str, pod: str, port: int, request: bytes, *, protocol: str
) -> dict[int, bytes]:
    """``pods/portforward`` over the v4 channel protocol, through the API server as the admin user:
    send ``request`` on port 0's data channel; return what each channel received until the close."""
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    pki = cluster.state_dir / "pki"
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    url = f"{cluster.server}/api/v1/namespaces/{namespace}/pods/{pod}/portforward?ports={port}"
    received: dict[int, bytes] = {0: b"", 1: b""}
    text = protocol.startswith("v4.base64")
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=(protocol,), ssl=context, max_msg_size=0) as ws,
    ):
        assert ws.protocol == protocol
        sock = ws.get_extra_info("socket")  # taken now: once the server closed, the response forgets it
        assert sock is not None
        if text:
            await ws.send_str("0" + base64.b64encode(request).decode())
        else:
            await ws.send_bytes(b"\x00" + request)
        async for message in ws:
            if text:
                channel, data = int(message.data[0]), base64.b64decode(message.data[1:])
            else:
                channel, data = message.data[0], message.data[1:]
            received[channel] += data
    # The TLS connection's shutdown goes on after the session closed: wait for it here, on this
    # test's loop, or its socket outlives the loop and is reported in whichever test runs next.
    await until(lambda: sock.fileno() == -1, within=30, what="the WebSocket's TLS connection closed", interval=0.01)
    return received


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
async def test_the_websocket_channel_protocol_forwards_too(
    web: tuple[str, str, int], cluster: launcher.Info, protocol: str
) -> None:
    namespace, pod, port = web
    hello = port.to_bytes(2, "little")  # each channel first names its port
    got = await channel_forward(cluster, namespace, pod, port, b"GET /index.html HTTP/1.0\r\n\r\n", protocol=protocol)
    assert got[1] == hello
    assert got[0].startswith(hello + b"HTTP/1.0 200")
    assert got[0].endswith(b"\r\n\r\n" + PAGE.encode())
    closed = _free_port()
    refused = await channel_forward(cluster, namespace, pod, closed, b"GET / HTTP/1.0\r\n\r\n", protocol=protocol)
    assert refused[0] == closed.to_bytes(2, "little")
    assert f"nothing listens on port {closed}".encode() in refused[1]


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
