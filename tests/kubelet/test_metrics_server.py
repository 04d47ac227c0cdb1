"""metrics-server, built from the Go module proxy, reads a virtual node's kubelet API: ``kubectl top`` and an HPA.

The obstacle on a loopback-only machine: the API server reaches an aggregated API (here
``v1beta1.metrics.k8s.io``) through its Service's endpoints, and Endpoints refuse loopback
addresses. So metrics-server runs in a network namespace this test makes (a veth pair on a
private /30: the host side and the namespace side), listening on the namespace's address,
which the API server in the host namespace can dial. From the namespace, metrics-server
reaches the API server through a small TCP forwarder on the host side of the veth (the API
server listens on 127.0.0.1 only), by the name ``kubernetes`` (in the API server's certificate;
the namespace's own /etc/hosts maps it), and the kubelet API directly: this module's virtual node
serves on, and advertises, the host side's address. Everything is torn down afterwards.

The test runs twice: against the tests' provider (fixed figures, a stand-in marks pods Running),
and end to end against ``vnode run --provider eci`` on the simulated cloud, whose figures come
from ECI's ``DescribeMultiContainerGroupMetric`` and depend on what the container does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client as k8s

from tests import daemons
from tests.cloudsim.conftest import running
from tests.daemons import vnode_run
from tests.kubelet.conftest import Kubelet, kube_api_json, running_kubelet
from tests.waiting import wait_for
from vnode.cluster import build, kubectl_build, launcher, procs
from vnode.kubelet import pods

METRICS_SERVER = next(tool for tool in build.TOOLS if tool[0] == "metrics-server")

pytestmark = pytest.mark.cluster


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclasses.dataclass(frozen=True)
class Netns:
    name: str
    host_ip: str
    ns_ip: str


@pytest.fixture(scope="module")
def netns() -> Iterator[Netns]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    suffix = secrets.token_hex(2)
    octet = 16 + secrets.randbelow(200)
    name, host_if, ns_if = f"vk-ms-{suffix}", f"vkm{suffix}a", f"vkm{suffix}b"
    made = Netns(name, f"10.213.{octet}.1", f"10.213.{octet}.2")
    etc = pathlib.Path("/etc/netns") / name
    try:
        # `ip netns exec` mounts /etc/netns/<name>/hosts over /etc/hosts: inside, "kubernetes" (a
        # name in the API server's certificate) is the host side of the veth.
        etc.mkdir(parents=True)
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{made.host_ip} kubernetes\n")
        _ip("netns", "add", name)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{made.host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{made.ns_ip}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield made
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_if)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", name)
        shutil.rmtree(etc, ignore_errors=True)


class Forwarder:
    """A TCP forwarder: connections to ``listen`` (a free port) go to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, listen: str) -> Forwarder:
        self.server = await asyncio.start_server(self._handle, listen, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.close()
        for writer in list(self.writers):
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self.writers.discard(writer)
            return
        self.writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers.difference_update((writer, up_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
def virtual_node(
    cluster: launcher.Info, kube_api: k8s.ApiClient, netns: Netns, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kubelet]:
    with running_kubelet(cluster, kube_api, tmp_path_factory.mktemp("kubelet-ms"), address=netns.host_ip) as running:
        yield running


@pytest.fixture(scope="module")
def eci_node(cluster: launcher.Info, netns: Netns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``vnode run --provider eci`` on the simulated cloud (its clock at real speed: metrics-server
    divides the cloud's CPU counters by its own wall-clock time), its kubelet API on the host side
    of the veth, where metrics-server reaches it."""
    with running(tmp_path_factory.mktemp("ms-cloud"), profile="fast") as sim:
        status, body = sim.admin("POST", "clock", {"scale": 1.0})
        assert status == 200, body
        env = {**sim.eci_env(), "VNODE_NODE_IP": netns.host_ip}
        with vnode_run("eci", env, cluster, tmp_path_factory.mktemp("ms-eci")) as name:
            yield name


def _kubeconfig(cluster: launcher.Info, server: str, path: pathlib.Path) -> None:
    """The admin kubeconfig, pointed at ``server``. (Not ``tls-server-name``: metrics-server would
    expect that name from the kubelets too.)"""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def metrics_server(
    cluster: launcher.Info, kube_api: k8s.ApiClient, netns: Netns, virtual_node: Kubelet,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:  # fmt: skip
    binary = build.ensure_go_tool(*METRICS_SERVER)
    work = tmp_path_factory.mktemp("metrics-server")
    apiserver_port = int(cluster.server.rsplit(":", 1)[1])
    forwarder = virtual_node.call(Forwarder("127.0.0.1", apiserver_port).start(netns.host_ip))
    forward_port = forwarder.port
    kubeconfig = work / "kubeconfig"
    _kubeconfig(cluster, f"https://kubernetes:{forward_port}", kubeconfig)
    command = [
        "ip", "netns", "exec", netns.name, str(binary),
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={netns.ns_ip}", "--secure-port=4443", f"--cert-dir={work}",
        "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
        f"--kubelet-certificate-authority={cluster.ca_file}", "--metric-resolution=10s", "--kubelet-request-timeout=5s",
    ]  # fmt: skip
    core = k8s.CoreV1Api(kube_api)
    registration = k8s.ApiregistrationV1Api(kube_api)
    name = f"vk-metrics-{secrets.token_hex(3)}"
    log = (work / "metrics-server.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=procs.die_with_parent)
    try:
        core.create_namespaced_service("kube-system", {
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 4443}]},
        })  # fmt: skip
        core.create_namespaced_endpoints("kube-system", {
            "metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": netns.ns_ip}], "ports": [{"name": "https", "port": 4443}]}],
        })  # fmt: skip
        registration.create_api_service({
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100, "versionPriority": 100,
                "service": {"name": name, "namespace": "kube-system", "port": 443},
            },
        })  # fmt: skip

        def available() -> bool:
            if process.poll() is not None:
                pytest.fail(f"metrics-server exited: {(work / 'metrics-server.log').read_text()[-2000:]}")
            status = registration.read_api_service("v1beta1.metrics.k8s.io").status
            return any(c.type == "Available" and c.status == "True" for c in (status.conditions or []))

        wait_for(available, timeout=90, what="the metrics.k8s.io APIService to be Available", interval=0.5)
        yield
    finally:
        with contextlib.suppress(k8s.ApiException):
            registration.delete_api_service("v1beta1.metrics.k8s.io")
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespaced_service(name, "kube-system")
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespaced_endpoints(name, "kube-system")
        daemons.stop(process, timeout=10)
        log.close()
        virtual_node.call(forwarder.close())


class MiniNode:
    """Stands in for the node controller: pods bound to the node are marked Running and Ready
    (long ago, so the HPA counts their CPU at once) and put in the kubelet's pod directory."""

    def __init__(self, core: k8s.CoreV1Api, kubelet: Kubelet) -> None:
        self.core, self.kubelet = core, kubelet
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        since = "2026-01-01T00:00:00Z"
        while not self.stop.wait(0.5):
            with contextlib.suppress(k8s.ApiException):
                listed = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.kubelet.node}")
                for item in listed.items:
                    key = (item.metadata.namespace, item.metadata.name)
                    if key in self.kubelet.directory.items or item.metadata.deletion_timestamp:
                        continue
                    names = [c.name for c in item.spec.containers]
                    status = {"status": {
                        "phase": "Running", "startTime": since, "podIP": "10.244.0.10",
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}],
                        "containerStatuses": [
                            {"name": c, "image": "nginx", "imageID": "", "ready": True, "restartCount": 0,
                             "state": {"running": {"startedAt": since}}} for c in names
                        ],
                    }}  # fmt: skip
                    self.core.patch_namespaced_pod_status(item.metadata.name, item.metadata.namespace, status)
                    manifest = kube_api_json(self.core, *key)
                    uid = item.metadata.uid
                    self.kubelet.directory.items[key] = pods.PodInstance(
                        key[0], key[1], uid, f"i-{uid[:8]}", tuple(names), manifest
                    )

    def __enter__(self) -> MiniNode:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def _deployment(name: str, node: str, container: dict[str, object]) -> dict[str, object]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [container],
                },
            },
        },
    }


# The tests' provider reports a fixed 250m/64Mi for nginx; on the simulated ECI a busy loop uses
# about its CPU limit (250m), while its request is 100m: both are far above the HPA's 50%.
NGINX = {"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "100m"}}}
SPIN = {
    "name": "app", "image": "busybox", "command": ["sh", "-c", "while true; do :; done"],
    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "250m", "memory": "512Mi"}},
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tests-provider", "eci-on-cloudsim"])
def test_kubectl_top_and_an_hpa_see_virtual_node_pods(
    kind: str, request: pytest.FixtureRequest, metrics_server: None, virtual_node: Kubelet, kube_api: k8s.ApiClient,
    core: k8s.CoreV1Api, namespace: str, cluster: launcher.Info,
) -> None:  # fmt: skip
    apps = k8s.AppsV1Api(kube_api)
    if kind == "tests-provider":
        node, container, driver = virtual_node.node, NGINX, MiniNode(core, virtual_node)
    else:
        node, container, driver = request.getfixturevalue("eci_node"), SPIN, contextlib.nullcontext()
    with driver:
        apps.create_namespaced_deployment(namespace, _deployment("web", node, container))

        def top() -> str | None:
            result = cluster.kubectl("top", "pod", "-n", namespace, "--no-headers", check=False)
            return result.stdout if result.returncode == 0 and "web-" in result.stdout else None

        line = wait_for(top, timeout=180, what="kubectl top pod to show the virtual node's pod", interval=2)
        for version in kubectl_build.MATRIX_VERSIONS:  # the kubectl matrix's releases read the same metrics API
            other = [str(kubectl_build.ensure_kubectl(version)), "--kubeconfig", str(cluster.kubeconfig)]
            shown = subprocess.run([*other, "top", "pod", "-n", namespace, "--no-headers"], capture_output=True,
                                   text=True, timeout=60, check=False)  # fmt: skip
            assert shown.returncode == 0, f"kubectl {version} top pod: {shown.stderr}"
            assert "web-" in shown.stdout
        _, cpu, memory = line.split()[:3]
        if kind == "tests-provider":
            assert memory == "64Mi"
            assert 230 <= int(cpu.removesuffix("m")) <= 270  # a quarter core, give or take scrape timing
        else:
            assert memory.endswith("Mi")
            assert int(memory.removesuffix("Mi")) >= 1
            assert 200 <= int(cpu.removesuffix("m")) <= 260  # a busy loop at its 250m limit

        k8s.AutoscalingV2Api(kube_api).create_namespaced_horizontal_pod_autoscaler(namespace, {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            },
        })  # fmt: skip
        wait_for(
            lambda: apps.read_namespaced_deployment("web", namespace).spec.replicas == 3,
            timeout=150, what="the HPA to scale the Deployment to 3 replicas", interval=1,
        )  # fmt: skip
