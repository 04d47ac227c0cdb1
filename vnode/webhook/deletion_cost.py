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
from typing import Any

from vnode.webhook import kubeapi, metrics, mutation

log = logging.getLogger(__name__)

VIRTUAL_NODE_SELECTOR = "type=virtual-kubelet"


class DeletionCost:
    """``run()`` forever; ``ready`` once both caches have listed."""

    def __init__(
        self, client: kubeapi.Client, *, metrics: metrics.Metrics, cost: int = -100, backoff: float = 1.0
    ) -> None:
        self._client = client
        self._metrics = metrics
        self.cost = str(cost)
        self._backoff = backoff
        self._virtual: set[str] = set()
        self._bound: dict[str, str] = {}  # "namespace/name" -> node, for burst pods not yet given the cost
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._nodes_listed = asyncio.Event()
        self._pods_listed = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_nodes())
            group.create_task(self._watch_pods())
            group.create_task(self._work())
            await self._nodes_listed.wait()
            await self._pods_listed.wait()
            self.ready.set()

    async def _watch_nodes(self) -> None:
        def replace(items: list[dict[str, Any]]) -> None:
            self._virtual = {item["metadata"]["name"] for item in items}
            self._nodes_listed.set()
            self._enqueue_all()

        def apply(event: str, obj: dict[str, Any]) -> None:
            name = obj["metadata"]["name"]
            if event == "DELETED":
                self._virtual.discard(name)
            else:
                self._virtual.add(name)
                self._enqueue_all()

        await kubeapi.list_watch(
            self._client, "/api/v1/nodes", params={"labelSelector": VIRTUAL_NODE_SELECTOR}, replace=replace,
            apply=apply, on_restart=self._metrics.watch_restarts.labels("nodes").inc, backoff=self._backoff,
        )  # fmt: skip

    async def _watch_pods(self) -> None:
        def replace(items: list[dict[str, Any]]) -> None:
            self._bound = {}
            for item in items:
                self._track(item)
            self._pods_listed.set()
            self._enqueue_all()

        def apply(event: str, obj: dict[str, Any]) -> None:
            if event == "DELETED":
                self._bound.pop(_key(obj), None)
            else:
                self._track(obj)
                self._enqueue(_key(obj))

        await kubeapi.list_watch(
            self._client, "/api/v1/pods", params={"labelSelector": f"{mutation.BURST_LABEL}=true"}, replace=replace,
            apply=apply, on_restart=self._metrics.watch_restarts.labels("pods").inc, backoff=self._backoff,
        )  # fmt: skip

    def _track(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata", {})
        node = pod.get("spec", {}).get("nodeName")
        done = (meta.get("annotations") or {}).get(mutation.DELETION_COST_ANNOTATION) == self.cost
        if node and not done and not meta.get("deletionTimestamp"):
            self._bound[_key(pod)] = node
        else:
            self._bound.pop(_key(pod), None)

    def _enqueue_all(self) -> None:
        for key, node in self._bound.items():
            if node in self._virtual:
                self._enqueue(key)

    def _enqueue(self, key: str) -> None:
        if key in self._bound and self._bound[key] in self._virtual and key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def _work(self) -> None:
        """One worker: patches are few, and one at a time keeps each pod's patches in order."""
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            node = self._bound.get(key)
            if node is None or node not in self._virtual:
                continue
            namespace, name = key.split("/", 1)
            body = {"metadata": {"annotations": {mutation.DELETION_COST_ANNOTATION: self.cost}}}
            try:
                await self._client.merge_patch(f"/api/v1/namespaces/{namespace}/pods/{name}", body)
            except kubeapi.NotFound:
                self._metrics.deletion_cost_patches.labels("gone").inc()
                continue
            except Exception as exc:  # the API server failed: try this pod again after a pause
                self._metrics.deletion_cost_patches.labels("error").inc()
                log.warning("could not set the pod-deletion-cost", extra={"pod": key, "error": str(exc)})
                await asyncio.sleep(self._backoff)
                self._enqueue(key)
                continue
            self._bound.pop(key, None)
            self._metrics.deletion_cost_patches.labels("patched").inc()
            log.info("burst pod on a virtual node: lowered its deletion cost", extra={"pod": key, "node": node})


def _key(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace')}/{meta.get('name')}"
