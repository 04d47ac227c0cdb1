"""The Node object and its Lease: registering, heartbeating, and saying Ready only while the cloud answers.

Two heartbeats, as the kubelet does since Kubernetes 1.17: the Lease in ``kube-node-lease``
renewed every 10 s (cheap, what the node lifecycle controller watches; ``ownership.Ownership``
renews it, as it is also the node's one-owner lock), and, here, the full node status written
when something changed and at least once a minute. Others own parts of the
Node too: ``kubectl cordon`` sets ``spec.unschedulable``, admins add labels, taints and
annotations. vnode therefore never replaces the Node: it merge-patches only the labels it
owns, adds its taint next to the others (guarded by resourceVersion, since taints are a
list without a merge key), and patches ``status`` alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any

from vnode import __version__, errors, models, settings, waits
from vnode.kube import api, client
from vnode.node import resources
from vnode.provider import base

__all__ = ["KUBE_VERSION", "NOT_REACHED", "TAINT_KEY", "CloudHealth", "NodeController", "labels", "node_status"]

log = logging.getLogger(__name__)

TAINT_KEY = "virtual-kubelet.io/provider"
NOT_REACHED = "ProviderNotReached"  # Ready's reason until the first listing of the cloud succeeded
KUBE_VERSION = "v1.37.2"  # the API level vnode speaks; nodeInfo reports it with vnode's own version


@dataclasses.dataclass
class CloudHealth:
    """Whether the cloud answered lately; written by the pod controller's listing, read here. Not
    until one authenticated call has succeeded: a daemon with a wrong key, or one that restarts,
    never says Ready on the strength of having started."""

    ok: bool = False
    reason: str = NOT_REACHED
    message: str = "no call to the cloud has succeeded yet"
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def set(self, ok: bool, reason: str = "", message: str = "") -> None:
        if (ok, reason) != (self.ok, self.reason):
            self.changed.set()
        self.ok, self.reason, self.message = ok, reason, message


def labels(config: settings.Settings) -> dict[str, str]:
    region = config.region
    return {
        "type": "virtual-kubelet",
        "kubernetes.io/role": "agent",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": config.node_name,
        "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        "topology.kubernetes.io/region": region,
        "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
        "vnode.io/provider": config.provider,
    }


def _gib(value: float) -> str:
    return f"{int(value * 1024)}Mi"


def node_status(
    config: settings.Settings, quota: models.Quota, health: CloudHealth, now: datetime.datetime
) -> dict[str, Any]:
    """The node's status: capacity bounded by the cloud's quota, the five conditions, endpoints, nodeInfo."""
    cpu = min(filter(None, (config.capacity_cpu, config.quota_cpu, quota.cpu)))
    memory = min(filter(None, (config.capacity_memory_gib, config.quota_memory_gib, quota.memory_gib)))
    pods = min(filter(None, (config.capacity_pods, config.quota_pods, quota.pods)))
    capacity = {"cpu": f"{cpu:g}", "memory": _gib(memory), "pods": str(pods), "ephemeral-storage": "1Ti"}
    if config.gpu_capacity:
        capacity[resources.GPU] = str(config.gpu_capacity)
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    if health.ok:
        ready = condition("Ready", "True", "KubeletReady", f"vnode is ready; the {config.provider} cloud answers")
    else:
        ready = condition("Ready", "False", health.reason or "ProviderUnreachable", health.message)
    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            ready,
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "the cloud has no memory pressure"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "the cloud has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "the cloud has no PID pressure"),
            condition("NetworkUnavailable", "False", "RouteCreated", "instances get their network from the cloud"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        # The API server then proxies exec/attach WebSockets to us as they are (Kubernetes 1.36+),
        # instead of translating them to SPDY, which vnode's kubelet API does not speak.
        "declaredFeatures": ["ExtendWebSocketsToKubelet"],
        "nodeInfo": {
            "kubeletVersion": f"{KUBE_VERSION}-vnode-{__version__}",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "containerRuntimeVersion": f"{config.provider}://vnode-{__version__}",
            "osImage": f"vnode {__version__} ({config.provider})",
            "kernelVersion": "",
            "machineID": config.node_name,
            "systemUUID": config.node_name,
            "bootID": "",
        },
    }


def _without_times(status: dict[str, Any]) -> dict[str, Any]:
    copy = dict(status)
    copy["conditions"] = [
        {k: v for k, v in c.items() if k not in ("lastHeartbeatTime", "lastTransitionTime")}
        for c in status["conditions"]
    ]
    return copy


class NodeController:
    """Registers the node and keeps its status fresh. ``ready`` is set once it is registered."""

    def __init__(
        self,
        kube: client.Client,
        provider: base.Provider,
        config: settings.Settings,
        *,
        health: CloudHealth,
        clock: Callable[[], datetime.datetime],
        may_write: Callable[[], bool] = lambda: True,
    ) -> None:
        self.kube = kube
        # The status is written only while ``may_write()`` (``ownership.Ownership`` holds the Lease).
        self.may_write = may_write
        self.provider = provider
        self.config = config
        self.health = health
        self.clock = clock
        self.ready = asyncio.Event()
        self.quota = models.Quota()
        self.uid = ""
        self._written: dict[str, Any] | None = None
        self._written_at = 0.0

    async def run(self) -> None:
        await self._with_retry(self.register)
        self.ready.set()
        await self._status_loop()

    async def _with_retry(self, step: Callable[[], Any]) -> None:
        delay = 0.2
        while True:
            try:
                await step()
                return
            except errors.ApiError as exc:
                log.warning("node %s: %s; again in %.1fs", step.__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _refresh_quota(self) -> None:
        try:
            self.quota = await self.provider.quota()
        except errors.ApiError as exc:
            log.warning("cloud quota unknown: %s", exc)

    async def register(self) -> None:
        """Create the Node if absent; otherwise add what vnode owns without touching the rest."""
        await self._refresh_quota()
        mine = labels(self.config)
        taint = {"key": TAINT_KEY, "value": self.config.taint, "effect": "NoSchedule"}
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.config.node_name, "labels": mine},
            "spec": {"taints": [taint]},
        }
        try:
            created = await api.create_node(self.kube, body)
            self.uid = created.metadata.uid
            log.info("node registered")
        except errors.Conflict:
            node = await api.read(self.kube, api.NODES, self.config.node_name)
            self.uid = node.metadata.uid
            patch: dict[str, Any] = {"metadata": {"labels": mine, "resourceVersion": node.metadata.resource_version}}
            ours = [t for t in node.spec.taints if t.get("key") == TAINT_KEY]
            if ours != [taint]:
                others = [t for t in node.spec.taints if t.get("key") != TAINT_KEY]
                patch["spec"] = {"taints": [*others, taint]}
            if patch.get("spec") or any(node.metadata.labels.get(k) != v for k, v in mine.items()):
                await api.patch_node(self.kube, self.config.node_name, patch)  # Conflict: retried from a fresh read
            log.info("node exists; adopted it")
        self._written = None
        if self.may_write():
            await self.write_status()

    async def write_status(self, *, force: bool = False) -> None:
        now = self.clock()
        wanted = node_status(self.config, self.quota, self.health, now)
        sent = _without_times(wanted)
        loop = asyncio.get_running_loop()
        due = loop.time() - self._written_at >= self.config.node_status_period
        if not force and not due and self._written is not None and sent == self._written:
            return
        if self._written is not None and sent["conditions"] == self._written["conditions"]:
            # Unchanged conditions keep their transition time (the API server merges by type).
            for c in wanted["conditions"]:
                c.pop("lastTransitionTime")
        try:
            await api.patch_node_status(self.kube, self.config.node_name, {"status": wanted})
        except errors.NotFound:
            log.warning("node was deleted; registering it again")
            await self.register()
            return
        # What was sent, not the health now: a change during the patch must not pass for written.
        self._written, self._written_at = sent, loop.time()

    async def _status_loop(self) -> None:
        period = self.config.node_status_period
        quota_due = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await waits.event(self.health.changed, min(period, 10.0))
            # Cleared on waking, not before waiting: a change during the write below wakes the next wait.
            self.health.changed.clear()
            if not self.may_write():
                self._written = None  # write in full as soon as we may
                continue
            if loop.time() >= quota_due:
                await self._refresh_quota()
                quota_due = loop.time() + period
            try:
                await self.write_status()
            except errors.ApiError as exc:
                log.warning("node status not written: %s", exc)
