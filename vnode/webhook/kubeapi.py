"""A small async Kubernetes client for the webhook's low-volume control-plane talk.

The webhook lists and watches namespaces (and, for burst pods, pods and virtual nodes),
applies its MutatingWebhookConfiguration, and reads or creates the Secret holding its CA.
That is a handful of calls, so this is aiohttp plus raw JSON. Credentials come from the
official client's loaders (kubeconfig or in-cluster), which know every kubeconfig variant.
vnode's own lean client (``vnode/kube/``) is meant to replace this module once it lands.

Errors::

    KubeError               any non-2xx answer (status, reason, message)
     ├── NotFound           404
     ├── Conflict           409 (already exists, or a stale resourceVersion)
     └── Gone               410 (a watch's resourceVersion is too old: list again)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class KubeError(RuntimeError):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Gone(KubeError):
    pass


_ERRORS: Mapping[int, type[KubeError]] = {404: NotFound, 409: Conflict, 410: Gone}


def _error(status: int, body: Any) -> KubeError:
    reason = str(body.get("reason", "")) if isinstance(body, dict) else ""
    message = str(body.get("message", body)) if isinstance(body, dict) else str(body)[:300]
    return _ERRORS.get(status, KubeError)(status, reason, message)


class Client:
    """One API server, one aiohttp session. Use as an async context manager, or call ``close()``."""

    def __init__(self, server: str, ssl_context: ssl.SSLContext | bool, token: Any = None) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl_context
        self._token = token  # a callable returning "Bearer ..." (refreshed by the official loader) or None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, kubeconfig: str | None) -> Client:
        """From a kubeconfig file, or the in-cluster service account when ``kubeconfig`` is None."""
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        cfg = k8s.Configuration()
        if kubeconfig:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        context: ssl.SSLContext | bool = False
        if cfg.verify_ssl:
            context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.cert_file:
                context.load_cert_chain(cfg.cert_file, cfg.key_file)
        token = None
        if cfg.api_key.get("authorization") or cfg.refresh_api_key_hook:

            def token() -> str | None:
                value = cfg.get_api_key_with_prefix("authorization")
                return str(value) if value else None

        return cls(cfg.host, context, token)

    def _session_or_open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl))
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # TLS transports finish closing over the next loop iterations; give them that time
            # before the loop may stop (aiohttp's "graceful shutdown" advice for SSL).
            await asyncio.sleep(0.25)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self._token is not None and (value := self._token()):
            headers["Authorization"] = value
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        deadline: float = 10.0,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        async with self._session_or_open().request(
            method,
            self.server + path,
            data=data,
            params=params,
            headers=self._headers(content_type if data is not None else None),
            timeout=aiohttp.ClientTimeout(total=deadline),
        ) as resp:
            raw = await resp.read()
            try:
                decoded = json.loads(raw) if raw else {}
            except ValueError:
                decoded = raw.decode(errors="replace")
            if resp.status >= 300:
                raise _error(resp.status, decoded)
            if not isinstance(decoded, dict):
                raise KubeError(resp.status, "BadResponse", f"{method} {path} answered non-JSON")
            return decoded

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def apply(self, path: str, body: Mapping[str, Any], *, field_manager: str) -> dict[str, Any]:
        """Server-side apply (JSON is YAML); ``force`` takes over fields another manager set."""
        params = {"fieldManager": field_manager, "force": "true"}
        return await self.request("PATCH", path, body=body, content_type="application/apply-patch+yaml", params=params)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    async def delete(self, path: str) -> None:
        with contextlib.suppress(NotFound):
            await self.request("DELETE", path)

    async def watch(
        self, path: str, resource_version: str, params: Mapping[str, str] | None = None, timeout_seconds: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events (``{"type", "object"}``) from ``resource_version``; ends when the server does.

        An ERROR event with status 410 raises Gone: the caller lists again.
        """
        query = {
            **(params or {}),
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        async with self._session_or_open().get(
            self.server + path, params=query, headers=self._headers(), timeout=timeout
        ) as resp:
            if resp.status >= 300:
                raise _error(resp.status, await resp.json(content_type=None))
            # One JSON event per line. Split lines ourselves: aiohttp's line reader refuses lines
            # over 64 KiB, and a pod with a large spec makes one.
            pending = b""
            async for chunk in resp.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise _error(int(status.get("code") or 500), status)
                    yield event


async def list_watch(
    client: Client,
    path: str,
    *,
    replace: Callable[[list[dict[str, Any]]], None],
    apply: Callable[[str, dict[str, Any]], None],
    params: Mapping[str, str] | None = None,
    on_restart: Callable[[], None] = lambda: None,
    backoff: float = 1.0,
) -> None:
    """Keep a cache in step with a collection, forever: LIST into ``replace(items)``, then WATCH into
    ``apply(event_type, object)``; list again when the watch expires (410) or fails.
    """
    while True:
        try:
            listing = await client.get(path, params=params)
            replace(listing.get("items", []))
            version = str(listing.get("metadata", {}).get("resourceVersion", ""))
            while True:  # a watch that ends cleanly (its timeout) resumes from the last version seen
                async for event in client.watch(path, version, params=params):
                    obj = event.get("object", {})
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                    if event.get("type") != "BOOKMARK":
                        apply(str(event.get("type")), obj)
        except asyncio.CancelledError:
            raise
        except Gone:
            log.info("watch expired; listing again", extra={"path": path})
        except Exception as exc:  # the API server or the network failed: list again after a pause
            log.warning("watch failed; listing again", extra={"path": path, "error": str(exc)})
            await asyncio.sleep(backoff)
        on_restart()
