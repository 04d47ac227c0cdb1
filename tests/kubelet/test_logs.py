"""``kubectl logs`` of a pod on a virtual node, through the real API server to the kubelet API."""

from __future__ import annotations

import datetime
import http.client
import ssl
import subprocess
import threading

import pytest

from tests.kubelet.conftest import Kubelet
from tests.waiting import wait_for
from vnode.cluster import launcher
from vnode.kubelet import pods

OLD = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)

pytestmark = pytest.mark.cluster


def _fill(kubelet: Kubelet, pod: pods.PodInstance) -> None:
    async def fill() -> None:
        provider = kubelet.provider
        await provider.append(pod.instance_id, "app", "previous run", at=OLD)
        await provider.restart(pod.instance_id, "app")
        for i in range(1, 4):
            await provider.append(pod.instance_id, "app", f'10.0.0.{i} - - "GET /old HTTP/1.1" 200', at=OLD)
        for i in range(4, 6):
            await provider.append(pod.instance_id, "app", f'10.0.0.{i} - - "GET /new HTTP/1.1" 200')

    kubelet.call(fill())


def test_kubectl_logs_shows_lines_and_honours_tail_since_timestamps_previous_limit(
    kubelet: Kubelet, pod: pods.PodInstance, cluster: launcher.Info
) -> None:
    _fill(kubelet, pod)
    ns = ["-n", pod.namespace, pod.name]
    lines = cluster.kubectl("logs", *ns).stdout.splitlines()
    assert [line.split()[0] for line in lines] == [f"10.0.0.{i}" for i in range(1, 6)]
    assert cluster.kubectl("logs", *ns, "--tail=2").stdout.splitlines() == lines[-2:]
    assert cluster.kubectl("logs", *ns, "--since=10m").stdout.splitlines() == lines[-2:]
    stamped = cluster.kubectl("logs", *ns, "--timestamps", "--tail=1").stdout.splitlines()
    moment, _, rest = stamped[0].partition(" ")
    assert rest == lines[-1]
    assert abs(datetime.datetime.fromisoformat(moment[:26] + "+00:00") - datetime.datetime.now(datetime.UTC)) < (
        datetime.timedelta(minutes=5)
    )
    assert cluster.kubectl("logs", *ns, "--previous").stdout == "previous run\n"
    assert cluster.kubectl("logs", *ns, "--limit-bytes=8").stdout == lines[0][:8]


def test_kubectl_logs_follow_streams_new_lines(kubelet: Kubelet, pod: pods.PodInstance, cluster: launcher.Info) -> None:
    _fill(kubelet, pod)
    cmd = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", "logs", "-f", "--tail=1",
           "-n", pod.namespace, pod.name]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        assert process.stdout is not None
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            wait_for(lambda: len(seen) >= 1, timeout=30, what="the first followed line")
            kubelet.call(kubelet.provider.append(pod.instance_id, "app", "a line written later"))
            wait_for(lambda: "a line written later\n" in seen, timeout=30, what="a new line while following")
            assert seen[0].startswith("10.0.0.5")
        finally:
            process.kill()
            process.wait(10)
            reader.join(10)
    # The client left: the kubelet API must stop following, not wait for the next line forever.
    wait_for(lambda: kubelet.provider.following == 0, timeout=30, what="the log stream to close after kubectl left")


def test_follow_on_an_empty_log_waits_for_the_first_line(
    kubelet: Kubelet, pod: pods.PodInstance, cluster: launcher.Info
) -> None:
    kubelet.call(kubelet.provider.restart(pod.instance_id, "app"))  # a run with no lines yet
    cmd = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", "logs", "-f",
           "-n", pod.namespace, pod.name]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        assert process.stdout is not None
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            wait_for(lambda: kubelet.provider.following == 1, timeout=30, what="the follow to start")
            kubelet.call(kubelet.provider.append(pod.instance_id, "app", "first words"))
            wait_for(lambda: seen == ["first words\n"], timeout=30, what="the first line of a quiet log")
        finally:
            process.kill()
            process.wait(10)
            reader.join(10)
    wait_for(lambda: kubelet.provider.following == 0, timeout=30, what="the log stream to close after kubectl left")


def test_follow_on_an_empty_log_answers_headers_at_once(kubelet: Kubelet, pod: pods.PodInstance) -> None:
    """The API server waits for the kubelet's response headers; a quiet log must not hold them back."""
    kubelet.call(kubelet.provider.restart(pod.instance_id, "app"))
    context = ssl.create_default_context(cafile=str(kubelet.ca_file))
    context.load_cert_chain(kubelet.pki / "apiserver-kubelet-client.crt", kubelet.pki / "apiserver-kubelet-client.key")
    connection = http.client.HTTPSConnection("127.0.0.1", kubelet.port, context=context, timeout=15)
    try:
        connection.request("GET", f"/containerLogs/{pod.namespace}/{pod.name}/app?follow=true")
        response = connection.getresponse()  # raises TimeoutError if the headers never come
        assert response.status == 200
    finally:
        connection.close()
    wait_for(lambda: kubelet.provider.following == 0, timeout=30, what="the log stream to close after the client left")


def test_logs_of_an_unknown_container_instance_are_refused_clearly(
    kubelet: Kubelet, pod: pods.PodInstance, cluster: launcher.Info
) -> None:
    result = cluster.kubectl("logs", "-n", pod.namespace, pod.name, check=False)
    assert result.returncode != 0
    assert "unknown" in result.stderr
