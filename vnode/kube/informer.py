"""List, then watch from the list's resourceVersion, and keep a cache: the informer of client-go, small.

A watch can end at any time (server timeout, network, apiserver restart); it is resumed from
the last resourceVersion seen, which bookmarks keep fresh so that a quiet watch does not fall
out of the server's window. Only when the server answers 410 Gone is the whole set listed
again, and then keys that vanished meanwhile are reported as deleted. ``ready`` is set once
the first list is in the cache: before that, "not in the cache" does not mean "does not
exist", which is why orphan collection waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from vnode import errors
from vnode.kube import api, client, objects

__all__ = ["Informer"]

T = TypeVar("T", objects.Pod, objects.ConfigMap, objects.Secret, objects.Node)

log = logging.getLogger(__name__)


class Informer(Generic[T]):
    def __init__(
        self,
        kube: client.Client,
        resource: api.Resource[T],
        *,
        on_change: Callable[[str, T | None], None],
        params: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.kube = kube
        self.resource: api.Resource[T] = resource
        self.params = dict(params or {})
        self.on_change: Callable[[str, T | None], None] = on_change
        self.cache: dict[str, T] = {}
        self.ready = asyncio.Event()
        self.resource_version = ""
        self._rng = rng or random.Random()
        self._watch_timeout = watch_timeout

    @staticmethod
    def key_of(obj: objects.Pod | objects.ConfigMap | objects.Secret | objects.Node) -> str:
        meta = obj.metadata
        return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name

    async def run(self) -> None:
        failures = 0
        relist = True
        while True:
            try:
                if relist:
                    await self._list()
                    relist = False
                await self._watch()
                failures = 0
            except errors.Gone:
                log.info("watch expired, listing again", extra={"path": self.resource.path})
                relist = True
            except errors.ApiError as exc:
                failures += 1
                delay = min(30.0, 0.2 * 2**failures) * (0.5 + self._rng.random() / 2)
                if isinstance(exc, errors.Retryable) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                log.warning("list/watch failed: %s; again in %.1fs", exc, delay, extra={"path": self.resource.path})
                await asyncio.sleep(delay)
            except Exception:  # an object we cannot decode, a bug: never let it stop the daemon's watch
                failures += 1
                delay = min(30.0, 0.2 * 2**failures) * (0.5 + self._rng.random() / 2)
                log.exception("list/watch broke; listing again in %.1fs", delay, extra={"path": self.resource.path})
                relist = True
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        listed = await api.list_all(self.kube, self.resource, params=self.params)
        fresh = {self.key_of(item): item for item in listed.items}
        gone = [key for key in self.cache if key not in fresh]
        self.cache.clear()  # in place: others hold a reference to the cache
        self.cache.update(fresh)
        self.resource_version = listed.metadata.resource_version
        self.ready.set()
        for key in gone:
            self.on_change(key, None)
        for key, item in fresh.items():
            self.on_change(key, item)

    async def _watch(self) -> None:
        events = api.watch(
            self.kube,
            self.resource,
            resource_version=self.resource_version,
            params=self.params,
            timeout_seconds=self._watch_timeout,
        )
        async with contextlib.aclosing(events):
            async for kind, item in events:
                if kind == "BOOKMARK":
                    self.resource_version = item.metadata.resource_version
                    continue
                key = self.key_of(item)
                self.resource_version = item.metadata.resource_version
                if kind == "DELETED":
                    self.cache.pop(key, None)
                    self.on_change(key, None)
                else:
                    self.cache[key] = item
                    self.on_change(key, item)
