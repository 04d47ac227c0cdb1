"""The ConfigMaps and Secrets a namespace's pods mount, read one by one by name, as the node.

A kubelet reads only the objects of the pods bound to it (the Node authorizer sees to that), and
so does the daemon: it reads them as its node (``kube/identity.py``), which may ``get`` them but
not list or watch a namespace. A watch as the daemon's own account would need every ConfigMap or
Secret of the cluster, as they change. Instead each object a volume of this node's pods mounts is
read with a ``get``: at once when a pod first mounts it, then every ``interval`` seconds (the
chart's default is 60), which is the kubelet's own ``Cache`` change-detection strategy (a changed
object reaches a kubelet's volumes after up to a sync period plus its cache's age, about a minute
as well). The cost is one read per distinct object per interval, whatever the number of pods that
mount it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from vnode import errors, waits
from vnode.kube import api, client, objects

__all__ = ["CONCURRENCY", "Objects"]

T = TypeVar("T", objects.ConfigMap, objects.Secret)

log = logging.getLogger(__name__)

CONCURRENCY = 8  # reads in flight per namespace


class Objects(Generic[T]):
    """The objects of ``resource`` named by ``names()``, as last read; ``on_change(key)`` for each one found
    changed, new or gone (``key`` is ``namespace/name``, as an informer's)."""

    def __init__(
        self,
        kube: client.Client,
        resource: api.Resource[T],
        namespace: str,
        names: Callable[[], Iterable[str]],
        on_change: Callable[[str], None],
        *,
        interval: float,
    ) -> None:
        self.kube = kube
        self.resource: api.Resource[T] = resource
        self.namespace = namespace
        self.names = names
        self.on_change = on_change
        self.interval = interval
        self.cache: dict[str, T] = {}  # namespace/name -> the object as last read
        self._read: set[str] = set()  # names read at least once, found or not
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENCY)

    def has_read(self, names: Iterable[str]) -> bool:
        """Whether each of ``names`` was read at least once (a pod's volumes are built only then)."""
        return all(name in self._read for name in names)

    def wake(self) -> None:
        """A pod mounts an object not read yet: read it now rather than at the next interval."""
        self._wake.set()

    async def run(self) -> None:
        everything = True
        while True:
            self._wake.clear()
            wanted = set(self.names())
            due = wanted if everything else wanted - self._read
            await asyncio.gather(*(self._get(name) for name in sorted(due)))
            for name in self._read - wanted:  # no pod here mounts it any more
                self._read.discard(name)
                self.cache.pop(f"{self.namespace}/{name}", None)
            everything = not await waits.event(self._wake, self.interval)

    async def _get(self, name: str) -> None:
        key = f"{self.namespace}/{name}"
        async with self._slots:
            try:
                found: T | None = await api.read(self.kube, self.resource, name)
            except errors.NotFound:
                found = None
            except errors.ApiError as exc:  # unreadable now (forbidden, unreachable): read again next time
                log.warning("reading %s for its volumes failed: %s", self.resource.item(name), exc)
                return
        self._read.add(name)
        before = self.cache.get(key)
        if found is None:
            if self.cache.pop(key, None) is not None:
                self.on_change(key)
            return
        self.cache[key] = found
        if before is None or before.metadata.resource_version != found.metadata.resource_version:
            self.on_change(key)
