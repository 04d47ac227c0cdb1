"""The kubelet API of one virtual node: an aiohttp HTTPS server with the kubelet's routes.

The API server calls it for ``kubectl logs``, ``exec``, ``attach`` and ``port-forward``, and metrics-server
scrapes it, at the node's address and ``status.daemonEndpoints.kubeletEndpoint.Port``. Routes:

=====================================================  =========================================
``GET /containerLogs/{ns}/{pod}/{container}``          the provider's ``SupportsLogs``
``GET /exec/{ns}/{pod}[/{uid}]/{container}``           WebSocket (:mod:`.remotecommand`) or SPDY/3.1
                                                       (:mod:`.remotecommand_spdy`): the provider's
                                                       ``SupportsStreamingExec``, else ``SupportsExec``
                                                       (whole stdin, then output)
``GET /attach/{ns}/{pod}[/{uid}]/{container}``         WebSocket or SPDY/3.1: ``SupportsAttach``
``/portForward/{ns}/{pod}[/{uid}]``                    SPDY/3.1, plain or tunnelled in a WebSocket,
                                                       or v4 WebSocket channels (:mod:`.portforward`):
                                                       the provider's ``SupportsPortForward``
``GET /stats/summary``, ``GET /metrics/resource``      the provider's ``SupportsStats``
``GET /pods``                                          the pods bound to this node
``GET /healthz``                                       ``ok``
=====================================================  =========================================

Every request is authenticated and authorized first (:mod:`.auth`). A provider without an
ability answers 501 naming the provider, never an empty success. Errors are plain text, as the
real kubelet's are: the API server copies them into the message ``kubectl`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pathlib
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

from vnode import errors
from vnode.kube import client as kube_client
from vnode.kubelet import auth, certs, portforward, remotecommand, remotecommand_spdy, spdy, spdy_upgrade, stats
from vnode.kubelet import clock as clock_mod
from vnode.kubelet import pods as pods_mod
from vnode.kubelet.logquery import LogQuery, parse_log_query
from vnode.provider import base, streams

__all__ = ["KubeletServer", "LogQuery", "NotSupported", "prepare"]

log = logging.getLogger(__name__)


#: An exec/attach connection as ``work`` sees it: a WebSocket session or a SPDY one.
Remote = remotecommand.Session | remotecommand_spdy.Session


class NotSupported(Exception):
    """The provider lacks the ability a route needs (HTTP 501)."""


def _error_response(exc: errors.ApiError) -> web.Response:
    # 400, not 404, for an instance or container the cloud does not know: the API server keeps
    # a 400's text for kubectl but replaces a 404's with "could not find the requested resource".
    if isinstance(exc, errors.NotFound | errors.InvalidSpec):
        return web.Response(status=400, text=f"{exc.message}\n")
    if isinstance(exc, errors.Retryable):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        return web.Response(status=503, text=f"the cloud is unavailable: {exc.message}\n", headers=headers)
    # Forbidden here is the *cloud* refusing the provider's credentials, not the caller.
    return web.Response(status=502, text=f"the cloud refused: {exc.message}\n")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class KubeletServer:
    """One virtual node's kubelet API. ``run()`` serves until cancelled; ``ready`` is set once
    it listens, and ``port`` is then the port it listens on (useful with ``port=0``)."""

    def __init__(
        self,
        *,
        node_name: str,
        provider: base.Provider,
        pods: pods_mod.PodDirectory,
        reviewer: auth.Reviewer,
        ssl_context: ssl.SSLContext,
        clock: clock_mod.Clock,
        host: str = "0.0.0.0",
        port: int = 10250,
        serving: certs.ServingFiles | None = None,
    ) -> None:
        self.node_name = node_name
        self.provider = provider
        self.pods = pods
        self.reviewer = reviewer
        self.ssl_context = ssl_context
        self.serving = serving  # the certificate it was given or asked for (a rotator starts from it)
        self.clock = clock
        self.host = host
        self.port = port
        self.ready = asyncio.Event()
        self.started_at = clock.now()
        self._sessions: set[asyncio.Task[Any]] = set()
        #: How long ``logs -f`` waits for a first chunk before sending headers anyway.
        self.log_commit_after = 1.0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[auth.middleware(self.reviewer)])
        exec_paths = ("/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}")
        attach_paths = ("/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}")
        routes = [
            web.get("/containerLogs/{ns}/{pod}/{container}", self.container_logs),
            *(web.route(m, p, self.exec) for p in exec_paths for m in ("GET", "POST")),
            *(web.route(m, p, self.attach) for p in attach_paths for m in ("GET", "POST")),
            web.route("*", "/portForward/{ns}/{pod}", self.port_forward),
            web.route("*", "/portForward/{ns}/{pod}/{uid}", self.port_forward),
            web.get("/stats/summary", self.stats_summary),
            web.get("/metrics/resource", self.metrics_resource),
            web.get("/pods", self.list_pods),
            *(web.get(path, self.running_pods) for path in ("/runningpods", "/runningpods/")),
            web.get("/healthz", self.healthz),
        ]
        app.add_routes(routes)
        return app

    async def run(self) -> None:
        # handler_cancellation: a client that leaves (kubectl logs -f interrupted) cancels its
        # handler; without it a follow on a quiet container would wait forever for its next line.
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=5, handler_cancellation=True
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context)
            await site.start()
            if self.port == 0:
                self.port = int(runner.addresses[0][1])
            log.info("kubelet API listening on %s:%d", self.host, self.port, extra={"node": self.node_name})
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            self.ready.clear()
            for task in list(self._sessions):
                task.cancel()
            await runner.cleanup()

    # -- helpers ---------------------------------------------------------------------------

    def _target(self, request: web.Request) -> tuple[pods_mod.PodInstance, str]:
        namespace, name = request.match_info["ns"], request.match_info["pod"]
        container = request.match_info.get("container", "")
        pod = self.pods.lookup(namespace, name)
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{namespace}/{name}" is not on node {self.node_name}\n')
        uid = request.match_info.get("uid")
        if uid and uid != pod.uid:
            raise web.HTTPNotFound(text=f'pod "{namespace}/{name}" with UID {uid} is not on node {self.node_name}\n')
        if container and container not in pod.containers:
            raise web.HTTPNotFound(text=f'container "{container}" is not in pod "{namespace}/{name}"\n')
        if not pod.instance_id:
            raise web.HTTPBadRequest(text=f'pod "{namespace}/{name}" has no running instance yet\n')
        return pod, container

    def _unsupported(self, what: str) -> web.Response:
        return web.Response(status=501, text=f"{what} is not supported by provider {self.provider.name}\n")

    # -- logs ------------------------------------------------------------------------------

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        pod, container = self._target(request)
        provider = self.provider
        if not isinstance(provider, base.SupportsLogs):
            return self._unsupported("container logs")
        options = parse_log_query(request.query, self.clock.now())
        response: web.StreamResponse | None = None
        chunks: Any = None
        first: asyncio.Future[bytes] | None = None
        left = options.limit_bytes
        try:
            chunks = aiter(provider.logs(pod.instance_id, container, options))
            # Wait for the first chunk before answering, so that an unknown container is an HTTP
            # error, not an empty 200; but a follow on a quiet log must not leave the caller
            # without response headers: after a moment, commit to 200 and keep waiting.
            first = asyncio.ensure_future(anext(chunks))
            if options.follow:
                await asyncio.wait({first}, timeout=self.log_commit_after)
                if not first.done():
                    response = await self._start_stream(request)
            try:
                chunk: bytes | None = await first
            except StopAsyncIteration:
                chunk = None
            while chunk is not None:
                if response is None:
                    response = await self._start_stream(request)
                if left is not None:
                    chunk = chunk[:left]
                    left -= len(chunk)
                await response.write(chunk)
                if left == 0:
                    break
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    chunk = None
        except errors.ApiError as exc:
            if response is None:
                return _error_response(exc)
            log.warning("log stream of %s/%s ended: %s", pod.namespace, pod.name, exc, extra={"node": self.node_name})
        finally:
            if first is not None and not first.done():  # the client left while we waited
                first.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await first
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if response is None:
            response = await self._start_stream(request)
        await response.write_eof()
        return response

    async def _start_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        return response

    # -- exec and attach -------------------------------------------------------------------

    async def _open_session(self, request: web.Request) -> tuple[web.StreamResponse, Remote, asyncio.Task[None]] | None:
        """The client's exec/attach connection: a WebSocket (``remotecommand``), or SPDY/3.1 once its
        streams are open (``remotecommand_spdy``); with the task reading it. None: the SPDY client
        did not open its streams in time (the connection is closed)."""
        options = remotecommand.Options.from_query(request.query)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            channel, response = await spdy_upgrade.upgrade(request, remotecommand_spdy.PROTOCOLS)
            remote = remotecommand_spdy.Session(options)
            connection = spdy.Connection(channel, remote.on_stream, name=f"{self.node_name} {request.path}")
            reader = asyncio.create_task(connection.run())
            ready = asyncio.create_task(remote.ready.wait())
            await asyncio.wait(
                {reader, ready}, timeout=remotecommand_spdy.STREAM_WAIT, return_when=asyncio.FIRST_COMPLETED
            )
            if not ready.done():
                ready.cancel()
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
                log.warning("kubelet API %s: the client did not open its streams in time", request.path)
                return None
            return response, remote, reader
        ws = web.WebSocketResponse(protocols=remotecommand.PROTOCOLS, max_msg_size=16 * 1024 * 1024)
        ready_ws = ws.can_prepare(request)
        if not ready_ws.ok or ready_ws.protocol not in remotecommand.PROTOCOLS:
            wanted = request.headers.get("Sec-WebSocket-Protocol", "")
            raise web.HTTPBadRequest(
                text=f"requested protocol(s) {wanted!r} are not supported; supports {list(remotecommand.PROTOCOLS)}\n"
            )
        await ws.prepare(request)
        session = remotecommand.Session(ws, options)
        await session.start()
        return ws, session, asyncio.create_task(session.pump())

    async def _serve_session(
        self, request: web.Request, work: Callable[[Remote], Coroutine[Any, Any, int | None]], what: str
    ) -> web.StreamResponse:
        opened = await self._open_session(request)
        if opened is None:
            return web.Response(status=408)  # not sent: the connection was upgraded and is closed
        response, session, reader = opened
        job = asyncio.create_task(work(session))
        self._sessions.update((reader, job))
        try:
            await asyncio.wait({reader, job}, return_when=asyncio.FIRST_COMPLETED)
            if not job.done():  # the client went away: stop the remote process
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job
                return response
            status: dict[str, Any]
            try:
                code = job.result()
                status = remotecommand.exit_status(code or 0)
            except NotSupported as exc:
                status = remotecommand.failure_status(str(exc), reason="NotImplemented", code=501)
            except errors.NotFound as exc:
                status = remotecommand.failure_status(exc.message, reason="NotFound", code=404)
            except errors.ApiError as exc:
                status = remotecommand.failure_status(f"{what} failed: {exc.message}")
            except ConnectionResetError:
                return response
            await session.finish(status)
            return response
        finally:
            for task in (reader, job):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._sessions.difference_update((reader, job))

    async def exec(self, request: web.Request) -> web.StreamResponse:
        pod, container = self._target(request)
        command = request.query.getall("command", [])  # argv exactly as the client sent it
        if not command:
            raise web.HTTPBadRequest(text="exec needs at least one command parameter\n")
        provider = self.provider
        if not isinstance(provider, (streams.SupportsStreamingExec, base.SupportsExec)):
            return self._unsupported("exec")

        async def work(session: Remote) -> int | None:
            tty = session.options.tty
            if isinstance(provider, streams.SupportsStreamingExec):
                return await provider.exec_stream(pod.instance_id, container, command, session, tty=tty)
            assert isinstance(provider, base.SupportsExec)
            if tty:
                raise NotSupported(
                    f"an interactive terminal (tty) is not supported by provider {provider.name}; run without -t"
                )
            stdin = await session.read_stdin()
            result = await provider.exec(pod.instance_id, container, command, stdin=stdin, tty=False)
            await session.write_stdout(result.stdout)
            await session.write_stderr(result.stderr)
            return result.exit_code

        return await self._serve_session(request, work, "exec")

    async def attach(self, request: web.Request) -> web.StreamResponse:
        pod, container = self._target(request)
        provider = self.provider
        if not isinstance(provider, streams.SupportsAttach):
            return self._unsupported("attach")

        async def work(session: Remote) -> int | None:
            return await provider.attach(pod.instance_id, container, session, tty=session.options.tty)

        return await self._serve_session(request, work, "attach")

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        pod, _ = self._target(request)
        provider = self.provider
        if not isinstance(provider, streams.SupportsPortForward):
            return self._unsupported("port forwarding")

        async def open_port(port: int) -> streams.PortStream:
            return await provider.open_port(pod.instance_id, port)

        target = f"{pod.namespace}/{pod.name}, uid {pod.uid}"
        forwarder = portforward.Forwarder(open_port, target, name=f"{self.node_name}/{pod.namespace}/{pod.name}")
        task = asyncio.current_task()
        if task is not None:  # stopped with the server, like exec sessions
            self._sessions.add(task)
        try:
            return await portforward.serve(request, forwarder)
        finally:
            if task is not None:
                self._sessions.discard(task)

    # -- stats, pods, health ---------------------------------------------------------------

    async def _usage(self) -> tuple[list[stats.PodUsage], bool]:
        provider = self.provider
        if not isinstance(provider, base.SupportsStats):
            raise NotSupported(f"resource usage is not supported by provider {provider.name}")
        return await stats.collect(provider, self.pods.all(), node_name=self.node_name, default_start=self.started_at)

    async def stats_summary(self, request: web.Request) -> web.StreamResponse:
        try:
            usages, _ = await self._usage()
        except NotSupported as exc:
            return web.Response(status=501, text=f"{exc}\n")
        document = stats.summary(self.node_name, self.started_at, usages, self.clock.now())
        return web.json_response(document)

    async def metrics_resource(self, request: web.Request) -> web.StreamResponse:
        try:
            usages, failed = await self._usage()
        except NotSupported as exc:
            return web.Response(status=501, text=f"{exc}\n")
        text = stats.prometheus_text(usages, failed=failed, now=self.clock.now())
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})  # fmt: skip

    async def list_pods(self, request: web.Request) -> web.StreamResponse:
        items = [dict(pod.manifest) for pod in self.pods.all()]
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def running_pods(self, request: web.Request) -> web.StreamResponse:
        """The pods whose instance runs and is not being stopped (virtual-kubelet's provider ``GetPods``)."""
        items = [
            dict(pod.manifest)
            for pod in self.pods.all()
            if pod.instance_id
            and not pod.manifest.get("metadata", {}).get("deletionTimestamp")
            and pod.manifest.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        ]
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")


async def prepare(
    kube: kube_client.Client,
    *,
    node_name: str,
    addresses: Sequence[str],
    provider: base.Provider,
    pods: pods_mod.PodDirectory,
    cert_dir: pathlib.Path,
    clock: clock_mod.Clock,
    serving: certs.ServingFiles | None = None,
    client_ca: pathlib.Path | None = None,
    host: str = "0.0.0.0",
    port: int = 10250,
    anonymous: bool = False,
    as_node: kube_client.Client | None = None,
) -> KubeletServer:
    """Everything a daemon needs before ``run()``: the serving certificate (given, or from a CSR
    for ``addresses``), the client CA (given, or as the API server publishes it) and the reviewer.
    Call it after the Node exists or before, but advertise ``port`` in the Node's
    ``daemonEndpoints`` and ``addresses`` in its status, and declare ``ExtendWebSocketsToKubelet``.
    """
    if serving is None:
        serving = await certs.request_serving_certificate(kube, node_name, addresses, cert_dir, clock=clock,
                                                          as_node=as_node)  # fmt: skip
    ca: pathlib.Path | str = client_ca if client_ca is not None else await certs.client_ca_from_cluster(kube)
    return KubeletServer(
        node_name=node_name,
        provider=provider,
        pods=pods,
        reviewer=auth.Reviewer(kube, node_name, clock=clock, anonymous=anonymous),
        ssl_context=certs.server_ssl_context(serving, ca),
        clock=clock,
        host=host,
        port=port,
        serving=serving,
    )
