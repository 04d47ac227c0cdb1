"""The HTTPS endpoints: ``POST /mutate`` for the API server, ``/healthz``, ``/readyz``, ``/metrics``.

A review that cannot be parsed gets HTTP 400 with a JSON ``{"error": ...}`` naming the
problem; an unexpected failure gets 500. Neither stops the server: each request stands alone.
A body over ``MAX_BODY`` gets 413 before it is read; a body that does not arrive within
``BODY_SECONDS`` gets 408 (the API server gives a review at most 30 s, and sends it at once), so
a slow or stalled client holds no handler for long; every request is its own task, so one never
keeps another waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from vnode.webhook import admission, metrics, review

log = logging.getLogger(__name__)

# Pods are at most ~1.5 MB in etcd; a review carries one (plus an old object on UPDATE).
MAX_BODY = 4 * 1024 * 1024
BODY_SECONDS = 10.0  # to receive a review's body


def make_app(handler: admission.Handler, stats: metrics.Metrics, *, is_ready: Callable[[], bool]) -> web.Application:
    async def mutate(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(BODY_SECONDS):
                body = await request.read()
        except TimeoutError:
            return web.json_response(
                {"error": f"the review's body did not arrive within {BODY_SECONDS:g} s"}, status=408
            )
        try:
            answer = await handler.answer(body)
        except review.MalformedReview as exc:
            return web.json_response({"error": f"malformed AdmissionReview: {exc}"}, status=400)
        except Exception:
            stats.reviews.labels(result="error", mode="none").inc()
            log.exception("admission review failed")
            return web.json_response({"error": "internal error while reviewing; see the webhook's log"}, status=500)
        return web.json_response(answer)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="ok\n")
        return web.Response(text="starting\n", status=503)

    async def expose(request: web.Request) -> web.Response:
        response = web.Response(body=stats.exposition())
        response.headers["Content-Type"] = metrics.CONTENT_TYPE
        return response

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", expose)
    return app
