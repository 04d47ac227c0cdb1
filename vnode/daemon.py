"""``vnode run``: one virtual node, wired from its parts, and its whole lifecycle as one sequence of phases.

The daemon builds the node controller (Node + Lease), the pod controller (watch, cloud
listing, work queue, reconcile), the live profile from the ConfigMap
(``--profile-configmap``), and an HTTP server with ``/healthz``, ``/readyz`` and
``/metrics``; and it alone moves the node through its life, one :class:`Phase` after the
other (the table :data:`NEXT` says which moves exist; each is logged, and ``/readyz`` names
the phase until the node serves):

``starting``
    HTTP and the kubelet API served, the Node registered, the first attempt at its Lease.
``standing-by``
    another controller holds the node's Lease (a replica on a partitioned machine, an
    operator's ``vnode run``): nothing is created or deleted until it lets go or it expires.
    A serving daemon that loses its Lease comes back here, and goes back when it wins it again.
``adopting``
    holding the Lease: the pod cache syncs, the cloud is listed after that, the instances of
    existing pods are adopted as they are and the orphans (``node/orphans.py``) deleted.
``serving``
    the workers run; ``ready`` is set. Replica 0 of a StatefulSet also runs the cluster's
    share of ``vnode gc`` (instances of gone nodes, nodes of scaled-away replicas that died).
``draining``
    on ``terminate()`` (SIGTERM), only if the StatefulSet no longer wants this replica (a
    scale-in or an uninstall; ``node/drain.py``): evict, delete the instances, delete the Node,
    within the pod's termination grace period. A restart of the same ordinal skips it.
``releasing``
    the Lease given up (unless the drain deleted it with the Node) and the events flushed.
``stopped``
    ``run()`` returns.

A stop in any phase goes to ``draining`` or ``releasing`` at once; the start sequence does
not go on. Cancelling ``run()`` is a crash as far as the cloud is concerned (no drain), but
it still releases the Lease. The Kubernetes client, the provider, the metrics registry, the
clock and the randomness are passed in, so tests run several daemons in one process against
one fake cloud, stop one by cancelling its task, and start another.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import enum
import logging
import pathlib
import random
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
import prometheus_client as prom
from aiohttp import web

from vnode import errors, gc, settings
from vnode.kube import api, client, identity, informer, objects
from vnode.kubelet import certs as kubelet_certs
from vnode.kubelet import clock as kubelet_clock
from vnode.kubelet import pods as kubelet_pods
from vnode.kubelet import server as kubelet_server
from vnode.node import book, drain, events, ownership, pods, queue, reconcile, refresh, registration, renewal, spec
from vnode.observability import metrics
from vnode.provider import base

__all__ = ["NEXT", "Daemon", "Phase"]

log = logging.getLogger(__name__)


DRAIN_MARGIN = 10.0  # seconds a drain leaves before the kubelet's SIGKILL at the end of the grace period


class Phase(enum.StrEnum):
    """Where the daemon is in its life (the module docstring says what each phase does)."""

    STARTING = "starting"
    STANDING_BY = "standing-by"
    ADOPTING = "adopting"
    SERVING = "serving"
    DRAINING = "draining"
    RELEASING = "releasing"
    STOPPED = "stopped"


_STOP = frozenset({Phase.DRAINING, Phase.RELEASING})

#: The moves between phases. Any other is ignored: a Lease won back while draining, say, does
#: not make the node serve again.
NEXT: dict[Phase, frozenset[Phase]] = {
    Phase.STARTING: frozenset({Phase.STANDING_BY, Phase.ADOPTING}) | _STOP,
    Phase.STANDING_BY: frozenset({Phase.ADOPTING, Phase.SERVING}) | _STOP,
    Phase.ADOPTING: frozenset({Phase.STANDING_BY, Phase.SERVING}) | _STOP,
    Phase.SERVING: frozenset({Phase.STANDING_BY}) | _STOP,
    Phase.DRAINING: frozenset({Phase.RELEASING}),
    Phase.RELEASING: frozenset({Phase.STOPPED}),
    Phase.STOPPED: frozenset(),
}


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
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    #: Holder identity on the node's Lease; the same identity reclaims it at once after a restart.
    #: Empty: ``<pod name>_<pod uid>`` from the settings, else the host and a random id.
    identity: str = ""
    #: Serve the kubelet API (logs, exec, stats) on ``config.kubelet_port``; ``vnode run`` does.
    serve_kubelet: bool = False
    #: Where the kubelet API's serving certificate (from a CSR) is kept; a temporary directory if None.
    kubelet_cert_dir: pathlib.Path | None = None

    def __post_init__(self) -> None:
        self.identity = self.identity or ownership.identity(self.config.pod_name, self.config.pod_uid)
        self.ready = asyncio.Event()
        self.health = registration.CloudHealth()
        self.metrics = metrics.Metrics(self.registry, node=self.config.node_name)
        self.profile = settings.Profile()
        self.http_port = 0
        self.kubelet: kubelet_server.KubeletServer | None = None
        self._node_tasks: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []  # everything run() started, cancelled when it stops
        self.phase = Phase.STARTING
        #: Every phase so far, oldest first (for tests and the log).
        self.phases: list[Phase] = [Phase.STARTING]
        self.metrics.enter_phase(self.phase, Phase)
        self._stop_requested = asyncio.Event()
        self._terminating = False  # the stop came from SIGTERM: drain if this replica is being removed
        self._stop_requested_at = 0.0
        self.recorder = events.Recorder(self.kube, node_name=self.config.node_name, clock=self.clock)
        # Its pods' Secrets, claims, tokens and its CSR are the node's, as a kubelet's (kube/identity.py).
        self.as_node = identity.as_node(self.kube, self.config.node_name) if self.config.node_identity else self.kube
        # The node's Lease is its heartbeat *and* its lock: only its holder creates, deletes and
        # writes the node status, so two controllers claiming one node never both act.
        self.ownership = ownership.Ownership(
            self.kube,
            self.config.node_name,
            identity=self.identity,
            lease_duration=self.config.lease_duration,
            renew_interval=self.config.lease_renew_interval,
            on_change=self._on_lease,
        )
        self.recorder.may_post = self.ownership.holds  # a fenced controller posts nothing, not even queued events
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
            warn=lambda pod, reason, message: self.recorder.pod(pod, reason, message, type="Warning"),
        )
        # ConfigMap/Secret updates reach running pods' volumes, if the provider can update them.
        self.refresher = refresh.attach(self.pods, self.recorder, self.rng,
                                        secret_interval=self.config.secret_refresh_interval)  # fmt: skip
        # Projected service-account tokens renewed at 80 % of their life, by the same ability.
        self.tokens = renewal.attach(self.pods, self.rng, clock=lambda: self.clock().timestamp())

    def _reconciler(self, book: book.Book) -> reconcile.Reconciler:
        target = spec.Target(
            cluster_id=self.config.cluster_id,
            node_name=self.config.node_name,
            node_ip=self.config.node_ip,
            placement=self.config.placement,
            default_size=self.config.profile.default_size,
            profile=self.config.profile,
            cluster_dns=self.config.cluster_dns,
        )
        return reconcile.Reconciler(
            self.kube,
            self.provider,
            book=book,
            target=target,
            recorder=self.recorder,
            metrics=self.metrics,
            clock=self.clock,
            profile=lambda: self.profile,
            monotonic=self.monotonic,
            may_act=self.ownership.holds,
            # Two listings' wait, so that one begins after the create; at most 2 s (pushing providers).
            first_status_after=min(2 * self.config.status_interval, 2.0),
            as_node=self.as_node,
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
            anonymous=self.config.kubelet_anonymous_auth,
            as_node=self.as_node,
        )
        self._spawn(group, self.kubelet.run())
        # The serving certificate is renewed before its end into the live server (open streams keep theirs).
        rotator = kubelet_certs.Rotator(self.kube, self.config.node_name, [self.config.node_ip], cert_dir,
                                        self.kubelet.ssl_context, clock=kubelet_clock.SystemClock(),
                                        as_node=self.as_node, current=self.kubelet.serving)  # fmt: skip
        self._spawn(group, rotator.run())
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
            serving = self.phase is Phase.SERVING and self.ownership.holds()
            if serving and self.health.ok:
                return web.Response(text="ok")
            if serving:
                reason = f"{self.health.reason}: {self.health.message}"
            elif self.phase is Phase.STANDING_BY or (self.phase is Phase.SERVING and not self.ownership.holds()):
                reason = f"standing by: the node's Lease is held by {self.ownership.holder}"
            else:
                reason = str(self.phase)
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

    # --- the lifecycle ---

    def _enter(self, phase: Phase) -> bool:
        """Move to ``phase`` if :data:`NEXT` allows it (staying put is no move); logged. True if moved."""
        if phase is self.phase or phase not in NEXT[self.phase]:
            return False
        log.info("node %s: %s -> %s", self.config.node_name, self.phase, phase,
                 extra={"node": self.config.node_name, "phase": str(phase)})  # fmt: skip
        self.phase = phase
        self.phases.append(phase)
        self.metrics.enter_phase(phase, Phase)
        return True

    def _on_lease(self, held: bool) -> None:
        """The Lease was won or lost: a serving (or adopting) daemon stands by until it wins it back."""
        self.health.changed.set()
        if self.phase not in (Phase.STANDING_BY, Phase.ADOPTING, Phase.SERVING):
            return  # starting: the start sequence looks at the Lease itself; stopping: too late
        if not held:
            self._enter(Phase.STANDING_BY)
        else:
            self._enter(Phase.SERVING if self.pods.ready.is_set() else Phase.ADOPTING)

    def terminate(self) -> None:
        """SIGTERM: drain the node if the StatefulSet is removing this replica, then stop; else just stop."""
        self._request_stop(terminating=True)

    def stop(self) -> None:
        """Stop without draining (SIGINT): the node's pods keep running, a restarted daemon adopts them."""
        self._request_stop(terminating=False)

    def _request_stop(self, *, terminating: bool) -> None:
        if self._stop_requested.is_set():
            return  # a second signal changes nothing: the first one's stop is under way
        self._terminating = terminating
        self._stop_requested_at = self.monotonic()
        self._stop_requested.set()

    def _spawn(self, group: asyncio.TaskGroup, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = group.create_task(work)
        self._tasks.append(task)
        return task

    async def _start(self, group: asyncio.TaskGroup) -> None:
        """Starting, (standing by,) adopting, serving: each step awaited before the next."""
        self._spawn(group, self._serve())
        self._spawn(group, self._profile_informer().run())
        if self.serve_kubelet:
            await self._start_kubelet(group)
        self._node_tasks.append(self._spawn(group, self.node.run()))
        await self.node.ready.wait()
        self.ownership.owner = {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name,
                                "uid": self.node.uid}  # fmt: skip
        self._node_tasks.append(self._spawn(group, self.ownership.run()))
        await self.ownership.ready.wait()
        if not self.ownership.holds():
            self._enter(Phase.STANDING_BY)
        await self.ownership.held.wait()
        self._enter(Phase.ADOPTING)
        # Holding the Lease, write the status at once (not Ready until the cloud has answered).
        await self.node.write_status(force=True)
        await self._find_cluster_dns()
        self._spawn(group, self.pods.run())
        if self.refresher is not None:
            self._spawn(group, self.refresher.run())
        if self.tokens is not None:
            self._spawn(group, self.tokens.run())
        await self._pods_ready_or_refused()
        await self.node.write_status(force=True)  # Ready now that the cloud answered: before `ready`
        self._enter(Phase.SERVING if self.ownership.holds() else Phase.STANDING_BY)
        self.ready.set()
        collector = self._collector()
        if collector is not None:
            self._spawn(group, collector)
        log.info("daemon ready")

    async def _pods_ready_or_refused(self) -> None:
        """Wait for the pod controller; if the cloud refused the credentials instead (never accepted),
        write the node's NotReady reason and end the daemon with one line naming the setting."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self.pods.ready, self.pods.gave_up)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        refused = self.pods.refused
        if refused is None or self.pods.ready.is_set():
            return
        await self.node.write_status(force=True)
        named = self.config.profile.credentials_named(self.config.cloud)
        raise errors.ConfigError(f"{named}: the {self.config.provider} cloud refuses them: {refused.message}")

    async def _find_cluster_dns(self) -> None:
        """Without a configured cluster DNS IP, kube-system's kube-dns Service's (CoreDNS keeps that
        name); if it cannot be read, pods of dnsPolicy ClusterFirst get the kubelet's fallback."""
        target = self.pods.reconciler.target
        if target.cluster_dns:
            return
        try:
            service = await api.read(self.kube, api.services("kube-system"), "kube-dns")
        except errors.ApiError as exc:  # absent, not allowed, or unreachable: not worth blocking the start
            log.info("kube-system/kube-dns not read (%s): dnsPolicy ClusterFirst pods use the cloud's resolver", exc)
            return
        if service.spec.cluster_ip and service.spec.cluster_ip != "None":
            self.pods.reconciler.target = dataclasses.replace(target, cluster_dns=service.spec.cluster_ip)

    def _collector(self) -> Coroutine[Any, Any, None] | None:
        """Replica 0 of a StatefulSet also deletes the instances of nodes that are gone for good, and
        drains the nodes of scaled-away replicas that died before they could drain themselves."""
        parsed = drain.ordinal_of(self.config.pod_name)
        if parsed is None or parsed[1] != 0:
            return None
        namespace = self.config.pod_namespace
        abandoned = gc.Abandoned(self.kube, namespace, parsed[0]) if namespace else None
        return gc.collect_periodically(self.kube, self.provider, self.config.cluster_id,
                                       interval=self.config.orphan_interval, should_run=self.ownership.holds,
                                       abandoned=abandoned)  # fmt: skip

    async def _drain_if_removed(self) -> bool:
        """Draining, if a SIGTERM came and the StatefulSet no longer wants this replica; True if the
        Node (and its Lease) are gone. The pod controller runs on meanwhile, finishing evicted pods."""
        config = self.config
        if not self._terminating or not await drain.scale_in(
            self.kube, node=config.node_name, namespace=config.pod_namespace, pod_name=config.pod_name
        ):
            return False
        self._enter(Phase.DRAINING)
        self.pods.reconciler.draining = True  # no new instance for a pod about to be evicted
        deadline = self._stop_requested_at + config.termination_grace_seconds - DRAIN_MARGIN
        log.info("node %s: this replica is being removed; draining within %.0fs", config.node_name,
                 deadline - self.monotonic(), extra={"node": config.node_name})  # fmt: skip
        try:
            result = await drain.drain(self.kube, self.provider, node=config.node_name, cluster_id=config.cluster_id,
                                       deadline=deadline, before_node_delete=self.stop_node,
                                       kubelet_gone=not self.pods.ready.is_set(), monotonic=self.monotonic)  # fmt: skip
        except Exception:
            log.exception("drain failed; the replacement or `vnode gc` will collect what is left")
            return False
        return result.node_deleted

    async def _release(self, drained: bool) -> None:
        """Releasing: give the Lease up (unless it went with the drained Node), flush the events; stopped."""
        self._enter(Phase.RELEASING)
        if not drained:
            log.info("node %s: stopping without a complete drain; its pods keep running in the cloud, for its "
                     "replacement to adopt or, scaled away, for a surviving replica to take over",
                     self.config.node_name, extra={"node": self.config.node_name})  # fmt: skip
            with contextlib.suppress(TimeoutError, errors.ApiError):
                await asyncio.wait_for(self.ownership.release(), timeout=5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.recorder.drain(), timeout=5)
        self._enter(Phase.STOPPED)

    async def run(self) -> None:
        """The whole lifecycle: returns once a ``terminate()`` or ``stop()`` has been carried out.

        ``ready`` is set once the node is registered and the pods are in hand. Cancelling the
        task stops at once (no drain), still releasing the Lease.
        """
        drained = False
        try:
            async with asyncio.TaskGroup() as group:
                starting = self._spawn(group, self._start(group))
                await self._stop_requested.wait()
                starting.cancel()  # the start sequence goes no further
                drained = await self._drain_if_removed()
                for task in self._tasks:
                    task.cancel()
        finally:
            await self._release(drained)
