"""Give burst pods that landed on virtual nodes a low pod-deletion-cost, so scale-in removes them first.

A pod's node is unknown when it is admitted, so the webhook cannot set the cost itself. It
labels burst-mode pods instead (``vnode.io/burst=true``), and this loop, running in the
webhook process, watches only those pods (a server-side label selector) and the virtual
nodes (``type=virtual-kubelet``). When such a pod is bound to a virtual node, it gets
``controller.kubernetes.io/pod-deletion-cost`` (default -100): one merge patch per bound
burst pod, never for other pods. The ReplicaSet controller ranks pods of equal phase and
readiness by that cost when it scales in, so the pods on virtual nodes go first.

Why here and not in the daemon: the daemon knows the pods on its own node, but nothing
about burst mode; the webhook made the pod a burst pod and already talks to the API server.
Every step is idempotent (a pod that already has the cost is skipped), so several webhook
replicas may run it at once; ``--no-deletion-cost`` turns it off on all but one.
"""

from __future__ import annotations

import asyncio
import logging

from vnode import errors
from vnode.kube import api, client, informer, objects
from vnode.webhook import metrics, mutation

log = logging.getLogger(__name__)

VIRTUAL_NODE_SELECTOR = "type=virtual-kubelet"


class DeletionCost:
    """``run()`` forever; ``ready`` once both caches have listed."""

    def __init__(
        self, kube: client.Client, *, metrics: metrics.Metrics, cost: int = -100, backoff: float = 1.0
    ) -> None:
        self._kube = kube
        self._metrics = metrics
        self.cost = str(cost)
        self._backoff = backoff
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._patched: set[str] = set()  # until the watch brings the annotation back
        self._nodes = informer.Informer(
            kube, api.NODES, on_change=self._node_changed,
            params={"labelSelector": VIRTUAL_NODE_SELECTOR},
        )  # fmt: skip
        self._pods = informer.Informer(
            kube, api.PODS, on_change=self._pod_changed,
            params={"labelSelector": f"{mutation.BURST_LABEL}=true"},
        )  # fmt: skip
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._nodes.run())
            group.create_task(self._pods.run())
            group.create_task(self._work())
            await self._nodes.ready.wait()
            await self._pods.ready.wait()
            for key in self._pods.cache:
                self._enqueue(key)
            self.ready.set()

    def _due(self, key: str) -> bool:
        """True if the pod is a live burst pod on a virtual node without the low cost yet."""
        pod = self._pods.cache.get(key)
        if pod is None or key in self._patched or pod.metadata.deletion_timestamp or not pod.spec.node_name:
            return False
        if pod.metadata.annotations.get(mutation.DELETION_COST_ANNOTATION) == self.cost:
            return False
        return pod.spec.node_name in self._nodes.cache

    def _pod_changed(self, key: str, pod: objects.Pod | None) -> None:
        if pod is None:
            self._patched.discard(key)
            return
        if pod.metadata.annotations.get(mutation.DELETION_COST_ANNOTATION) == self.cost:
            self._patched.discard(key)
        self._enqueue(key)

    def _node_changed(self, name: str, node: objects.Node | None) -> None:
        if node is None:
            return
        for key, pod in self._pods.cache.items():
            if pod.spec.node_name == name:
                self._enqueue(key)

    def _enqueue(self, key: str) -> None:
        if key not in self._queued and self._due(key):
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def _work(self) -> None:
        """One worker: patches are few, and one at a time keeps each pod's patches in order."""
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            if not self._due(key):
                continue
            namespace, name = key.split("/", 1)
            body = {"metadata": {"annotations": {mutation.DELETION_COST_ANNOTATION: self.cost}}}
            try:
                await api.patch_pod(self._kube, namespace, name, body)
            except errors.NotFound:
                self._metrics.deletion_cost_patches.labels("gone").inc()
                continue
            except errors.ApiError as exc:  # try this pod again after a pause
                self._metrics.deletion_cost_patches.labels("error").inc()
                log.warning("could not set the pod-deletion-cost", extra={"pod": key, "error": str(exc)})
                await asyncio.sleep(self._backoff)
                self._enqueue(key)
                continue
            self._patched.add(key)
            self._metrics.deletion_cost_patches.labels("patched").inc()
            node = self._pods.cache[key].spec.node_name if key in self._pods.cache else ""
            log.info("burst pod on a virtual node: lowered its deletion cost", extra={"pod": key, "node": node})
