"""``vnode run``: one virtual node, wired from its parts; health and metrics over HTTP.

The daemon owns no logic of its own: it builds the node controller (Node + Lease), the pod
controller (watch, cloud listing, work queue, reconcile), the live profile from the
ConfigMap ``kube-system/eci-profile``, and an HTTP server with ``/healthz``, ``/readyz`` and
``/metrics``. The Kubernetes client, the provider, the metrics registry, the clock and the
randomness are passed in, so tests run several daemons in one process against one fake
cloud, stop one by cancelling its task, and start another.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import pathlib
import random
import tempfile
import time
from collections.abc import Callable

import msgspec
import prometheus_client as prom
from aiohttp import web

from vnode import errors, models, settings
from vnode.kube import api, client, informer, objects
from vnode.kubelet import clock as kubelet_clock
from vnode.kubelet import pods as kubelet_pods
from vnode.kubelet import server as kubelet_server
from vnode.node import events, ownership, pods, queue, reconcile, refresh, registration, resources, spec
from vnode.observability import metrics
from vnode.provider import base

__all__ = ["Daemon"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class PodsOnNode:
    """The kubelet API's view of this node's pods: the pod controller's cache and its last listing."""

    def __init__(self, view: reconcile.View) -> None:
        self.view = view

    def lookup(self, namespace: str, name: str) -> kubelet_pods.PodInstance | None:
        pod = self.view.pods.get(f"{namespace}/{name}")
        return None if pod is None else self._instance(pod)

    def all(self) -> list[kubelet_pods.PodInstance]:
        return [self._instance(pod) for pod in list(self.view.pods.values())]

    def _instance(self, pod: objects.Pod) -> kubelet_pods.PodInstance:
        state = self.view.states.get(pod.metadata.uid)
        names = tuple(c.name for c in (*pod.spec.init_containers, *pod.spec.containers))
        return kubelet_pods.PodInstance(
            namespace=pod.metadata.namespace,
            name=pod.metadata.name,
            uid=pod.metadata.uid,
            instance_id=state.id if state else "",
            containers=names,
            manifest=msgspec.to_builtins(pod),
        )


@dataclasses.dataclass
class Daemon:
    config: settings.Settings
    kube: client.Client
    provider: base.Provider
    registry: prom.CollectorRegistry = dataclasses.field(default_factory=prom.CollectorRegistry)
    clock: Callable[[], datetime.datetime] = _utcnow
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    #: Holder identity on the node's Lease; the same identity reclaims it at once after a restart.
    identity: str = dataclasses.field(default_factory=ownership.identity)
    #: Serve the kubelet API (logs, exec, stats) on ``config.kubelet_port``; ``vnode run`` does.
    serve_kubelet: bool = False
    #: Where the kubelet API's serving certificate (from a CSR) is kept; a temporary directory if None.
    kubelet_cert_dir: pathlib.Path | None = None

    def __post_init__(self) -> None:
        self.ready = asyncio.Event()
        self.health = registration.CloudHealth()
        self.metrics = metrics.Metrics(self.registry, node=self.config.node_name)
        self.profile = settings.Profile()
        self.http_port = 0
        self.kubelet: kubelet_server.KubeletServer | None = None
        self._node_tasks: list[asyncio.Task[None]] = []
        self.recorder = events.Recorder(self.kube, node_name=self.config.node_name, clock=self.clock)
        # The node's Lease is its heartbeat *and* its lock: only its holder creates, deletes and
        # writes the node status, so two controllers claiming one node never both act.
        self.ownership = ownership.Ownership(
            self.kube,
            self.config.node_name,
            identity=self.identity,
            lease_duration=self.config.lease_duration,
            renew_interval=self.config.lease_renew_interval,
            on_change=lambda held: self.health.changed.set(),
        )
        self.node = registration.NodeController(
            self.kube,
            self.provider,
            self.config,
            health=self.health,
            clock=self.clock,
            may_write=self.ownership.holds,
        )
        self.pods = pods.PodController(
            self.kube,
            self.provider,
            self.config,
            reconciler_factory=self._reconciler,
            health=self.health,
            metrics=self.metrics,
            work=queue.WorkQueue(queue.Backoff(rng=self.rng)),
            monotonic=self.monotonic,
        )
        # ConfigMap/Secret updates reach running pods' volumes, if the provider can update them.
        self.refresher = refresh.attach(self.pods, self.recorder, self.rng)

    def _placement(self) -> models.Placement:
        if self.config.provider == "aci":
            return models.Placement(vswitches=(self.config.aci.subnet,) if self.config.aci.subnet else ())
        eci = self.config.eci
        return models.Placement(vswitches=eci.vswitches, security_group=eci.security_group)

    def _reconciler(self, view: reconcile.View) -> reconcile.Reconciler:
        target = spec.Target(
            cluster_id=self.config.cluster_id,
            node_name=self.config.node_name,
            node_ip=self.config.node_ip,
            placement=self._placement(),
            default_size=resources.DEFAULT,
        )
        return reconcile.Reconciler(
            self.kube,
            self.provider,
            view=view,
            target=target,
            recorder=self.recorder,
            metrics=self.metrics,
            clock=self.clock,
            profile=lambda: self.profile,
            monotonic=self.monotonic,
            may_act=self.ownership.holds,
            # Two listings' wait, so that one begins after the create; at most 2 s (pushing providers).
            first_status_after=min(2 * self.config.status_interval, 2.0),
        )

    # --- the live profile ---

    def _on_profile(self, key: str, cm: objects.ConfigMap | None) -> None:
        if cm is None:
            self.profile = settings.Profile()
            log.info("profile %s removed; using the daemon's settings for new pods", key)
            return
        try:
            self.profile = settings.profile_from_configmap(cm.data)
        except errors.ConfigError as exc:
            log.warning("profile %s ignored, keeping the previous one: %s", key, exc)
            return
        log.info("profile %s applied to new pods: %s", key, self.profile.model_dump(exclude_defaults=True))

    def _profile_informer(self) -> informer.Informer[objects.ConfigMap]:
        namespace, _, name = self.config.profile_configmap.partition("/")
        return informer.Informer(
            self.kube,
            api.config_maps(namespace),
            on_change=self._on_profile,
            params={"fieldSelector": f"metadata.name={name}"},
            rng=self.rng,
        )

    # --- the kubelet API ---

    async def _start_kubelet(self, group: asyncio.TaskGroup) -> None:
        """Serve the kubelet API before the Node is written, so the Node announces its real port."""
        cert_dir = self.kubelet_cert_dir or pathlib.Path(tempfile.mkdtemp(prefix="vnode-kubelet-"))
        self.kubelet = await kubelet_server.prepare(
            self.kube,
            node_name=self.config.node_name,
            addresses=[self.config.node_ip],
            provider=self.provider,
            pods=PodsOnNode(self.pods.view),
            cert_dir=cert_dir,
            clock=kubelet_clock.SystemClock(),
            host=self.config.node_ip,
            port=self.config.kubelet_port,
        )
        group.create_task(self.kubelet.run())
        await self.kubelet.ready.wait()
        if self.kubelet.port != self.config.kubelet_port:
            self.config = self.config.model_copy(update={"kubelet_port": self.kubelet.port})
            self.node.config = self.config

    async def stop_node(self) -> None:
        """Stop renewing the Node and its Lease (a drain calls this just before deleting the Node;
        the pod controller keeps running, deleting the instances of evicted pods)."""
        for task in self._node_tasks:
            task.cancel()
        await asyncio.gather(*self._node_tasks, return_exceptions=True)

    # --- HTTP ---

    def _app(self) -> web.Application:
        app = web.Application()

        async def healthz(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(request: web.Request) -> web.Response:
            if self.ready.is_set() and self.health.ok and self.ownership.holds():
                return web.Response(text="ok")
            if not self.ownership.holds():
                reason = f"standing by: the node's Lease is held by {self.ownership.holder}"
            elif not self.ready.is_set():
                reason = "starting"
            else:
                reason = f"{self.health.reason}: {self.health.message}"
            return web.Response(status=503, text=reason)

        async def metrics_page(request: web.Request) -> web.Response:
            body = prom.generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": prom.CONTENT_TYPE_LATEST})

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics_page)
        return app

    async def _serve(self) -> None:
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.http_address, self.config.http_port)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http_port
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    # --- the whole ---

    async def run(self) -> None:
        """Run until cancelled; ``ready`` is set once the node is registered and the pods are in hand."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._serve())
                group.create_task(self._profile_informer().run())
                if self.serve_kubelet:
                    await self._start_kubelet(group)
                self._node_tasks.append(group.create_task(self.node.run()))
                await self.node.ready.wait()
                self.ownership.owner = {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": self.config.node_name,
                    "uid": self.node.uid,
                }
                self._node_tasks.append(group.create_task(self.ownership.run()))
                await self.ownership.held.wait()
                # Holding the Lease, write the status at once: `ready` must not precede a Ready node.
                await self.node.write_status(force=True)
                group.create_task(self.pods.run())
                if self.refresher is not None:
                    group.create_task(self.refresher.run())
                await self.pods.ready.wait()
                self.ready.set()
                log.info("daemon ready")
        finally:
            with contextlib.suppress(TimeoutError, errors.ApiError):
                await asyncio.wait_for(self.ownership.release(), timeout=5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.recorder.drain(), timeout=5)
