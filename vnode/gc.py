"""``vnode gc``: delete the cloud instances of pods and nodes that no longer exist.

A replica that died hard and whose ordinal never came back leaves instances that no
controller manages; so does an uninstall that skipped its hook. This command finds them:
every instance tagged with this cluster's id whose pod (by UID) or whose node no longer
exists in the API. It touches nothing tagged with another cluster id, and ``--dry-run``
only prints what it would delete.

Why it is safe without a cache: instances are listed *before* pods and nodes, with fresh
(quorum) reads. A pod exists before its instance does, so an instance in the first listing
whose pod is missing from the second belongs to a pod that is gone. (The daemon's own
orphan collection, in contrast, must wait for its watch cache to sync.)

``--scale-down NAMESPACE/NAME`` is for uninstall (the Helm chart's pre-delete hook): it first
scales the StatefulSet to 0 and waits until its replicas have drained their nodes and exited,
so that nothing is left for the collection but what a crash left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import sys
import time
from collections.abc import Callable

import msgspec

from vnode import credentials, errors, models, settings, tokenbucket
from vnode.kube import api, client, config, extra
from vnode.node import drain, orphans
from vnode.provider import base, registry

__all__ = [
    "Abandoned",
    "Orphan",
    "collect",
    "collect_periodically",
    "configure",
    "drain_abandoned",
    "find_orphans",
    "run",
]

log = logging.getLogger(__name__)

ABANDONED_EVERY = 10.0  # seconds between looks for the nodes of dead scaled-away replicas


class _Meta(msgspec.Struct, rename="camel", kw_only=True):
    name: str = ""
    namespace: str = ""
    uid: str = ""


class _Spec(msgspec.Struct, rename="camel", kw_only=True):
    node_name: str = ""


class _Thin(msgspec.Struct, kw_only=True):
    """A pod or node reduced to what gc compares: cheap to decode at 30,000 pods."""

    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _Spec = msgspec.field(default_factory=_Spec)


@dataclasses.dataclass(frozen=True)
class Orphan:
    instance: models.InstanceState
    reason: str  # "pod gone" | "node gone"

    def describe(self) -> str:
        tags = self.instance.tags
        pod = f"{tags.get(models.TAG_NAMESPACE, '?')}/{tags.get(models.TAG_NAME, '?')}"
        return f"{self.instance.id} pod={pod} node={tags.get(models.TAG_NODE, '?')} ({self.reason})"


async def find_orphans(
    kube: client.Client, provider: base.Provider, cluster_id: str, *, pods: bool = True
) -> list[Orphan]:
    """The instances of this cluster whose pod or node does not exist (instances listed first).

    With ``pods=False`` only instances of nodes that are gone: a listing of nodes is cheap, one of
    every pod is not, and a live node's own daemon already collects the instances of its gone pods.
    """
    instances = await provider.list({models.TAG_CLUSTER: cluster_id})
    pod_uids: set[str] | None = None
    if pods:
        pod_uids = {p.metadata.uid for p in (await api.list_all(kube, api.PODS.decoded_as(_Thin))).items}
    nodes = {n.metadata.name for n in (await api.list_all(kube, api.NODES.decoded_as(_Thin))).items}
    known = orphans.Known(cluster_id, None, live_pods=pod_uids, live_nodes=nodes)
    found = []
    for instance in instances:
        decision = orphans.decide(instance.tags, known)
        if decision.delete:
            found.append(Orphan(instance, decision.reason))
    return found


async def collect(
    kube: client.Client,
    provider: base.Provider,
    cluster_id: str,
    *,
    dry_run: bool = False,
    grace_seconds: float = 10,
    pods: bool = True,
) -> tuple[list[Orphan], list[str]]:
    """Delete the orphans (unless ``dry_run``); returns them and the ids whose deletion failed."""
    orphans = await find_orphans(kube, provider, cluster_id, pods=pods)
    failed: list[str] = []
    if dry_run:
        return orphans, failed
    for orphan in orphans:
        try:
            with tokenbucket.waiting_for_turns():  # no queue of pods here: each delete waits for its turn
                await provider.delete(orphan.instance.id, grace_seconds=grace_seconds)
        except errors.ApiError as exc:
            log.warning("could not delete instance %s: %s", orphan.instance.id, exc)
            failed.append(orphan.instance.id)
    return orphans, failed


async def collect_periodically(
    kube: client.Client,
    provider: base.Provider,
    cluster_id: str,
    *,
    interval: float,
    should_run: Callable[[], bool],
    abandoned: Abandoned | None = None,
) -> None:
    """A surviving replica's share of gc: every ``interval``, delete the instances of nodes that are gone.

    For the daemon of one replica (ordinal 0, say, while it holds its node's Lease:
    ``should_run``), so that the instances of a replica that died and never came back do not
    wait for an operator's ``vnode gc``. With ``abandoned``, it also drains the nodes of
    scaled-away replicas that died before draining, looking every ``ABANDONED_EVERY`` seconds at
    most (a few reads: the StatefulSet, its replicas' Nodes and Leases), so that a scale-in does
    not wait for the collection's interval. Runs until cancelled; errors are logged and retried.
    """
    step = min(interval, ABANDONED_EVERY) if abandoned is not None else interval
    waited = 0.0
    draining: dict[str, asyncio.Task[bool]] = {}  # abandoned node -> its drain, each on its own
    try:
        while True:
            await asyncio.sleep(step)
            waited += step
            if not should_run():
                continue
            if abandoned is not None:
                await _take_over(kube, provider, cluster_id, abandoned, draining)
            if waited < interval:
                continue
            waited = 0.0
            try:
                orphans, failed = await collect(kube, provider, cluster_id, pods=False)
            except errors.ApiError as exc:
                log.warning("collecting the instances of gone nodes failed: %s", exc)
                continue
            for orphan in orphans:
                if orphan.instance.id not in failed:
                    log.info("deleted instance %s", orphan.describe())
    finally:
        _cancel(draining)


def _cancel(draining: dict[str, asyncio.Task[bool]]) -> None:
    for task in draining.values():
        task.cancel()


async def _take_over(
    kube: client.Client,
    provider: base.Provider,
    cluster_id: str,
    abandoned: Abandoned,
    draining: dict[str, asyncio.Task[bool]],
) -> None:
    """Start draining each abandoned node not being drained yet, each in a task of its own: a node found
    while another is draining starts at once (the soak's scale-in 3 -> 1: the second dead replica's node
    waited 3 minutes for the first one's drain, its pods stuck Terminating and its instances leaked)."""
    for node, task in list(draining.items()):
        if task.done():
            del draining[node]
            if not task.cancelled() and task.exception() is not None:
                log.warning("draining abandoned node %s failed: %s", node, task.exception())
    try:
        found = await abandoned.find()
    except errors.ApiError as exc:
        log.warning("looking for abandoned nodes failed: %s", exc)
        return
    for node in found:
        if node not in draining:
            draining[node] = asyncio.create_task(_drain_abandoned_node(kube, provider, cluster_id, node))


async def _drain_abandoned_node(
    kube: client.Client, provider: base.Provider, cluster_id: str, node: str, seconds: float = 300.0
) -> bool:
    """Drain ``node`` for its dead controller; True if it is drained and deleted."""
    log.warning("node %s was scaled away but never drained (its controller died); draining it", node)
    result = await drain.drain(
        kube, provider, node=node, cluster_id=cluster_id, deadline=time.monotonic() + seconds, kubelet_gone=True
    )
    return result.complete


class Abandoned:
    """Nodes of a StatefulSet's scaled-away ordinals whose controller died before draining them.

    A replica drains its own node on SIGTERM; one killed before it could (a SIGKILL, a crash,
    SIGTERM before its signal handler existed) leaves a NotReady node whose pods keep running
    in the cloud and that nobody will ever drain: its ordinal is not coming back. A node is
    abandoned when its ordinal is at or above ``spec.replicas``, no pod of that name exists,
    and its Lease has not been renewed for a whole lease duration *as measured here* (the
    renew time is compared with its own earlier reading, never with this machine's clock, so
    clock skew cannot make a live node look dead), or has no holder: a leaving replica that
    could not finish its drain by its deadline gives its Lease up and leaves the rest here.
    """

    def __init__(
        self, kube: client.Client, namespace: str, statefulset: str, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.statefulset = statefulset
        self.monotonic = monotonic
        self._seen: dict[str, tuple[str, float]] = {}  # node -> (renew time read, when it was first read)

    async def find(self) -> list[str]:
        try:
            replicas = (await extra.get_statefulset(self.kube, self.namespace, self.statefulset)).spec.replicas
        except errors.NotFound:
            return []  # uninstall: its pre-delete hook and `vnode gc` handle the nodes
        found = []
        watched = set()
        for node in await _replica_nodes(self.kube, self.statefulset):
            parsed = drain.ordinal_of(node)
            if parsed is None:
                continue
            # Every replica's Lease is read, the wanted ones too: a replica that died before the
            # scale-in is then known stale at the first look after it, not a lease duration later.
            watched.add(node)
            stale = await self._stale(node)
            if not stale or not drain.removed_by_scale_in(replicas, parsed[1]):
                continue
            try:
                await extra.get_pod(self.kube, self.namespace, node)
                continue  # its replica still exists: it drains the node itself
            except errors.NotFound:
                found.append(node)
        self._seen = {n: v for n, v in self._seen.items() if n in watched}
        return found

    async def _stale(self, node: str) -> bool:
        """Whether ``node``'s Lease has shown the same renew time here for a whole lease duration (or is gone)."""
        try:
            lease = await extra.get_lease(self.kube, node)
            renewed, duration = lease.spec.renew_time or "", float(lease.spec.lease_duration_seconds or 40)
        except errors.NotFound:
            return True
        if not lease.spec.holder_identity:
            return True  # given up: a leaving replica handed its node over (``drain.Result.handed_over``)
        now = self.monotonic()
        seen = self._seen.get(node)
        if seen is None or seen[0] != renewed:
            self._seen[node] = (renewed, now)
            return False
        return now - seen[1] >= duration


async def drain_abandoned(
    kube: client.Client,
    provider: base.Provider,
    cluster_id: str,
    abandoned: Abandoned,
    *,
    seconds: float = 300.0,
) -> list[str]:
    """Drain, on their dead controllers' behalf, the nodes ``abandoned`` finds, all at once; returns those deleted."""
    nodes = await abandoned.find()
    drained = await asyncio.gather(*(_drain_abandoned_node(kube, provider, cluster_id, n, seconds) for n in nodes))
    return [node for node, done in zip(nodes, drained, strict=True) if done]


async def _replica_nodes(kube: client.Client, name: str) -> list[str]:
    """The Nodes that replicas of StatefulSet ``name`` registered (``<name>-<ordinal>``)."""
    nodes = await api.list_all(kube, api.NODES, params={"labelSelector": "type=virtual-kubelet"})
    pattern = re.compile(rf"^{re.escape(name)}-\d+$")
    return [n.metadata.name for n in nodes.items if pattern.match(n.metadata.name)]


async def scale_down(
    kube: client.Client, provider: base.Provider, cluster_id: str, namespace: str, name: str, *, wait_seconds: float
) -> bool:
    """Scale the StatefulSet to 0 and wait until every replica has drained and deleted its Node.

    A replica's pod can be gone before its drain ends (a process instance is released at
    SIGTERM), so the Nodes are what tells that the drains are over. A node whose replica died
    before draining it, or handed it over at its deadline, has no surviving replica to take it
    over: it is drained here, as replica 0 would. Nodes still there at the deadline are deleted,
    so the gc pass that follows removes their instances. False if the drains did not finish in time.
    """
    with contextlib.suppress(errors.NotFound):
        await extra.scale_statefulset(kube, namespace, name, 0)
    deadline = time.monotonic() + wait_seconds
    abandoned = Abandoned(kube, namespace, name)
    draining: dict[str, asyncio.Task[bool]] = {}  # abandoned node -> its drain
    try:
        while time.monotonic() < deadline:
            if not await _replica_nodes(kube, name):
                return True
            await _take_over(kube, provider, cluster_id, abandoned, draining)
            await asyncio.sleep(1)
    finally:
        _cancel(draining)
    for node in await _replica_nodes(kube, name):
        log.warning("node %s was not drained in time; deleting it so that its instances are collected", node)
        with contextlib.suppress(errors.NotFound):
            await extra.delete_node(kube, node)
    return False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print what would be deleted, delete nothing")
    parser.add_argument(
        "--provider", help=f"the cloud (default $VNODE_PROVIDER or {registry.DEFAULT}); process for the playground"
    )
    parser.add_argument("--cluster-id", help="only instances tagged with this cluster id (default $VNODE_CLUSTER_ID)")
    parser.add_argument("--kubeconfig", help="default $KUBECONFIG, else in-cluster, else ~/.kube/config")
    parser.add_argument("--grace-seconds", type=float, default=10.0, help="SIGTERM grace of each deletion")
    parser.add_argument(
        "--scale-down",
        metavar="NAMESPACE/NAME",
        help="first scale this StatefulSet of virtual nodes to 0 and wait for its replicas to drain (uninstall)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="how long --scale-down waits (default 600 s)")
    parser.add_argument(
        "--webhook-configuration",
        metavar="NAME",
        help="also delete this MutatingWebhookConfiguration (uninstall: the webhook writes its own)",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_main(args))
    except errors.VnodeError as exc:
        print(f"vnode gc: {exc}", file=sys.stderr)
        return 1


async def _main(args: argparse.Namespace) -> int:
    flags = {"provider": args.provider, "cluster_id": args.cluster_id, "kubeconfig": args.kubeconfig}
    environ = dict(os.environ)
    environ.setdefault("VNODE_NODE_NAME", "vnode-gc")  # gc serves no node; settings want a name
    cfg = settings.load(environ, flags)
    factory = registry.load(cfg.provider)
    async with client.Client(config.load(cfg.kubeconfig), field_manager="vnode-gc") as kube:
        cfg = await credentials.load(kube, cfg)  # the keys in a Secret, as `vnode run` finds them
        provider = factory(cfg)
        try:
            if args.scale_down:
                namespace, _, name = args.scale_down.partition("/")
                if not await scale_down(kube, provider, cfg.cluster_id, namespace, name, wait_seconds=args.timeout):
                    print(f"vnode gc: {args.scale_down} still has replicas after {args.timeout:.0f}s", file=sys.stderr)
            if args.webhook_configuration:
                with contextlib.suppress(errors.NotFound):
                    await api.delete_webhook_configuration(kube, args.webhook_configuration)
            orphans, failed = await collect(
                kube, provider, cfg.cluster_id, dry_run=args.dry_run, grace_seconds=args.grace_seconds
            )
        finally:
            await provider.close()
    verb = "would delete" if args.dry_run else "deleted"
    for orphan in orphans:
        mark = "FAILED " if orphan.instance.id in failed else ""
        print(f"{mark}{verb} {orphan.describe()}")
    print(f"{len(orphans) - len(failed)} instance(s) {verb}, cluster id {cfg.cluster_id!r}")
    return 1 if failed else 0
