"""``kubectl exec`` and attach on a virtual node: the API server forwards the WebSocket to the kubelet API."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.kubelet import provider as test_provider
from tests.kubelet.conftest import Kubelet
from vnode.cluster import launcher
from vnode.kubelet import pods
from vnode.provider import streams

pytestmark = pytest.mark.cluster


def test_exec_passes_argv_intact(kubelet: Kubelet, pod: pods.PodInstance, cluster: launcher.Info) -> None:
    result = cluster.kubectl("exec", "-n", pod.namespace, pod.name, "--", "sh", "-c", 'echo "a b"')
    assert result.stdout == "a b\n"
    assert kubelet.provider.argv[-1] == ["sh", "-c", 'echo "a b"']


def test_exec_returns_the_exit_code_and_stderr(kubelet: Kubelet, pod: pods.PodInstance, cluster: launcher.Info) -> None:
    result = cluster.kubectl("exec", "-n", pod.namespace, pod.name, "--", "sh", "-c", "echo oops >&2; exit 3",
                             check=False)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "oops" in result.stderr


def test_interactive_exec_reads_stdin_to_eof(kubelet: Kubelet, pod: pods.PodInstance, cluster: launcher.Info) -> None:
    result = cluster.kubectl("exec", "-i", "-n", pod.namespace, pod.name, "--", "sh", "-c", "tr a-z A-Z; echo done",
                             input="hello\nworld\n")  # fmt: skip
    assert result.stdout == "HELLO\nWORLD\ndone\n"


SPDY = {**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}  # client-go's SPDY executor


def test_exec_over_spdy_passes_argv_stdin_stderr_and_the_exit_code(
    kubelet: Kubelet, pod: pods.PodInstance, cluster: launcher.Info
) -> None:
    """kubectl's SPDY executor (kubectl before 1.30, and many client-go tools): the API server upgrades
    the kubelet's request to SPDY/3.1, and each channel is a stream of its own."""
    script = 'tr a-z A-Z; echo "to stderr" >&2; exit 5'
    result = cluster.kubectl("exec", "-i", "-n", pod.namespace, pod.name, "--", "sh", "-c", script,
                             input="hello spdy\n", check=False, env=SPDY)  # fmt: skip
    assert (result.returncode, result.stdout) == (5, "HELLO SPDY\n"), result.stderr
    assert "to stderr" in result.stderr
    assert kubelet.provider.argv[-1] == ["sh", "-c", script]
    done = cluster.kubectl("exec", "-n", pod.namespace, pod.name, "--", "sh", "-c", 'echo "a b"', env=SPDY)
    assert done.stdout == "a b\n"


@pytest.fixture
def exec_only(kubelet: Kubelet) -> Iterator[test_provider.ExecOnlyProvider]:
    """The node's provider swapped for one with request/response exec only."""
    local, other = kubelet.server.provider, test_provider.ExecOnlyProvider()
    kubelet.server.provider = other
    try:
        yield other
    finally:
        kubelet.server.provider = local


def test_request_response_exec_gets_the_whole_stdin(
    exec_only: test_provider.ExecOnlyProvider, pod: pods.PodInstance, cluster: launcher.Info
) -> None:
    result = cluster.kubectl("exec", "-i", "-n", pod.namespace, pod.name, "--", "sh", "-c", "tr a-z A-Z; exit 4",
                             input="piped\n", check=False)  # fmt: skip
    assert (result.returncode, result.stdout) == (4, "PIPED\n")
    assert exec_only.calls[-1] == (["sh", "-c", "tr a-z A-Z; exit 4"], b"piped\n")


def test_abilities_the_provider_lacks_are_refused_by_name(
    exec_only: test_provider.ExecOnlyProvider, pod: pods.PodInstance, cluster: launcher.Info
) -> None:
    logs = cluster.kubectl("logs", "-n", pod.namespace, pod.name, check=False)
    assert logs.returncode != 0
    assert "not supported by provider exec-only" in logs.stderr
    attach = cluster.kubectl("attach", "-n", pod.namespace, pod.name, check=False)
    assert attach.returncode != 0
    assert "not supported by provider exec-only" in attach.stderr


def _client_ssl(kubelet: Kubelet) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(kubelet.ca_file))
    pki = kubelet.pki
    context.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
    return context


async def _session(kubelet: Kubelet, url: str, frames: list[bytes]) -> tuple[bytes, bytes, dict[str, Any] | None]:
    """Open a v5 WebSocket as the API server does and send ``frames``; return the hello, stdout and Status."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=("v5.channel.k8s.io",), ssl=_client_ssl(kubelet)) as ws,
    ):
        assert ws.protocol == "v5.channel.k8s.io"
        hello = await ws.receive_bytes(timeout=10)
        for frame in frames:
            await ws.send_bytes(frame)
        out, status = b"", None
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            if message.data[0] == 1:
                out += message.data[1:]
            elif message.data[0] == 3:
                status = json.loads(message.data[1:])
    return hello, out, status


# The WebSocket clients below run on the server's loop (kubelet.call), so that their TLS
# connections finish closing before that loop stops.


def test_tty_exec_receives_resizes_and_v5_stdin_close(kubelet: Kubelet, pod: pods.PodInstance) -> None:
    """The wire protocol itself, as the API server forwards it: v5 frames, resize channel, Status JSON."""
    url = (f"https://127.0.0.1:{kubelet.port}/exec/{pod.namespace}/{pod.name}/app"
           "?command=sh&command=-c&command=cat%3B+exit+7&input=1&output=1&tty=1")  # fmt: skip
    resize = b"\x04" + json.dumps({"Width": 120, "Height": 40}).encode()
    hello, out, status = kubelet.call(_session(kubelet, url, [resize, b"\x00typed\n", b"\xff\x00"]))
    assert hello == b"\x01"  # the empty hello on stdout
    assert out == b"typed\n"
    assert status is not None
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]
    assert streams.TerminalSize(120, 40) in kubelet.provider.resizes


def test_attach_streams_to_the_provider(kubelet: Kubelet, pod: pods.PodInstance) -> None:
    url = f"https://127.0.0.1:{kubelet.port}/attach/{pod.namespace}/{pod.name}/app?input=1&output=1&error=1"
    _, out, status = kubelet.call(_session(kubelet, url, [b"\x00hi\n", b"\xff\x00"]))
    assert out == b"attached to app\nHI\n"
    assert status == {"metadata": {}, "status": "Success"}
