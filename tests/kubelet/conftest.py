"""A virtual node's kubelet API, served in-process, registered with the real control plane.

The module-scoped ``kubelet`` fixture prepares the server as the daemon would (a serving
certificate through a real CSR, approved with the test's admin credentials and signed by the
controller-manager; the client CA read from ``kube-system/extension-apiserver-authentication``),
runs ``KubeletServer`` on an event loop of its own in a background thread (tests drive ``kubectl``, which blocks), and
registers a Node whose address is 127.0.0.1 and whose kubelet port is the server's, with
``declaredFeatures: [ExtendWebSocketsToKubelet]`` so that the API server forwards exec
WebSockets to it. The node is tainted so that no other test's pod lands on it, and deleted at
the end whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import secrets
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s

from tests.kubelet import provider as test_provider
from tests.waiting import open_transports, until, wait_for
from vnode.cluster import launcher
from vnode.kube import client as kube_client
from vnode.kube import config as kube_config
from vnode.kubelet import certs, clock, pods, server

T = TypeVar("T")


class BackgroundLoop:
    """An event loop in a daemon thread; ``call`` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kubelet-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def settle() -> None:
            await until(lambda: not open_transports(self.loop), within=10, what="the kubelet's sockets closed")
            await self.loop.shutdown_asyncgens()

        self.call(settle(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Directory:
    """``pods.PodDirectory`` backed by a dict the tests fill."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], pods.PodInstance] = {}

    def lookup(self, namespace: str, name: str) -> pods.PodInstance | None:
        return self.items.get((namespace, name))

    def all(self) -> Sequence[pods.PodInstance]:
        return list(self.items.values())


@dataclasses.dataclass
class Kubelet:
    node: str
    port: int
    loop: BackgroundLoop
    server: server.KubeletServer
    provider: test_provider.LocalProvider
    directory: Directory
    serving: certs.ServingFiles
    ca_file: pathlib.Path
    pki: pathlib.Path
    kubeconfig: pathlib.Path

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.loop.call(coro, timeout)


async def _make_client(kubeconfig: pathlib.Path) -> kube_client.Client:
    return kube_client.Client(kube_config.load_kubeconfig(kubeconfig))


def _node_body(name: str, address: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"type": "virtual-kubelet", "kubernetes.io/hostname": name}},
        "spec": {"taints": [{"key": "virtual-kubelet.io/provider", "value": "test", "effect": "NoSchedule"}]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "declaredFeatures": ["ExtendWebSocketsToKubelet"],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test"}],
            "capacity": {"cpu": "100", "memory": "100Gi", "pods": "100"},
            "allocatable": {"cpu": "100", "memory": "100Gi", "pods": "100"},
        },
    }


@contextlib.contextmanager
def running_kubelet(
    cluster: launcher.Info, kube_api: k8s.ApiClient, directory: pathlib.Path, *, address: str = "127.0.0.1"
) -> Iterator[Kubelet]:
    """A kubelet API serving on ``address`` (its SAN, its bind address, its Node's InternalIP)."""
    core = k8s.CoreV1Api(kube_api)
    name = f"vk-test-{secrets.token_hex(3)}"
    loop = BackgroundLoop()
    api = loop.call(_make_client(cluster.kubeconfig))
    local = test_provider.LocalProvider()
    node_created = False
    run: Any = None
    try:
        pod_directory = Directory()
        kubelet_server = loop.call(
            server.prepare(
                api, node_name=name, addresses=[address], provider=local, pods=pod_directory,
                cert_dir=directory, clock=clock.SystemClock(), host=address, port=0,
            ),
            timeout=120,
        )  # fmt: skip
        serving = certs.ServingFiles(directory / "kubelet-serving.crt", directory / "kubelet-serving.key")
        run = asyncio.run_coroutine_threadsafe(kubelet_server.run(), loop.loop)
        loop.call(asyncio.wait_for(kubelet_server.ready.wait(), 30))
        core.create_node(_node_body(name, address, kubelet_server.port))
        node_created = True
        declared = core.read_node(name).to_dict()["status"].get("declared_features")
        raw = cluster.kubectl("get", "node", name, "-o", "jsonpath={.status.declaredFeatures}").stdout
        if "ExtendWebSocketsToKubelet" not in raw and not declared:
            pytest.fail(f"the API server dropped status.declaredFeatures of node {name}: {raw!r}")
        yield Kubelet(
            name, kubelet_server.port, loop, kubelet_server, local, pod_directory, serving,
            cluster.ca_file, cluster.state_dir / "pki", cluster.kubeconfig,
        )  # fmt: skip
    finally:
        if node_created:
            core.delete_node(name, grace_period_seconds=0)
        if run is not None:
            run.cancel()
            wait_for(lambda: run.done(), timeout=30, what="the kubelet server to stop")
        loop.call(api.close())
        loop.close()


@pytest.fixture(scope="module")
def kubelet(
    cluster: launcher.Info, kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kubelet]:
    with running_kubelet(cluster, kube_api, tmp_path_factory.mktemp("kubelet")) as running:
        yield running


def make_pod(
    core: k8s.CoreV1Api, kubelet: Kubelet, namespace: str, name: str = "app", *, containers: Sequence[str] = ("app",)
) -> pods.PodInstance:
    """A pod bound to the test node (``spec.nodeName``), marked Running, and known to the directory."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeName": kubelet.node,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": c, "image": "nginx"} for c in containers],
        },
    }
    created = core.create_namespaced_pod(namespace, body)
    now = "2026-01-01T00:00:00Z"
    status = {
        "status": {
            "phase": "Running",
            "startTime": now,
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": c,
                    "image": "nginx",
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in containers
            ],
        }
    }
    core.patch_namespaced_pod_status(name, namespace, status)
    manifest = kube_api_json(core, namespace, name)
    uid = created.metadata.uid
    instance = pods.PodInstance(namespace, name, uid, f"i-{uid[:8]}", tuple(containers), manifest)
    kubelet.directory.items[(namespace, name)] = instance
    return instance


def kube_api_json(core: k8s.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    pod = core.read_namespaced_pod(name, namespace)
    result: dict[str, Any] = core.api_client.sanitize_for_serialization(pod)
    return result


@pytest.fixture
def pod(kubelet: Kubelet, core: k8s.CoreV1Api, namespace: str) -> Iterator[pods.PodInstance]:
    instance = make_pod(core, kubelet, namespace)
    try:
        yield instance
    finally:
        kubelet.directory.items.pop((namespace, instance.name), None)
