"""The webhook's Prometheus metrics, declared once on a registry that callers may pass in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reviews = Counter(
            "vnode_webhook_reviews", "Admission reviews answered, by result and mode.", ["result", "mode"], registry=r
        )
        self.latency = Histogram(
            "vnode_webhook_review_duration_seconds",
            "Time to answer one admission review, by mode.",
            ["mode"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.certificate_reloads = Counter(
            "vnode_webhook_certificate_reloads", "Serving certificates loaded from disk after a change.", registry=r
        )
        self.configuration_applies = Counter(
            "vnode_webhook_configuration_applies",
            "Server-side applies of the MutatingWebhookConfiguration, by result.",
            ["result"],
            registry=r,
        )
        self.watch_restarts = Counter(
            "vnode_webhook_watch_restarts",
            "Watches re-listed after an error or expiry, by resource.",
            ["resource"],
            registry=r,
        )
        self.namespaces_cached = Gauge("vnode_webhook_namespaces_cached", "Namespaces in the label cache.", registry=r)
        self.namespace_fetches = Counter(
            "vnode_webhook_namespace_fetches",
            "Namespaces read from the API server because the cache did not know them yet.",
            registry=r,
        )
        self.deletion_cost_patches = Counter(
            "vnode_webhook_deletion_cost_patches",
            "Burst pods on virtual nodes given a low pod-deletion-cost, by result.",
            ["result"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
