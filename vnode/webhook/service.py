"""The running webhook: TLS, the HTTPS server, the namespace cache, registration and the deletion-cost loop.

``Webhook.run()`` serves until cancelled; ``ready`` is set once the server listens, the
namespace cache has listed, and the configuration is applied. Background loops:

* certificates: every ``cert_check_interval`` the files are checked (self-managed ones
  re-issued when due); a change reloads the server's SSLContext in place, and a changed CA
  bundle is applied to the configuration at once;
* registration: the configuration is applied again every ``resync_interval``, which repairs
  a deleted or edited configuration;
* deletion cost (optional): see ``deletion_cost``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib

from aiohttp import web

from vnode.kube import client
from vnode.webhook import admission, certs, deletion_cost, metrics, namespaces, registration, server

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SelfManagedTLS:
    """Make our own CA (in ``cert_dir``, or shared through the Secret ``ca_secret``) and serving certificate."""

    cert_dir: pathlib.Path
    hosts: tuple[str, ...]
    ca_secret: tuple[str, str] | None = None  # (namespace, name)


@dataclasses.dataclass(frozen=True)
class GivenTLS:
    """Serve files another issuer (cert-manager) writes and rotates."""

    files: certs.Files


@dataclasses.dataclass(frozen=True)
class Settings:
    tls: SelfManagedTLS | GivenTLS
    host: str = "127.0.0.1"
    port: int = 8443
    registration: registration.Registration | None = None  # None: someone else registers the webhook
    deletion_cost: int | None = -100  # None: no deletion-cost loop in this replica
    cert_check_interval: float = 10.0
    resync_interval: float = 300.0


class Webhook:
    def __init__(
        self,
        settings: Settings,
        *,
        kube: client.Client | None,
        labels: namespaces.NamespaceLabels | None = None,
        stats: metrics.Metrics | None = None,
    ) -> None:
        """``kube`` None runs without an API server: then ``labels`` must be given and nothing is registered."""
        if kube is None and (labels is None or settings.registration or settings.deletion_cost is not None):
            raise ValueError("without an API client, give namespace labels and turn registration and deletion cost off")
        self.settings = settings
        self.kube = kube
        self.metrics = stats or metrics.Metrics()
        self._cache: namespaces.NamespaceCache | None = None
        if labels is None:
            assert kube is not None
            self._cache = namespaces.NamespaceCache(kube, metrics=self.metrics)
            labels = self._cache
        self.labels: namespaces.NamespaceLabels = labels
        self.tls: certs.ServingContext | None = None
        self.port: int | None = None
        self.ready = asyncio.Event()
        self._applied_bundle: bytes | None = None

    async def run(self) -> None:
        self.tls = certs.ServingContext(await self._prepare_tls())
        handler = admission.Handler(self.labels, metrics=self.metrics)
        app = server.make_app(handler, self.metrics, is_ready=self.ready.is_set)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port, ssl_context=self.tls.context)
        try:
            await site.start()
            self.port = runner.addresses[0][1]
            log.info("webhook serving", extra={"address": f"https://{self.settings.host}:{self.port}"})
            async with asyncio.TaskGroup() as group:
                if self._cache is not None:
                    group.create_task(self._cache.run())
                    await self._cache.ready.wait()
                group.create_task(self._watch_certificates())
                if self.settings.registration is not None:
                    await self._register_until_done()
                    group.create_task(self._keep_registered())
                if self.settings.deletion_cost is not None and self.kube is not None:
                    loop = deletion_cost.DeletionCost(self.kube, metrics=self.metrics, cost=self.settings.deletion_cost)
                    group.create_task(loop.run())
                self.ready.set()
        finally:
            await runner.cleanup()

    async def _prepare_tls(self) -> certs.Files:
        tls = self.settings.tls
        if isinstance(tls, GivenTLS):
            return tls.files
        ca = None
        if tls.ca_secret is not None:
            if self.kube is None:
                raise ValueError("a CA shared through a Secret needs an API client")
            ca = await registration.shared_ca(self.kube, *tls.ca_secret)
        return await asyncio.to_thread(certs.ensure_self_managed, tls.cert_dir, tls.hosts, ca)

    async def _register(self) -> None:
        assert self.tls is not None
        assert self.kube is not None
        assert self.settings.registration is not None
        bundle = self.tls.ca_bundle()
        try:
            await registration.apply(self.kube, self.settings.registration, bundle)
        except Exception:
            self.metrics.configuration_applies.labels("error").inc()
            raise
        self.metrics.configuration_applies.labels("applied").inc()
        if bundle != self._applied_bundle:
            log.info("webhook configuration applied", extra={"configuration": self.settings.registration.name})
        self._applied_bundle = bundle

    async def _register_until_done(self, backoff: float = 1.0) -> None:
        while True:
            try:
                return await self._register()
            except Exception as exc:  # the API server is not there yet, or refused: log and retry
                log.warning("could not apply the webhook configuration; retrying", extra={"error": str(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _keep_registered(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            try:
                await self._register()
            except Exception as exc:  # the API server failed: the next resync tries again
                log.warning("could not apply the webhook configuration", extra={"error": str(exc)})

    async def _watch_certificates(self) -> None:
        assert self.tls is not None
        while True:
            await asyncio.sleep(self.settings.cert_check_interval)
            try:
                if isinstance(self.settings.tls, SelfManagedTLS):
                    await self._prepare_tls()  # re-issues the serving certificate when due
                changed = self.tls.reload_if_changed()
            except Exception as exc:  # a half-written rotation: keep serving the old pair, look again later
                log.warning("could not load the rotated certificate yet", extra={"error": str(exc)})
                continue
            if not changed:
                continue
            self.metrics.certificate_reloads.inc()
            log.info("serving certificate reloaded", extra={"cert": str(self.tls.files.cert)})
            if self.settings.registration is not None and self.tls.ca_bundle() != self._applied_bundle:
                try:
                    await self._register()
                except Exception as exc:  # the resync loop tries again
                    log.warning("could not apply the new CA bundle", extra={"error": str(exc)})
