"""The Secrets a namespace's pods mount, read one by one by name: the daemon may ``get`` a Secret, never
``list`` or ``watch`` them.

A kubelet reads only the Secrets of the pods bound to it (the Node authorizer sees to that); a
virtual kubelet runs as a ServiceAccount, and RBAC cannot narrow ``list`` and ``watch`` to the
Secrets of some pods, so a watch would let a stolen daemon token read every Secret of the cluster,
as they change. Instead each Secret a volume of this node's pods mounts is read with a ``get``: at
once when a pod first mounts it, then every ``interval`` seconds (the chart's default is 60),
which is the kubelet's own ``Cache`` change-detection strategy (a changed Secret reaches a kubelet's
volumes after up to a sync period plus its cache's age, about a minute as well). The cost is one
read per distinct Secret per interval, whatever the number of pods that mount it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from vnode import errors, waits
from vnode.kube import api, client, objects

__all__ = ["CONCURRENCY", "Secrets"]

log = logging.getLogger(__name__)

CONCURRENCY = 8  # reads in flight per namespace


class Secrets:
    """The Secrets named by ``names()`` in ``namespace``, as last read; ``on_change(key)`` for each one found
    changed, new or gone (``key`` is ``namespace/name``, as an informer's)."""

    def __init__(
        self,
        kube: client.Client,
        namespace: str,
        names: Callable[[], Iterable[str]],
        on_change: Callable[[str], None],
        *,
        interval: float,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.names = names
        self.on_change = on_change
        self.interval = interval
        self.cache: dict[str, objects.Secret] = {}  # namespace/name -> the Secret as last read
        self._read: set[str] = set()  # names read at least once, found or not
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENCY)

    def has_read(self, names: Iterable[str]) -> bool:
        """Whether each of ``names`` was read at least once (a pod's volumes are built only then)."""
        return all(name in self._read for name in names)

    def wake(self) -> None:
        """A pod mounts a Secret not read yet: read it now rather than at the next interval."""
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
                secret: objects.Secret | None = await api.read(self.kube, api.secrets(self.namespace), name)
            except errors.NotFound:
                secret = None
            except errors.ApiError as exc:  # unreadable now (forbidden, unreachable): read again next time
                log.warning("reading Secret %s for its volumes failed: %s", key, exc)
                return
        self._read.add(name)
        before = self.cache.get(key)
        if secret is None:
            if self.cache.pop(key, None) is not None:
                self.on_change(key)
            return
        self.cache[key] = secret
        if before is None or before.metadata.resource_version != secret.metadata.resource_version:
            self.on_change(key)
