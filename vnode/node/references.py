"""The ConfigMaps and Secrets that pods being created refer to: read once per burst, not once per pod.

Every pod of a namespace mounts ``kube-root-ca.crt`` (the service-account volume), and a
Deployment's replicas share their ConfigMaps and Secrets, so a burst of creates asks for the
same few objects over and over. This cache answers from an entry younger than ``ttl`` seconds
and lets only one read per object be in flight: callers that arrive while it is fetched wait
for that read instead of sending their own (64 workers missing at once sent 64 GETs).

Why not an informer: watching every ConfigMap and Secret of the cluster (or of each namespace
with pods here) holds objects no pod of this node needs, Helm's release Secrets among them,
and the kubelet does not do it either. A short TTL is the kubelet's ``Cache`` strategy: a
change reaches pods created after ``ttl`` at the latest, and, since absence is cached for
``ttl`` too, a pod waiting for a missing object starts at most ``ttl`` after it appears.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Cache", "Data", "Fetch"]

Data = dict[str, bytes] | None  # None: the object does not exist
D = TypeVar("D")
Fetch = Callable[[str, str, str], Awaitable[D]]  # (namespace, kind, name) -> data; raises on failure


class Cache(Generic[D]):
    """Reads through ``fetch``; concurrent readers of one object share one call. Failures are not cached.

    The shared read runs as its own task, so a caller that is cancelled (its pod deleted meanwhile)
    neither cancels the read for the others nor loses its result for the next caller.
    """

    def __init__(
        self, fetch: Fetch[D], *, ttl: float = 2.0, monotonic: Callable[[], float] = time.monotonic, limit: int = 4096
    ) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self._monotonic = monotonic
        self._limit = limit
        self._entries: dict[tuple[str, str, str], tuple[float, D]] = {}
        self._inflight: dict[tuple[str, str, str], asyncio.Task[D]] = {}
        self.fetches = 0  # calls made to ``fetch``, for tests and metrics

    async def get(self, namespace: str, kind: str, name: str) -> D:
        key = (namespace, kind, name)
        entry = self._entries.get(key)
        if entry is not None and self._monotonic() - entry[0] < self.ttl:
            return entry[1]
        task = self._inflight.get(key)
        if task is None:
            task = self._inflight[key] = asyncio.create_task(self._read(key))
        return await asyncio.shield(task)

    async def _read(self, key: tuple[str, str, str]) -> D:
        began = self._monotonic()  # an entry is as old as the moment its read began
        try:
            self.fetches += 1
            data = await self._fetch(*key)
        finally:
            del self._inflight[key]
        if len(self._entries) >= self._limit:  # keep what the current burst of creates needs
            self._entries = {k: v for k, v in self._entries.items() if began - v[0] < self.ttl}
        self._entries[key] = (began, data)
        return data
