"""Kubernetes Events about pods, as a kubelet would record them (Pulling, Pulled, Created, Started...).

Events are for people reading ``kubectl describe``; losing one must never slow or fail a
reconcile. So they are posted in the background, a bounded number at a time, and a failure
is logged, not raised.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
from collections.abc import Callable
from typing import Any

from vnode import errors
from vnode.kube import client, objects

__all__ = ["Recorder"]

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        kube: client.Client,
        *,
        node_name: str,
        clock: Callable[[], datetime.datetime],
        concurrency: int = 8,
    ) -> None:
        self.kube = kube
        self.node_name = node_name
        self.clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def pod(
        self,
        pod: objects.Pod,
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        container: str = "",
        when: datetime.datetime | None = None,
    ) -> None:
        """Record an event about ``pod`` (in the background)."""
        meta = pod.metadata
        stamp = (when or self.clock()).astimezone(datetime.UTC)
        involved: dict[str, Any] = {
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": meta.namespace,
            "name": meta.name,
            "uid": meta.uid,
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.name}.{secrets.token_hex(8)}", "namespace": meta.namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": "vnode", "host": self.node_name},
            "reportingComponent": "vnode",
            "reportingInstance": self.node_name,
            "firstTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        task = asyncio.create_task(self._post(meta.namespace, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, namespace: str, body: dict[str, Any]) -> None:
        async with self._slots:
            try:
                await self.kube.create(f"/api/v1/namespaces/{namespace}/events", body)
            except errors.ApiError as exc:
                log.debug("event %s not recorded: %s", body["reason"], exc)

    async def drain(self) -> None:
        """Wait for the events already recorded to be posted."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
