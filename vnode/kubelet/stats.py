"""Resource usage of a node's pods in the two shapes their readers expect.

``/stats/summary`` is the kubelet's Summary API (``k8s.io/kubelet/pkg/apis/stats/v1alpha1``):
JSON with the node's and each pod's and container's cpu and memory. ``/metrics/resource`` is
the Prometheus text metrics-server (0.6 and later) scrapes: ``container_cpu_usage_seconds_total``,
``container_memory_working_set_bytes``, ``container_start_time_seconds``, the pod and node
sums, and ``resource_scrape_error``, each sample with its timestamp in milliseconds (metrics-server
computes CPU rates from two samples' timestamps). The node's figures are the sums of its pods:
a virtual node has no machine of its own.

The numbers come from a provider's ``SupportsStats.stats``: per container ``cpu_nanocores``,
``memory_working_set_bytes`` and ``cpu_usage_core_nanoseconds``. They are asked for in one call
for all the node's pods, so a provider can use its cloud's batched metrics call (ECI's
``DescribeMultiContainerGroupMetric`` takes 20 instances) rather than a call per pod per scrape;
an instance it has no figures for is left out, and a failed call sets ``resource_scrape_error``.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence
from typing import Any

from vnode.kubelet import pods as pods_mod
from vnode.provider import base

__all__ = ["ContainerUsage", "PodUsage", "collect", "prometheus_text", "summary"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerUsage:
    name: str
    cpu_nanocores: float
    cpu_usage_core_nanoseconds: float
    memory_working_set_bytes: float
    start_time: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class PodUsage:
    pod: pods_mod.PodInstance
    start_time: datetime.datetime
    containers: tuple[ContainerUsage, ...]


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _start_times(pod: pods_mod.PodInstance, default: datetime.datetime) -> tuple[datetime.datetime, dict[str, Any]]:
    status = pod.manifest.get("status") or {}
    started = _parse_time(status.get("startTime")) or default
    per_container = {}
    for item in status.get("containerStatuses") or []:
        running = (item.get("state") or {}).get("running") or {}
        per_container[item.get("name")] = _parse_time(running.get("startedAt")) or started
    return started, per_container


async def collect(
    provider: base.SupportsStats,
    pods: Sequence[pods_mod.PodInstance],
    *,
    node_name: str,
    default_start: datetime.datetime,
) -> tuple[list[PodUsage], bool]:
    """Usage of every pod that has an instance; the flag is true when the provider failed."""
    with_instance = [pod for pod in pods if pod.instance_id]
    if not with_instance:
        return [], False
    try:
        figures = await provider.stats([pod.instance_id for pod in with_instance])
    except Exception as exc:  # any failure is a scrape error, not a crash of the route
        log.warning("stats of %d pods failed: %s", len(with_instance), exc, extra={"node": node_name})
        return [], True
    usages = []
    for pod in with_instance:
        per_container = figures.get(pod.instance_id)
        if per_container is None:
            continue  # gone, or not measured yet: the pod is left out, as the real kubelet does
        started, container_starts = _start_times(pod, default_start)
        containers = tuple(
            ContainerUsage(
                name=name,
                cpu_nanocores=float(values.get("cpu_nanocores", 0.0)),
                cpu_usage_core_nanoseconds=float(values.get("cpu_usage_core_nanoseconds", 0.0)),
                memory_working_set_bytes=float(values.get("memory_working_set_bytes", 0.0)),
                start_time=container_starts.get(name, started),
            )
            for name, values in sorted(per_container.items())
        )
        usages.append(PodUsage(pod, started, containers))
    return usages, False


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu(time: str, nanocores: float, core_nanoseconds: float) -> dict[str, Any]:
    return {"time": time, "usageNanoCores": int(nanocores), "usageCoreNanoSeconds": int(core_nanoseconds)}


def _memory(time: str, working_set: float) -> dict[str, Any]:
    value = int(working_set)
    return {"time": time, "workingSetBytes": value, "usageBytes": value}


def summary(
    node_name: str, node_start: datetime.datetime, usages: Sequence[PodUsage], now: datetime.datetime
) -> dict[str, Any]:
    """The Summary API document."""
    stamp = _rfc3339(now)
    pods = []
    for usage in usages:
        containers = [
            {
                "name": c.name,
                "startTime": _rfc3339(c.start_time),
                "cpu": _cpu(stamp, c.cpu_nanocores, c.cpu_usage_core_nanoseconds),
                "memory": _memory(stamp, c.memory_working_set_bytes),
            }
            for c in usage.containers
        ]
        pods.append(
            {
                "podRef": {"name": usage.pod.name, "namespace": usage.pod.namespace, "uid": usage.pod.uid},
                "startTime": _rfc3339(usage.start_time),
                "containers": containers,
                "cpu": _cpu(
                    stamp,
                    sum(c.cpu_nanocores for c in usage.containers),
                    sum(c.cpu_usage_core_nanoseconds for c in usage.containers),
                ),
                "memory": _memory(stamp, sum(c.memory_working_set_bytes for c in usage.containers)),
            }
        )
    every = [c for usage in usages for c in usage.containers]
    node = {
        "nodeName": node_name,
        "startTime": _rfc3339(node_start),
        "cpu": _cpu(stamp, sum(c.cpu_nanocores for c in every), sum(c.cpu_usage_core_nanoseconds for c in every)),
        "memory": _memory(stamp, sum(c.memory_working_set_bytes for c in every)),
    }
    return {"node": node, "pods": pods}


_HELP = {
    "container_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the container in core-seconds"),
    "container_memory_working_set_bytes": ("gauge", "Current working set of the container in bytes"),
    "container_start_time_seconds": ("gauge", "Start time of the container since unix epoch in seconds"),
    "node_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the node in core-seconds"),
    "node_memory_working_set_bytes": ("gauge", "Current working set of the node in bytes"),
    "pod_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the pod in core-seconds"),
    "pod_memory_working_set_bytes": ("gauge", "Current working set of the pod in bytes"),
    "resource_scrape_error": ("gauge", "1 if there was an error while getting container metrics, 0 otherwise"),
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(usages: Sequence[PodUsage], *, failed: bool, now: datetime.datetime) -> str:
    """The ``/metrics/resource`` exposition, in the metric names and labels of the real kubelet."""
    ms = int(now.timestamp() * 1000)
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    every: list[ContainerUsage] = []
    for usage in usages:
        pod_labels = f'namespace="{_label(usage.pod.namespace)}",pod="{_label(usage.pod.name)}"'
        # The pod's name second, as in the pod's samples: label order means nothing to Prometheus or
        # metrics-server, but virtual-kubelet's e2e suite finds a container's pod at Label[1].
        in_pod = f'pod="{_label(usage.pod.name)}",namespace="{_label(usage.pod.namespace)}"'
        for c in usage.containers:
            labels = f'{{container="{_label(c.name)}",{in_pod}}}'
            samples["container_cpu_usage_seconds_total"].append(f"{labels} {c.cpu_usage_core_nanoseconds / 1e9} {ms}")
            samples["container_memory_working_set_bytes"].append(f"{labels} {int(c.memory_working_set_bytes)} {ms}")
            samples["container_start_time_seconds"].append(f"{labels} {c.start_time.timestamp()} {ms}")
        cpu = sum(c.cpu_usage_core_nanoseconds for c in usage.containers) / 1e9
        memory = int(sum(c.memory_working_set_bytes for c in usage.containers))
        samples["pod_cpu_usage_seconds_total"].append(f"{{{pod_labels}}} {cpu} {ms}")
        samples["pod_memory_working_set_bytes"].append(f"{{{pod_labels}}} {memory} {ms}")
        every.extend(usage.containers)
    samples["node_cpu_usage_seconds_total"].append(f" {sum(c.cpu_usage_core_nanoseconds for c in every) / 1e9} {ms}")
    samples["node_memory_working_set_bytes"].append(f" {int(sum(c.memory_working_set_bytes for c in every))} {ms}")
    samples["resource_scrape_error"].append(f" {1 if failed else 0}")
    lines = []
    for name, (kind, text) in _HELP.items():
        lines.append(f"# HELP {name} [STABLE] {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{sample}" for sample in samples[name])
    return "\n".join(lines) + "\n"
