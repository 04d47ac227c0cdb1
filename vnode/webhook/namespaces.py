"""Namespace labels for the admission handler, from a list+watch cache rather than a GET per review.

The API server only calls the webhook for pods whose namespace or own labels match the
configuration's selectors, but the review does not carry the namespace's labels, and the
mode (force or burst) depends on them. The cache is filled by one LIST and kept by a WATCH.

A namespace labelled a moment ago may reach the API server's selector before it reaches
our watch. So when the cache does not know a namespace, or does not show the label the
API server evidently matched, the handler may ``fetch`` it once; a fetched entry is kept
only if it is newer than what the watch has brought (resourceVersions compared as numbers,
which etcd-backed servers hand out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Protocol

from vnode import errors
from vnode.kube import api, client, objects
from vnode.webhook import metrics

log = logging.getLogger(__name__)


class NamespaceLabels(Protocol):
    """Where the handler reads namespace labels. ``cached`` never blocks; ``fetch`` reads the truth."""

    def cached(self, name: str) -> Mapping[str, str] | None: ...

    async def fetch(self, name: str) -> Mapping[str, str] | None: ...


class StaticNamespaces:
    """Fixed labels, for unit tests of the handler and for running without an API server."""

    def __init__(self, labels: Mapping[str, Mapping[str, str]]) -> None:
        self._labels = labels

    def cached(self, name: str) -> Mapping[str, str] | None:
        return self._labels.get(name)

    async def fetch(self, name: str) -> Mapping[str, str] | None:
        return self._labels.get(name)


def _version(meta: objects.ObjectMeta) -> int:
    try:
        return int(meta.resource_version)
    except ValueError:
        return 0


class NamespaceCache:
    """List+watch of namespaces. ``run()`` forever; ``ready`` is set after the first full list.

    (``vnode.kube.informer.Informer`` is typed for the objects the daemon reads; namespaces need
    only their metadata, so this keeps its own small loop on the same client.)
    """

    def __init__(self, kube: client.Client, *, metrics: metrics.Metrics, rng: random.Random | None = None) -> None:
        self._kube = kube
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._entries: dict[str, tuple[int, dict[str, str]]] = {}
        self.ready = asyncio.Event()

    def cached(self, name: str) -> Mapping[str, str] | None:
        entry = self._entries.get(name)
        return entry[1] if entry else None

    async def fetch(self, name: str) -> Mapping[str, str] | None:
        self._metrics.namespace_fetches.inc()
        try:
            namespace = await api.read(self._kube, api.NAMESPACES, name)
        except errors.NotFound:
            return None
        self._store(namespace.metadata)
        return self.cached(name)

    def _store(self, meta: objects.ObjectMeta) -> None:
        version = _version(meta)
        current = self._entries.get(meta.name)
        if current is None or version >= current[0]:
            self._entries[meta.name] = (version, dict(meta.labels))
        self._metrics.namespaces_cached.set(len(self._entries))

    async def run(self) -> None:
        failures = 0
        version = ""
        while True:
            try:
                if not version:
                    listed = await api.list_all(self._kube, api.NAMESPACES)
                    self._entries = {n.metadata.name: (_version(n.metadata), dict(n.metadata.labels))
                                     for n in listed.items}  # fmt: skip
                    self._metrics.namespaces_cached.set(len(self._entries))
                    version = listed.metadata.resource_version
                    self.ready.set()
                events = api.watch(self._kube, api.NAMESPACES, resource_version=version)
                async with contextlib.aclosing(events):
                    async for kind, namespace in events:
                        meta = namespace.metadata
                        version = meta.resource_version or version
                        if kind in ("ADDED", "MODIFIED"):
                            self._store(meta)
                        elif kind == "DELETED":
                            self._entries.pop(meta.name, None)
                            self._metrics.namespaces_cached.set(len(self._entries))
                failures = 0
            except errors.Gone:
                log.info("namespace watch expired; listing again")
                version = ""
                self._metrics.watch_restarts.labels("namespaces").inc()
            except errors.ApiError as exc:
                failures += 1
                delay = min(30.0, 0.2 * 2**failures) * (0.5 + self._rng.random() / 2)
                log.warning("namespace list/watch failed; again soon", extra={"error": str(exc), "delay": delay})
                self._metrics.watch_restarts.labels("namespaces").inc()
                await asyncio.sleep(delay)
