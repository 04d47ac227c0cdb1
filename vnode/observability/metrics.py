"""Every Prometheus metric of the daemon, declared once on a registry that the caller passes in.

No module-level collectors: two daemons in one test process get two registries and never
clash, and tests read values from their own registry.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import prometheus_client as prom

__all__ = ["Metrics", "process_registry"]


def process_registry() -> prom.CollectorRegistry:
    """A registry for the one daemon of a process (``vnode run``), with the process's own metrics.

    prometheus_client's ``process_*`` (resident memory, CPU seconds, open files), ``python_gc_*``
    and ``python_info``, and the blocks CPython's allocator holds for live objects: at equal load a
    leak grows that count, while RSS also grows with the allocator's fragmentation after a burst.
    """
    registry = prom.CollectorRegistry()
    prom.ProcessCollector(registry=registry)
    prom.GCCollector(registry=registry)
    prom.PlatformCollector(registry=registry)
    blocks = prom.Gauge(
        "vnode_python_allocated_blocks",
        "Memory blocks CPython's allocator holds for live objects (sys.getallocatedblocks).",
        registry=registry,
    )
    blocks.set_function(sys.getallocatedblocks)
    return registry


class Metrics:
    def __init__(self, registry: prom.CollectorRegistry, *, node: str) -> None:
        self.registry = registry
        self.node = node
        self.pods = prom.Gauge("vnode_pods", "Pods bound to this node, by phase.", ["node", "phase"], registry=registry)
        self.reconcile_seconds = prom.Histogram(
            "vnode_reconcile_seconds",
            "Time to reconcile one pod (one task of the work queue).",
            ["node"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.cloud_calls = prom.Counter(
            "vnode_cloud_calls_total",
            "Calls to the cloud provider, by action and result.",
            ["node", "action", "result"],
            registry=registry,
        )
        self.throttles = prom.Counter(
            "vnode_cloud_throttles_total",
            "Cloud calls refused by rate limiting.",
            ["node", "action"],
            registry=registry,
        )
        self.retries = prom.Counter(
            "vnode_retries_total",
            "Pod reconciles scheduled again after a failure, by cause.",
            ["node", "reason"],
            registry=registry,
        )
        self.orphans_removed = prom.Counter(
            "vnode_orphans_removed_total",
            "Instances deleted because their pod no longer exists.",
            ["node"],
            registry=registry,
        )
        self.queue_depth, self.turns_waiting = _backlog(registry)
        self.status_writes = prom.Counter(
            "vnode_pod_status_writes_total", "Pod status patches sent to the API server.", ["node"], registry=registry
        )
        self.cost, self.cost_total = _cost(registry)
        self.spot_saved, self.spot_instances = _spot(registry)
        self.cloud_up = prom.Gauge(
            "vnode_cloud_up", "1 while the last listing of the cloud succeeded.", ["node"], registry=registry
        )
        self.reclaims = prom.Counter(
            "vnode_reclaims_total",
            "Instances the cloud takes back (spot), by step: reclaim-notice (the pod marked DisruptionTarget), "
            "evicted (the pod deleted or evicted early for its controller to replace), eviction-refused (a "
            "PodDisruptionBudget refused the eviction a pod asked for; asked again), reclaimed (the pod Failed).",
            ["node", "step"],
            registry=registry,
        )
        self.phase = prom.Gauge(
            "vnode_daemon_phase",
            "1 for the phase of its life the daemon is in (starting, serving, draining...), 0 for the others.",
            ["node", "phase"],
            registry=registry,
        )

    def enter_phase(self, current: str, phases: Iterable[str]) -> None:
        """The daemon is in ``current`` now, of all its ``phases``: every phase has a sample, one of them 1."""
        for phase in phases:
            self.phase.labels(self.node, phase).set(1 if phase == current else 0)

    def cloud_call(self, action: str, result: str) -> None:
        self.cloud_calls.labels(self.node, action, result).inc()
        if result.startswith("Throttl"):
            self.throttles.labels(self.node, action).inc()


def _backlog(registry: prom.CollectorRegistry) -> tuple[prom.Gauge, prom.Gauge]:
    """Work waiting: pods in the work queue, and calls waiting in line for the cloud's rate limit."""
    queue = prom.Gauge(
        "vnode_work_queue_depth", "Pods with reconcile work queued or due later.", ["node"], registry=registry
    )
    turns = prom.Gauge(
        "vnode_cloud_turns_waiting",
        "Cloud calls waiting in line for a token of the client-side rate limit, by action (create, delete).",
        ["node", "action"],
        registry=registry,
    )
    return queue, turns


def _cost(registry: prom.CollectorRegistry) -> tuple[prom.Gauge, prom.Counter]:
    """The node's estimated cost: a gauge of it all, and a counter by namespace and owner."""
    node_total = prom.Gauge(
        "vnode_cost_dollars",
        "Estimated cost so far of this node's instances (rounded size, per second).",
        ["node"],
        registry=registry,
    )
    by_owner = prom.Counter(
        "vnode_workload_cost_dollars",  # exposed as vnode_workload_cost_dollars_total
        "Estimated cost of this node's instances, by their pods' namespace and owning workload "
        "(Kind/name; (none) for a bare pod, (other) past the bound on label pairs).",
        ["node", "namespace", "owner"],
        registry=registry,
    )
    return node_total, by_owner


def _spot(registry: prom.CollectorRegistry) -> tuple[prom.Gauge, prom.Gauge]:
    """What the node's spot instances saved against the list price, and how many are live."""
    saved = prom.Gauge(
        "vnode_spot_saved_dollars",
        "Estimated saving so far of this node's spot instances: their list price less the market price "
        "they were bought at, over the same seconds.",
        ["node"],
        registry=registry,
    )
    live = prom.Gauge(
        "vnode_spot_instances",
        "Live instances of this node the cloud may take back (spot).",
        ["node"],
        registry=registry,
    )
    return saved, live
