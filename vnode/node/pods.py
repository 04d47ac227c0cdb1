"""The pod side of a node: one watch, one listing of the cloud per interval, a keyed queue, workers.

* One watch per node (``fieldSelector=spec.nodeName=<node>``) feeds an informer cache; every
  change puts the pod's key on the queue.
* One step of the provider's change feed per interval, by the node's tags, replaces per-pod
  polling; ``instances`` keeps the states and the feed's cursor, and a pod whose instance state
  changed is put on the queue (a provider that can push feeds the same path). The listing's
  success or failure is the node's view of cloud health. After instances were created, the
  next listing comes sooner (a new instance's status is what a user waits for), but never so
  soon that listing would take more than an eighth of the time.
* Workers take keys, one task per key at a time, and reconcile (``reconcile.Reconciler``).
* Credentials that the cloud refuses before it ever accepted them end the daemon (``gave_up``),
  after the pods bound here are told why they wait: no retry would help.
* Orphan collection deletes instances tagged with this cluster and node whose pod no longer
  exists, and only once the watch cache has synced and a listing started after that has
  completed: a cold cache must never delete a healthy instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from vnode import errors, models, settings, tokenbucket, waits
from vnode.kube import api, client, compact, informer, objects
from vnode.node import book, catchup, instances, orphans, queue, reconcile, registration, spending
from vnode.observability import metrics
from vnode.provider import base

__all__ = ["PodController"]

log = logging.getLogger(__name__)

#: The codes of a ``Retryable`` whose hint is the key's turn, not a failure to back off from.
TURNS = frozenset({tokenbucket.CLIENT_THROTTLED, catchup.NOT_YET_KNOWN})
UNHEALTHY_AFTER = 3  # failed listings in a row before the node turns NotReady
GIVE_UP_WAIT = 10.0  # seconds a daemon whose credentials are refused waits for its pod cache, to warn the pods
SOON = 0.25  # seconds after a create that the next listing comes at the soonest (the instance moves on meanwhile)
BUSY = 8  # ... but no sooner after the last listing began than this many times the time it took


class PodController:
    def __init__(
        self,
        kube: client.Client,
        provider: base.Provider,
        config: settings.Settings,
        *,
        reconciler_factory: Callable[[book.Book], reconcile.Reconciler],
        health: registration.CloudHealth,
        metrics: metrics.Metrics,
        work: queue.WorkQueue,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        warn: Callable[[objects.Pod, str, str], None] | None = None,
    ) -> None:
        self.kube = kube
        #: Posts a Warning event about a pod (reason, message): pods left waiting while the cloud is out.
        self.warn = warn
        self._warned: set[str] = set()  # UIDs of waiting pods told, this outage
        self.provider = provider
        self.config = config
        self.health = health
        self.metrics = metrics
        self.queue = work
        self.monotonic = monotonic
        self.wall = wall
        self.informer = informer.Informer(
            kube,
            api.PODS,
            on_change=self._on_pod,
            params={"fieldSelector": f"spec.nodeName={config.node_name}"},
        )
        #: The node's per-pod state and its only writer, shared with the reconciler (``view`` to read).
        self.book = book.Book(book.View(pods=self.informer.cache, states={}))
        self.view = self.book.view
        self.reconciler = reconciler_factory(self.book)
        self.ready = asyncio.Event()  # the cache is synced and the cloud listed: workers are running
        self._keys: dict[str, str] = {}  # pod UID -> key
        self._uids: dict[str, str] = {}  # key -> pod UID
        self.spending = spending.Spending(config.profile)  # the node's cost, by namespace and owner
        self._accounted_at = float("-inf")  # when the listing last updated the pod and cost gauges
        #: The node's instance states from the provider's change feed (``view.states`` is their copy).
        self.instances = instances.Instances(config.cluster_id, config.node_name)
        self._listed_once = asyncio.Event()
        #: Set when the cloud refused the credentials before any call of theirs succeeded: a
        #: configuration the daemon cannot work with (``refused`` says how); the feed has stopped.
        self.gave_up = asyncio.Event()
        self.refused: errors.Forbidden | None = None
        self._answered = False
        self._list_now = asyncio.Event()  # cuts the wait between listings short
        #: Called with every change the pod watch reports (``refresh`` keeps its index with it).
        self.listeners: list[Callable[[str, objects.Pod | None], None]] = []

    @property
    def tags(self) -> dict[str, str]:
        return {models.TAG_CLUSTER: self.config.cluster_id, models.TAG_NODE: self.config.node_name}

    def _on_pod(self, key: str, pod: objects.Pod | None) -> None:
        if pod is not None:
            self._keys[pod.metadata.uid] = key
            self._uids[key] = pod.metadata.uid
        elif key in self._uids:
            uid = self._uids.pop(key)
            self._keys.pop(uid, None)
            self.book.mark_gone(key, uid)
        self.queue.add(key)
        for listener in self.listeners:
            listener(key, pod)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.informer.run())
            group.create_task(compact.compact_periodically(self.informer.cache))  # settled pods share their strings
            group.create_task(self._feed())
            if isinstance(self.provider, base.SupportsPush):
                group.create_task(self._push(self.provider))
            await self.informer.ready.wait()
            await self._listed_once.wait()
            # The view is complete only after a listing that *began* after the cache synced.
            synced = self.monotonic()
            self._list_now.set()
            await self._wait_for_listing_after(synced)
            await self.collect_orphans()
            for _ in range(self.config.workers):
                group.create_task(self._worker())
            group.create_task(self._orphan_loop())
            self.ready.set()
            log.info("pod controller ready: %d pods, %d instances", len(self.view.pods), len(self.view.states))

    async def _wait_for_listing_after(self, moment: float) -> None:
        while self.view.listed_at <= moment:
            self._listed_once.clear()
            await self._listed_once.wait()

    # --- the cloud listing ---

    async def _feed(self) -> None:
        failures = 0
        while True:
            began = self.monotonic()
            self.book.listing_begins()
            try:
                changes = await self.provider.changes(self.tags, self.instances.cursor)
            except errors.ApiError as exc:
                failures += 1
                self.metrics.cloud_call("list", exc.code)
                self.metrics.cloud_up.labels(self.config.node_name).set(0)
                if failures >= UNHEALTHY_AFTER or isinstance(exc, errors.Forbidden):
                    self.health.set(False, "ProviderUnreachable", f"the cloud does not answer: {exc.message}")
                    self._warn_waiting()
                log.warning("cloud listing failed (%d in a row): %s", failures, exc)
                if isinstance(exc, errors.Forbidden) and not self._answered:
                    await self._give_up(exc)
                    return
                delay = self.config.status_interval
                if isinstance(exc, errors.Retryable) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                await self._pause(delay)
                continue
            failures = 0
            self._answered = True
            self._warned.clear()
            self.metrics.cloud_call("list", "ok")
            self.metrics.cloud_up.labels(self.config.node_name).set(1)
            self.health.set(True)
            self._apply(changes, began)
            took = self.monotonic() - began
            await self._pause(max(0.0, self.config.status_interval - took), soon=began + BUSY * took)

    async def _give_up(self, exc: errors.Forbidden) -> None:
        """The cloud refused these credentials and never accepted them: no retry will help. The pods
        bound here are told why they wait (once the pod cache is in), then the daemon stops."""
        await waits.event(self.informer.ready, GIVE_UP_WAIT)
        self._warn_waiting()
        self.refused = exc
        self.gave_up.set()

    def _warn_waiting(self) -> None:
        """Tell each pod waiting for its instance why it waits, once an outage: a node that cannot
        reach its cloud starts nothing, and a silent Pending looks like a stuck scheduler."""
        if self.warn is None:
            return
        message = f"the virtual node cannot start pods now: {self.health.message}"
        for pod in list(self.view.pods.values()):
            uid = pod.metadata.uid
            if uid in self._warned or pod.status.phase not in ("", "Pending") or uid in self.instances.by_uid:
                continue
            self._warned.add(uid)
            self.warn(pod, self.health.reason, message)

    async def _pause(self, seconds: float, soon: float | None = None) -> None:
        """Wait ``seconds``, or less when asked to list now, or (given ``soon``, the earliest moment for
        the next listing) until ``SOON`` after an instance is made, if that is earlier."""
        deadline = self.monotonic() + seconds
        waiters = [asyncio.ensure_future(self._list_now.wait())]
        if soon is not None:
            waiters.append(asyncio.ensure_future(self.view.created.wait()))
        try:
            done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            if soon is not None and waiters[1] in done and not self._list_now.is_set():
                early = min(max(soon, self.monotonic() + SOON), deadline) - self.monotonic()
                if early > 0:
                    await waits.event(self._list_now, early)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._list_now.clear()

    async def _push(self, provider: base.SupportsPush) -> None:
        """Changes the cloud pushes between listings; the listing stays the source of truth for absence."""
        failures = 0
        while True:
            try:
                async for state in provider.watch(self.tags):
                    failures = 0
                    for uid in self.instances.put(state):
                        pushed = self.instances.by_uid.get(uid)
                        if pushed is not None and self.book.pushed(uid, pushed) and uid in self._keys:
                            self.queue.add(self._keys[uid])
            except errors.ApiError as exc:
                failures += 1
                delay = min(30.0, self.config.status_interval * 2**failures)
                log.info("cloud push ended (%s); listing meanwhile, push again in %.1fs", exc, delay)
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(self.config.status_interval)

    def _apply(self, changes: base.Changes, began: float) -> None:
        """Take one answer of the change feed into the cache, then make ``view.states`` its copy.

        Others write the view between listings (a create's answer, a delete); the listing's word is
        final, as it always was, so every pod whose view differs from the cache is looked at again.
        The cache keeps the states the provider did not re-send, so their objects stay the same.
        """
        self.instances.apply(changes)
        fresh = self.instances.by_uid
        for uid in self.book.listed(fresh, began):
            if uid in self._keys:
                self.queue.add(self._keys[uid])
        if began - self._accounted_at >= self.config.status_interval:
            # Gauges need no fresher figures than one interval's, and listings come sooner than that
            # after creates: recounting every pod and instance each time was a cost growing with the node.
            self._accounted_at = began
            self._account(fresh.values())
        self._listed_once.set()

    def _account(self, states: Iterable[models.InstanceState]) -> None:
        now = self.wall()
        phases: dict[str, int] = dict.fromkeys(("Pending", "Running", "Succeeded", "Failed"), 0)
        for pod in self.view.pods.values():
            phases[pod.phase] = phases.get(pod.phase, 0) + 1
        for phase, count in phases.items():
            self.metrics.pods.labels(self.config.node_name, phase).set(count)
        self.metrics.queue_depth.labels(self.config.node_name).set(len(self.queue))
        if isinstance(self.provider, base.SupportsPacing):
            for action, waiting in self.provider.turns_waiting().items():
                self.metrics.turns_waiting.labels(self.config.node_name, action).set(waiting)
        node = self.config.node_name
        for (namespace, owner), dollars in self.spending.account(states, self._pod_of, now).items():
            self.metrics.cost_total.labels(node, namespace, owner).inc(dollars)
        self.metrics.cost.labels(node).set(self.spending.total)
        self.metrics.spot_saved.labels(node).set(self.spending.saved)
        self.metrics.spot_instances.labels(node).set(self.spending.interruptible)

    def _pod_of(self, uid: str) -> objects.Pod | None:
        key = self._keys.get(uid)
        return self.view.pods.get(key) if key is not None else None

    # --- orphans ---

    async def collect_orphans(self) -> int:
        """Delete the instances that ``orphans.decide`` finds orphaned (their pod is gone); the others
        are the instances of this node's pods, adopted as they are. Nothing before the cache synced."""
        if not self.reconciler.may_act():
            return 0
        known = orphans.Known(
            self.config.cluster_id,
            self.config.node_name,
            live_pods={pod.metadata.uid for pod in self.view.pods.values()},
            complete=self.informer.ready.is_set(),
        )
        removed = 0
        for uid, state in list(self.view.states.items()):
            decision = orphans.decide(state.tags, known)
            if not decision.delete:
                continue
            try:
                with tokenbucket.waiting_for_turns():  # its own loop: it may wait for the delete's turn
                    await self.provider.delete(state.id, grace_seconds=0)
            except errors.ApiError as exc:
                log.warning("orphan %s not deleted yet: %s", state.id, exc, extra={"instance": state.id})
                continue
            self.book.drop(uid)
            removed += 1
            self.metrics.orphans_removed.labels(self.config.node_name).inc()
            log.info("orphan instance %s deleted (pod %s/%s: %s)", state.id, state.tags.get(models.TAG_NAMESPACE),
                     state.tags.get(models.TAG_NAME), decision.reason, extra={"instance": state.id})  # fmt: skip
        return removed

    async def _orphan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.orphan_interval)
            began = self.monotonic()
            self._list_now.set()
            await self._wait_for_listing_after(began)
            await self.collect_orphans()

    # --- workers ---

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            started = self.monotonic()
            try:
                with tokenbucket.turns_for(key, self.queue.add):  # refused a token: woken when one is set aside
                    again = await self.reconciler.sync(key)
            except errors.Retryable as exc:
                self.metrics.retries.labels(self.config.node_name, exc.code).inc()
                if exc.code in TURNS and exc.retry_after:
                    # Its turn: a bucket's token (it is woken with it; this later look is a fallback), or
                    # the API server's catching up with a new pod (``catchup``). No backoff either way.
                    self.queue.turn(key, exc.retry_after)
                    log.debug("waiting for its turn: %s", exc, extra={"pod": key})
                else:
                    delay = self.queue.retry(key, exc.retry_after)
                    log.info("retry in %.2fs: %s", delay, exc, extra={"pod": key})
            except errors.ApiError as exc:
                delay = self.queue.retry(key)
                self.metrics.retries.labels(self.config.node_name, exc.code).inc()
                log.warning("retry in %.2fs: %s", delay, exc, extra={"pod": key})
            except Exception:
                delay = self.queue.retry(key)
                self.metrics.retries.labels(self.config.node_name, "Bug").inc()
                log.exception("reconcile failed unexpectedly; retry in %.2fs", delay, extra={"pod": key})
            else:
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)
                self.metrics.reconcile_seconds.labels(self.config.node_name).observe(self.monotonic() - started)
