"""Fixtures for the webhook against the real control plane: a served webhook, KWOK, fake nodes.

Isolation from the rest of the suite (which shares the control plane):

* each served webhook registers a configuration with a unique name whose namespaceSelector
  also requires ``vnode-webhook-test=<token>``, a label only this test's namespaces carry, so
  a configuration left behind could never touch another test's pods; it is deleted in
  teardown whatever the outcome;
* nodes made here carry a pool label ``vnode-webhook-pool=<token>`` and the test pods require
  it, so they never land on other tests' nodes; the regular ones are also tainted, so other
  tests' pods never land on them; all are deleted in teardown.

KWOK runs once per session (only if a test asks for it), as a child that dies with pytest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests import daemons
from tests.waiting import open_transports, until, wait_for
from vnode.cluster import kwok, launcher, procs
from vnode.kube import client, config
from vnode.webhook import registration, service

TEST_LABEL = "vnode-webhook-test"
POOL_LABEL = "vnode-webhook-pool"
POOL_TAINT = "vnode-webhook-pool"
VIRTUAL_TAINT = {"key": "virtual-kubelet.io/provider", "value": "alibabacloud", "effect": "NoSchedule"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedWebhook:
    """A ``service.Webhook`` on its own event loop in a thread, so that sync tests can drive the cluster."""

    def __init__(self, settings: service.Settings, kubeconfig: pathlib.Path) -> None:
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="webhook", daemon=True)
        self.webhook: service.Webhook | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: client.Client | None = None

    def _call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, timeout: float = 60) -> ServedWebhook:
        if not self.thread.is_alive():
            self.thread.start()

        async def begin() -> None:
            cfg = config.load_kubeconfig(self.kubeconfig)
            self._client = client.Client(cfg, field_manager=registration.FIELD_MANAGER)
            self.webhook = service.Webhook(self.settings, kube=self._client)
            self._task = asyncio.create_task(self.webhook.run())
            ready = asyncio.create_task(self.webhook.ready.wait())
            done, _ = await asyncio.wait({self._task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                error = self._task.exception() if self._task.done() else "timeout"
                raise RuntimeError(f"the webhook did not get ready: {error}")

        self._call(begin(), timeout + 5)
        return self

    def stop(self) -> None:
        """Stop serving (the configuration stays registered: that is an outage)."""

        async def end() -> None:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            if self._client is not None:
                await self._client.close()
                await until(lambda: not open_transports(self.loop), within=10, what="the webhook's sockets closed")
            self._task = self._client = None

        if self.thread.is_alive():
            self._call(end())

    def close(self) -> None:
        self.stop()
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.loop.close()

    def metrics_text(self) -> str:
        assert self.webhook is not None
        return self.webhook.metrics.exposition().decode()


@dataclasses.dataclass
class WebhookFactory:
    """Serve webhooks registered under a unique name, confined to namespaces labelled with ``token``."""

    cluster: launcher.Info
    kube_api: k8s.ApiClient
    tmp: pathlib.Path
    token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(4))
    served: list[ServedWebhook] = dataclasses.field(default_factory=list)
    names: set[str] = dataclasses.field(default_factory=set)

    def settings(self, *, port: int | None = None, name: str | None = None, **overrides: Any) -> service.Settings:
        port = port or free_port()
        name = name or f"vnode-test-{self.token}"
        tls = overrides.pop("tls", None) or service.SelfManagedTLS(self.tmp / f"certs-{port}", ("127.0.0.1",))
        reg = registration.Registration(
            name=name,
            url=f"https://127.0.0.1:{port}/mutate",
            failure_policy=overrides.pop("failure_policy", "Ignore"),
            namespace_match={TEST_LABEL: self.token},
        )
        return service.Settings(
            tls=tls, port=port, registration=reg, cert_check_interval=0.5, deletion_cost=-100, **overrides
        )

    def serve(self, settings: service.Settings | None = None) -> ServedWebhook:
        settings = settings or self.settings()
        if settings.registration is not None:
            self.names.add(settings.registration.name)
        served = ServedWebhook(settings, self.cluster.kubeconfig)
        self.served.append(served)
        return served.start()

    def label(self, namespace: str, **labels: str) -> None:
        """Label a namespace as one of this test's (plus ``labels``, e.g. the injection mode)."""
        body = {"metadata": {"labels": {TEST_LABEL: self.token, **labels}}}
        k8s.CoreV1Api(self.kube_api).patch_namespace(namespace, body)

    def cleanup(self) -> None:
        """Delete the configurations first (cluster-scoped: they must never outlive the test), then stop serving."""
        admission = k8s.AdmissionregistrationV1Api(self.kube_api)
        try:
            for name in self.names:
                try:
                    admission.delete_mutating_webhook_configuration(name)
                except k8s.ApiException as exc:
                    if exc.status != 404:
                        raise
        finally:
            for served in self.served:
                served.close()


@pytest.fixture
def webhooks(cluster: launcher.Info, kube_api: k8s.ApiClient, tmp_path: pathlib.Path) -> Iterator[WebhookFactory]:
    factory = WebhookFactory(cluster, kube_api, tmp_path)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="session")
def kwok_controller(cluster: launcher.Info, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """KWOK for the session, managing nodes annotated kwok.x-k8s.io/node=fake; dies with pytest."""
    binary = kwok.ensure_binary()
    log_path = tmp_path_factory.mktemp("kwok") / "kwok.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            kwok.command(binary, cluster.kubeconfig),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=procs.die_with_parent,
        )
    try:
        yield
    finally:
        daemons.stop(proc, timeout=10)


NOT_READY_TAINTS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


def node_ready(core: k8s.CoreV1Api, name: str) -> bool:
    """Ready, and schedulable as such: the node lifecycle controller lifts its not-ready taint a
    little after the condition turns True, and until then the scheduler passes the node over."""
    node = core.read_node(name)
    conditions = node.status.conditions or []
    tainted = any(t.key in NOT_READY_TAINTS for t in node.spec.taints or [])
    return not tainted and any(c.type == "Ready" and c.status == "True" for c in conditions)


@dataclasses.dataclass
class NodePool:
    """Nodes of one test: KWOK keeps them Ready and runs the pods bound to them."""

    core: k8s.CoreV1Api
    token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(3))
    regular: list[str] = dataclasses.field(default_factory=list)
    virtual: list[str] = dataclasses.field(default_factory=list)

    @property
    def pool_taint(self) -> dict[str, str]:
        return {"key": POOL_TAINT, "value": self.token, "effect": "NoSchedule"}

    def add_regular(self, count: int, *, cpu: str = "4", memory: str = "8Gi") -> list[str]:
        names = [f"wh-{self.token}-regular-{i}" for i in range(count)]
        objs = [kwok.node(n, cpu=cpu, memory=memory, labels={POOL_LABEL: self.token}, taints=[self.pool_taint])
                for n in names]  # fmt: skip
        self.regular += kwok.register(self.core.api_client, objs)
        return names

    def add_virtual(self, count: int) -> list[str]:
        """Fake virtual nodes: the labels and taint of vnode's real ones, kept Ready by KWOK."""
        names = [f"wh-{self.token}-virtual-{i}" for i in range(count)]
        labels = {"type": "virtual-kubelet", "kubernetes.io/role": "agent", POOL_LABEL: self.token}
        objs = [kwok.node(n, cpu="1000", memory="4Ti", pods="5000", labels=labels, taints=[VIRTUAL_TAINT])
                for n in names]  # fmt: skip
        self.virtual += kwok.register(self.core.api_client, objs)
        return names

    def wait_ready(self) -> None:
        for name in self.regular + self.virtual:
            wait_for(lambda name=name: node_ready(self.core, name), timeout=60, what=f"node {name} Ready")

    def pod_constraints(self) -> dict[str, Any]:
        """What a test pod needs to stay in this pool (and tolerate its regular nodes' taint)."""
        term = {"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": [self.token]}]}
        return {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [term]}}},
            "tolerations": [{"key": POOL_TAINT, "operator": "Equal", "value": self.token, "effect": "NoSchedule"}],
        }  # fmt: skip

    def delete(self) -> None:
        for name in self.regular + self.virtual:
            try:
                self.core.delete_node(name)
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture
def nodes(core: k8s.CoreV1Api, kwok_controller: None, namespace: str) -> Iterator[NodePool]:
    """A node pool for one test. Its pods go first (deployments, then a forced delete), then the nodes."""
    pool = NodePool(core)
    try:
        yield pool
    finally:
        k8s.AppsV1Api(core.api_client).delete_collection_namespaced_deployment(namespace)
        core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
        pool.delete()


def deployment(name: str, replicas: int, *, cpu: str = "100m", labels: dict[str, str] | None = None,
               extra_spec: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **(labels or {})}},
                "spec": {
                    "containers": [{"name": "nginx", "image": "nginx:alpine",
                                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}],
                    **(extra_spec or {}),
                },
            },
        },
    }  # fmt: skip


def pods_of(core: k8s.CoreV1Api, namespace: str, app: str) -> list[k8s.V1Pod]:
    items = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in items if p.metadata.deletion_timestamp is None]
