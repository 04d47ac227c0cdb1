"""A lean async Kubernetes client: aiohttp, raw JSON, msgspec-typed partial objects.

The official clients spend ~500 µs building a typed ``V1Pod`` per watch event; a node with
thousands of pods cannot afford that (docs/benchmarks.md), so this client returns bytes or
the partial structs of :mod:`vnode.kube.objects`. It does no retrying of its own: every
failure becomes a kind of :mod:`vnode.errors` (``Retry-After`` carried as ``retry_after``)
and the caller's work queue decides. Paths are API paths (``/api/v1/namespaces/x/pods``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, TypeVar

import aiohttp
import msgspec
import multidict

from vnode import __version__, errors
from vnode.kube import config, objects

__all__ = ["PATCH_TYPES", "Client"]

T = TypeVar("T")

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",  # JSON is valid YAML
    "json": "application/json-patch+json",
}

log = logging.getLogger(__name__)

_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decode(data: bytes, kind: type[T]) -> T:
    """``data`` as ``kind`` (a struct of :mod:`objects`), with one cached decoder per type."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    result: T = decoder.decode(data)
    return result


_encoder = msgspec.json.Encoder()


def _error(status: int, body: bytes, headers: Mapping[str, str], what: str) -> errors.ApiError:
    try:
        parsed = msgspec.json.decode(body, type=objects.Status)
        reason, message, kind = parsed.reason, parsed.message, str(parsed.details.get("kind", ""))
    except msgspec.DecodeError:
        reason, message, kind = "", body[:200].decode(errors="replace"), ""
    message = f"{what}: {status} {message}".strip()
    retry_after: float | None = None
    if "Retry-After" in headers:
        try:
            retry_after = float(headers["Retry-After"])
        except ValueError:
            retry_after = None
    code = reason or str(status)
    if status == 404:
        return errors.NotFound(message, code=code, kind=kind)
    if status == 409:
        return errors.Conflict(message, code=code)
    if status == 410:
        return errors.Gone(message, code=code)
    if status in (401, 403):
        return errors.Forbidden(message, code=code)
    if status == 429:
        return errors.Throttled(message, code=code, retry_after=retry_after)
    if status >= 500:
        return errors.Unavailable(message, code=code, retry_after=retry_after)
    return errors.InvalidSpec(message, code=code)


class Client:
    """One connection pool to one API server. Safe to share between tasks of one event loop."""

    def __init__(
        self,
        cfg: config.Config,
        *,
        field_manager: str = "vnode",
        timeout: float = 30.0,
        connections: int = 100,
        session: aiohttp.ClientSession | None = None,
        impersonate: tuple[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.config = cfg
        self.field_manager = field_manager
        self.impersonated = impersonate
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._owns_session = session is None
        self._session = session or aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=cfg.ssl, limit=connections),
            headers={"User-Agent": f"vnode/{__version__}", "Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._owns_session:
            await self._session.close()

    def impersonating(self, user: str, groups: tuple[str, ...]) -> Client:
        """This client acting as ``user`` in ``groups`` (the ``impersonate`` verb), over the same connections.

        The API server authorises each request as that user: with ``system:node:<name>`` in
        ``system:nodes``, its Node authorizer grants exactly what it grants that node's kubelet.
        Closing it leaves this client's connections open.
        """
        return Client(self.config, field_manager=self.field_manager, timeout=self._timeout.total or 30.0,
                      session=self._session, impersonate=(user, groups))  # fmt: skip

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _headers(self, content_type: str | None = None) -> Mapping[str, str]:
        headers = {}
        authorization = self.config.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        if content_type:
            headers["Content-Type"] = content_type
        if self.impersonated is None:
            return headers  # the hot path: a plain dict
        user, groups = self.impersonated
        acting: multidict.CIMultiDict[str] = multidict.CIMultiDict(headers, **{"Impersonate-User": user})
        for group in groups:  # one header per group, as the API server reads them
            acting.add("Impersonate-Group", group)
        return acting

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> bytes:
        """Send one request and return the body; raise a kind of ``errors.ApiError`` on failure."""
        data = body if body is None or isinstance(body, bytes) else _encoder.encode(body)
        what = f"{method} {path}"
        try:
            async with self._session.request(
                method,
                self.config.server + path,
                params=params,
                data=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=self._timeout,
                server_hostname=self.config.tls_server_name,
            ) as response:
                payload = await response.read()
                if response.status >= 400:
                    if response.status == 401:
                        self.config.credentials.refused()  # a rotated token, read again next time
                    raise _error(response.status, payload, response.headers, what)
                return payload
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise errors.Unavailable(f"{what}: {type(exc).__name__}: {exc}", code="Unreachable") from exc

    async def get(self, path: str, kind: type[T]) -> T:
        return decode(await self.request("GET", path), kind)

    async def list(
        self, path: str, kind: type[T], *, params: Mapping[str, str] | None = None, page: int = 500
    ) -> objects.List[T]:
        """All items at ``path``, fetched in pages; the result's resourceVersion is the last page's."""
        items: list[T] = []
        query = {**(params or {}), "limit": str(page)}
        while True:
            result = decode(await self.request("GET", path, params=query), objects.List[kind])  # type: ignore[valid-type]
            items.extend(result.items)
            if not result.metadata.continue_:
                return objects.List(metadata=result.metadata, items=items)
            query["continue"] = result.metadata.continue_

    async def watch(
        self, path: str, *, resource_version: str, params: Mapping[str, str] | None = None, timeout_seconds: int = 300
    ) -> AsyncGenerator[tuple[str, bytes]]:
        """Like :meth:`watch_objects`, yielding each object as raw JSON bytes for the caller to decode."""
        # Closing this generator early must close the inner one (and so its response) at once,
        # not whenever the garbage collector finds it.
        events = self.watch_objects(
            path, msgspec.Raw, resource_version=resource_version, params=params, timeout_seconds=timeout_seconds
        )
        async with contextlib.aclosing(events):
            async for kind, raw in events:
                yield kind, bytes(raw)

    async def watch_objects(
        self,
        path: str,
        kind: type[T],
        *,
        resource_version: str,
        params: Mapping[str, str] | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[tuple[str, T]]:
        """Yield ``(type, object)`` from a watch that resumes at ``resource_version``, with bookmarks.

        Each line is decoded once, straight into ``kind`` (a BOOKMARK's object carries only its
        metadata). Ends when the server closes the stream (after ``timeout_seconds``); raises
        ``Gone`` when ``resource_version`` is too old (the caller lists again), other
        ``ApiError`` kinds on failure.
        """
        query = {**(params or {}), "watch": "1", "allowWatchBookmarks": "true"}
        query.update(resourceVersion=resource_version, timeoutSeconds=str(timeout_seconds))
        what = f"WATCH {path}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_seconds + 30)
        event_kind = objects.WatchEvent[kind]  # type: ignore[valid-type]
        try:
            async with self._session.get(
                self.config.server + path,
                params=query,
                headers=self._headers(),
                timeout=timeout,
                server_hostname=self.config.tls_server_name,
            ) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.read(), response.headers, what)
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        if line.startswith(b'{"type":"ERROR"'):
                            status = decode(line, objects.WatchEvent[objects.Status]).object
                            raise _error(status.code or 500, msgspec.json.encode(status), {}, what)
                        if line.startswith(b'{"type":"BOOKMARK"') and kind is not msgspec.Raw:
                            # A bookmark's object is metadata only, with nulls where lists belong
                            # ("containers": null): keep its metadata, default the rest.
                            raw = msgspec.json.decode(line)
                            yield "BOOKMARK", msgspec.convert({"metadata": raw["object"]["metadata"]}, type=kind)
                            continue
                        try:
                            event = decode(line, event_kind)
                        except msgspec.ValidationError as exc:
                            # One odd object must not stop the daemon; the next re-list sees it again.
                            log.warning("skipped an undecodable event on %s: %s", path, exc)
                            continue
                        yield event.type, event.object
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise errors.Unavailable(f"{what}: {type(exc).__name__}: {exc}", code="Unreachable") from exc

    async def create(self, path: str, body: Any) -> bytes:
        return await self.request("POST", path, body=body)

    async def update(self, path: str, body: Any) -> bytes:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Any, *, kind: str = "merge", force: bool = False) -> bytes:
        """Patch ``path``; ``kind`` is merge, strategic, apply (server-side, as ``field_manager``) or json."""
        params = {"fieldManager": self.field_manager}
        if kind == "apply" and force:
            params["force"] = "true"
        if kind == "apply" and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        return await self.request("PATCH", path, params=params, body=body, content_type=PATCH_TYPES[kind])

    async def delete(self, path: str, *, grace_seconds: int | None = None, uid: str | None = None) -> bytes:
        """Delete ``path``; with ``uid`` only that incarnation of the object (``Conflict`` otherwise)."""
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        return await self.request("DELETE", path, body=options)
