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
from collections.abc import Mapping
from typing import Any, Protocol

from vnode.webhook import kubeapi, metrics


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


def _version(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0


class NamespaceCache:
    """List+watch of namespaces. ``run()`` forever; ``ready`` is set after the first full list."""

    def __init__(self, client: kubeapi.Client, *, metrics: metrics.Metrics, backoff: float = 1.0) -> None:
        self._client = client
        self._metrics = metrics
        self._backoff = backoff
        self._entries: dict[str, tuple[int, dict[str, str]]] = {}
        self.ready = asyncio.Event()

    def cached(self, name: str) -> Mapping[str, str] | None:
        entry = self._entries.get(name)
        return entry[1] if entry else None

    async def fetch(self, name: str) -> Mapping[str, str] | None:
        self._metrics.namespace_fetches.inc()
        try:
            obj = await self._client.get(f"/api/v1/namespaces/{name}")
        except kubeapi.NotFound:
            return None
        self._store(obj)
        return self.cached(name)

    def _store(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata", {})
        name = meta.get("name")
        if not name:
            return
        version = _version(obj)
        current = self._entries.get(name)
        if current is None or version >= current[0]:
            self._entries[name] = (version, dict(meta.get("labels") or {}))
        self._metrics.namespaces_cached.set(len(self._entries))

    async def run(self) -> None:
        await kubeapi.list_watch(
            self._client,
            "/api/v1/namespaces",
            replace=self._replace,
            apply=self._apply,
            on_restart=self._metrics.watch_restarts.labels("namespaces").inc,
            backoff=self._backoff,
        )

    def _replace(self, items: list[dict[str, Any]]) -> None:
        self._entries = {
            obj["metadata"]["name"]: (_version(obj), dict(obj["metadata"].get("labels") or {})) for obj in items
        }
        self._metrics.namespaces_cached.set(len(self._entries))
        self.ready.set()

    def _apply(self, event: str, obj: dict[str, Any]) -> None:
        if event in ("ADDED", "MODIFIED"):
            self._store(obj)
        elif event == "DELETED":
            self._entries.pop(obj.get("metadata", {}).get("name", ""), None)
            self._metrics.namespaces_cached.set(len(self._entries))
