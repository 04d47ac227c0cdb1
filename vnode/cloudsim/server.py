"""The simulator's HTTP server: the ECI endpoint at ``POST /``, the admin API under ``/admin/``.

One aiohttp application on one port. ``Server.run()`` serves until cancelled and sets
``ready`` once listening. A background task applies due lifecycle steps and flushes the
store every ``tick`` seconds; mutating calls flush before they answer (group commit).

Hooks for what comes next: ``GET /`` is free for the web console (``add_routes``), and a
dialect that needs its own listener (ACI serves HTTPS with its own CA) adds a site with
``add_site`` before ``run`` (``aci.mount`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable

from aiohttp import web

from vnode.cloudsim import admin, eci
from vnode.cloudsim import cloud as cloudmod


class Server:
    def __init__(self, cloud: cloudmod.Cloud, *, host: str = "127.0.0.1", port: int = 0, tick: float = 0.2) -> None:
        self.cloud = cloud
        self.host = host
        self.requested_port = port
        self.port = 0
        self.tick_interval = tick
        self.ready = asyncio.Event()
        self.eci = eci.Eci(cloud, commit=self.commit)
        self.admin = admin.Admin(cloud, commit=self.commit)
        self.app = web.Application(client_max_size=4 * 2**20)
        self.app.router.add_post("/", self.eci.handle)
        self.app.router.add_get("/exec/", self.eci.exec_sessions.socket)
        self.app.add_routes(self.admin.routes())
        self._extra_sites: list[tuple[web.Application, str, int, ssl.SSLContext | None]] = []
        self.extra_ports: list[int] = []
        self._flush: asyncio.Future[None] | None = None

    def add_routes(self, routes: Iterable[web.RouteDef]) -> None:
        """More routes on the main port (the web console at ``GET /``)."""
        self.app.add_routes(list(routes))

    def add_site(self, app: web.Application, *, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        """Another listener on ``host`` (e.g. the ACI dialect over HTTPS); its port lands in ``extra_ports``."""
        self._extra_sites.append((app, self.host, port, ssl_context))

    async def commit(self) -> None:
        """Return once everything changed so far is written (shared by concurrent callers)."""
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.create_future()
            loop.call_soon(self._do_flush)
        await asyncio.shield(self._flush)

    def _do_flush(self) -> None:
        future, self._flush = self._flush, None
        assert future is not None
        try:
            self.cloud.store.flush()
        except Exception as exc:  # the callers see it
            future.set_exception(exc)
        else:
            future.set_result(None)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            self.cloud.tick()
            if self.cloud.store.pending:
                self.cloud.store.flush()

    async def run(self) -> None:
        runners: list[web.AppRunner] = []
        ticker: asyncio.Task[None] | None = None
        try:
            runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, self.host, self.requested_port, reuse_address=True)
            await site.start()
            self.port = _bound_port(runner)
            self.eci.port = self.port
            for app, host, port, ssl_context in self._extra_sites:
                extra = web.AppRunner(app, access_log=None, handle_signals=False)
                await extra.setup()
                runners.append(extra)
                await web.TCPSite(extra, host, port, ssl_context=ssl_context).start()
                self.extra_ports.append(_bound_port(extra))
            ticker = asyncio.create_task(self._ticker())
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            for runner in reversed(runners):
                await _close(runner)
            self.cloud.store.flush()


async def _close(runner: web.AppRunner) -> None:
    """Stop serving. Connections whose client never says goodbye (TLS above all) are aborted, not
    awaited: asyncio would otherwise wait its SSL shutdown timeout, 30 s, for each."""
    server = runner.server
    transports = [h.transport for h in server.connections] if server is not None else []
    await runner.cleanup()
    for transport in transports:
        if transport is not None:
            transport.abort()


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("the server is not listening")
