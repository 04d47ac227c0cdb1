"""Answer one admission review: parse it, look up the namespace's labels, mutate, respond.

The handler always allows the pod: the webhook only ever adds scheduling hints, so refusing
a pod would be worse than leaving it unchanged (the same reason the configuration's
failurePolicy defaults to Ignore). Malformed reviews raise ``review.MalformedReview`` for the
server to turn into an HTTP 400.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from vnode.webhook import metrics, mutation, namespaces, review

log = logging.getLogger(__name__)

# Namespace labels that make the API server's namespaceSelector call us. If the cache shows
# none of them while the pod's own labels do not explain the call either, the cache is behind.
_SELECTING = (
    (mutation.INJECTION_LABEL, ("enabled", "burst")),
    *((forced.key, (forced.value,)) for forced in mutation.FORCE_LABELS),
)


def _selects(labels: Mapping[str, str]) -> bool:
    return any(labels.get(key) in values for key, values in _SELECTING)


class Handler:
    def __init__(self, labels: namespaces.NamespaceLabels, *, metrics: metrics.Metrics) -> None:
        self._labels = labels
        self._metrics = metrics

    async def answer(self, body: bytes) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            request = review.parse(body)
        except review.MalformedReview as exc:
            self._metrics.reviews.labels(result="malformed", mode=mutation.Mode.NONE).inc()
            log.warning("malformed admission review", extra={"error": str(exc)})
            raise
        if not request.is_pod_create:
            self._metrics.reviews.labels(result="ignored", mode=mutation.Mode.NONE).inc()
            return review.response(request.uid)
        labels = await self._namespace_labels(request)
        outcome = mutation.mutate(request.object, request.namespace, labels)
        elapsed = time.perf_counter() - started
        self._metrics.reviews.labels(result=outcome.result, mode=outcome.mode).inc()
        self._metrics.latency.labels(mode=outcome.mode).observe(elapsed)
        meta = request.object.get("metadata") or {}
        log.info(
            "pod reviewed",
            extra={
                "namespace": request.namespace,
                "pod": meta.get("name") or meta.get("generateName", "") + "*",
                "mode": str(outcome.mode),
                "result": str(outcome.result),
                "reason": outcome.reason,
                "ops": len(outcome.patch),
                "dry_run": request.dry_run,
                "ms": round(elapsed * 1000, 2),
            },
        )
        return review.response(request.uid, outcome.patch, outcome.warnings)

    async def _namespace_labels(self, request: review.Request) -> Mapping[str, str]:
        labels = self._labels.cached(request.namespace)
        pod_labels = (request.object.get("metadata") or {}).get("labels") or {}
        if labels is None or (not _selects(labels) and mutation.forced_by(pod_labels) is None):
            # Unknown namespace, or the API server matched a label our watch has not shown yet.
            labels = await self._labels.fetch(request.namespace)
        return labels or {}
