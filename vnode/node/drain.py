"""Scale-in in one step: a replica that its StatefulSet is removing empties and deletes its own node.

The field's procedure takes four manual steps (drain, scale, wait for NotReady, delete the
node), and a skipped step leaves cloud instances that nothing manages any more. Here the
controller does it on SIGTERM (the daemon's ``draining`` phase, see ``vnode/daemon.py``), within its
pod's termination grace period:

1. **Is this a scale-in?** Only if the owning StatefulSet no longer wants this ordinal
   (``spec.replicas <= ordinal``), or is itself gone or being deleted (uninstall). A restart of
   the same ordinal (a deleted pod, a rolling update, a crash) must not drain: the
   replacement adopts the pods. The decision comes from ``spec.replicas``, which the scale
   request changes before any pod is deleted, so it is never ambiguous.
2. **Cordon** the node, so the scheduler sends no new pods.
3. **Evict** each pod through the Eviction API, which honours PodDisruptionBudgets: a 429 means
   "not now", and the eviction is retried until the budget allows it. The pods' controllers
   (Deployments, ...) recreate them elsewhere. The daemon's own pod loop, still running,
   deletes each evicted pod's instance and then the pod.
4. **Wait** until no pod is left on the node and the provider lists no instance for it;
   instances whose pod no longer exists are deleted here directly (``orphans.decide``).
5. When the deadline is near and something is still left (a budget that never allows it,
   a stuck pod loop), the leftovers' instances are deleted through the provider and their pods
   removed: the node is going away whatever happens, and an instance nobody manages is the
   one outcome worse than a disrupted pod. A pod is removed only once the cloud has accepted its
   instance's delete; what the cloud could not take by the deadline (the account's delete rate
   after thousands of deletes) is **handed over**: the Node stays, with those pods and instances,
   and a surviving replica drains it as it drains a dead replica's (``vnode/gc.py``, ``Abandoned``).
6. **Delete** the Node (and its Lease), unless something was handed over.

DaemonSet pods are left alone: they never run as instances, and the pod garbage collector
removes them with the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping

from vnode import errors, models, tokenbucket
from vnode.kube import api, client, extra, objects
from vnode.node import orphans
from vnode.provider import base

__all__ = [
    "Result",
    "being_removed",
    "drain",
    "ordinal_of",
    "removed_by_scale_in",
    "scale_in",
]

log = logging.getLogger(__name__)

RETRY_DELETE = 60.0  # seconds after the cloud accepted an instance's delete before a drain deletes it again

_ORDINAL = re.compile(r"^(?P<set>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<ordinal>0|[1-9][0-9]*)$")


def ordinal_of(pod_name: str) -> tuple[str, int] | None:
    """``("virtual-node-eci", 2)`` for ``virtual-node-eci-2``; None for a name a StatefulSet would not give."""
    match = _ORDINAL.match(pod_name)
    if match is None:
        return None
    return match["set"], int(match["ordinal"])


def removed_by_scale_in(replicas: int, ordinal: int) -> bool:
    """A StatefulSet keeps ordinals ``0 .. replicas-1``; any other is being scaled away."""
    return ordinal >= replicas


async def being_removed(kube: client.Client, *, namespace: str, pod_name: str) -> bool:
    """Whether this pod is going away for good (scale-in or uninstall), rather than restarting.

    Reads the pod's controlling StatefulSet (falling back to the name the pod's own name
    implies, when the pod is already gone) and compares its ``spec.replicas`` with the ordinal.
    A pod that no StatefulSet controls never drains on its own. Errors other than "not found"
    propagate: when in doubt, do not drain (the replacement adopts the pods instead).
    """
    parsed = ordinal_of(pod_name)
    if parsed is None:
        return False
    set_name, ordinal = parsed
    try:
        pod: objects.Pod | None = await extra.get_pod(kube, namespace, pod_name)
    except errors.NotFound:
        pod = None
    if pod is not None:
        owner = pod.metadata.controlled_by("StatefulSet")
        if owner is None:
            return False
        set_name = owner.name
    try:
        statefulset = await extra.get_statefulset(kube, namespace, set_name)
    except errors.NotFound:
        return True  # the StatefulSet itself was deleted: every replica goes
    if statefulset.metadata.deletion_timestamp:
        return True
    return removed_by_scale_in(statefulset.spec.replicas, ordinal)


@dataclasses.dataclass
class Result:
    """What a drain did; ``complete`` is False only if the Node could not be deleted."""

    evicted: list[str] = dataclasses.field(default_factory=list)  # namespace/name
    blocked: int = 0  # evictions a PodDisruptionBudget refused (then retried)
    forced: list[str] = dataclasses.field(default_factory=list)  # pods removed at the deadline
    instances_deleted: list[str] = dataclasses.field(default_factory=list)  # deleted by the drain itself
    released: list[str] = dataclasses.field(default_factory=list)  # evicted pods released for a dead controller
    # Pods and podless instances left at the deadline for a surviving replica: their deletes were not through.
    handed_over: list[str] = dataclasses.field(default_factory=list)
    node_deleted: bool = False
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.node_deleted


def _deleted_at(pod: objects.Pod) -> tuple[str, str]:
    """Order of deletion: RFC 3339 times in UTC (as the API server writes them) sort as text."""
    return pod.metadata.deletion_timestamp or "", pod.key


class _Drain:
    """One drain's passes over a node; each pass is safe to repeat (what was done is remembered)."""

    def __init__(
        self,
        kube: client.Client,
        provider: base.Provider,
        *,
        node: str,
        cluster_id: str,
        on_blocked: Callable[[str], None] | None,
        concurrency: int,
        kubelet_gone: bool,
    ) -> None:
        self.kube = kube
        self.provider = provider
        self.node = node
        self.cluster_id = cluster_id
        self.on_blocked = on_blocked
        self.kubelet_gone = kubelet_gone
        self.result = Result()
        self.evicted: set[str] = set()  # pod UIDs
        self.busy: dict[str, asyncio.Task[None]] = {}  # calls on their way, by pod UID (instance ID: an orphan)
        self.deleting: set[str] = set()  # instance IDs whose delete is on its way
        self.accepted: dict[str, float] = {}  # instance ID -> when the cloud accepted its delete (monotonic)
        self.releasing: set[str] = set()  # pod UIDs whose release is on its way or done
        # Calls to the API server and to the cloud are bounded apart: a cloud delete waits in line for
        # the account's rate (tokenbucket), and must not hold up the evictions and releases meanwhile.
        self.limit = asyncio.Semaphore(concurrency)
        self.cloud_limit = asyncio.Semaphore(concurrency)
        self.extra = {"node": node}

    async def cordon(self) -> None:
        try:
            await extra.cordon(self.kube, self.node)
            log.info("draining node %s: cordoned", self.node, extra=self.extra)
        except errors.NotFound:
            log.info("draining node %s: the Node is already gone; cleaning up its instances", self.node,
                     extra=self.extra)  # fmt: skip

    async def listing(self) -> tuple[list[objects.Pod], list[models.InstanceState]]:
        # Instances first, then pods: an instance listed before a pod listing that lacks its
        # pod belongs to a pod that is gone (pods are created before their instances).
        tags = {models.TAG_CLUSTER: self.cluster_id, models.TAG_NODE: self.node}
        instances = list(await self.provider.list(tags))
        pods = [p for p in await extra.pods_on_node(self.kube, self.node) if not p.metadata.controlled_by("DaemonSet")]
        return pods, instances

    def step(self, pods: list[objects.Pod], instances: list[models.InstanceState]) -> None:
        """Start evicting the pods not evicted yet, deleting the orphans and finishing for a dead controller.

        The calls run on in tasks of their own (:meth:`settle` waits for them): the next pass must not
        wait for this one's slowest call. Found by the soak: a takeover's first pass evicted 1,700 pods
        and deleted their instances at the account's delete rate, minutes of calls, and the pods whose
        instances were gone in its first seconds were released only by the pass after it, so they
        stayed Terminating for minutes (663 at a 3 -> 1 scale-in).
        """
        known = orphans.Known(self.cluster_id, self.node, live_pods={p.metadata.uid for p in pods})
        leftovers = [i for i in instances if self.may_delete(i) and orphans.decide(i.tags, known).delete]
        due = [p for p in pods if not p.metadata.deletion_timestamp and p.metadata.uid not in self.evicted]
        # For a dead controller, an evicted pod's instance is deleted as soon as the eviction is through,
        # so that the cloud's deletes (the bottleneck: the account's rate) overlap the evictions.
        running = {i.pod_uid: i for i in instances} if self.kubelet_gone else {}
        # The pods deleted first are finished first: the cloud's delete rate is the bottleneck of a big
        # drain, and the calls take the client-side limit's tokens in the order they are started.
        if self.kubelet_gone:
            self._finishing(pods, running)
        for instance in leftovers:
            self._start(instance.id, functools.partial(self.delete_instance, instance, 0))
        for pod in due:
            its = running.get(pod.metadata.uid)
            self._start(pod.metadata.uid, functools.partial(self.evict, pod, its), also=its)

    def may_delete(self, instance: models.InstanceState) -> bool:
        """Whether to delete ``instance`` now: no delete of it is on its way, and the cloud has not accepted
        one in the last ``RETRY_DELETE`` seconds (one still listed after that is deleted again)."""
        accepted = self.accepted.get(instance.id)
        return instance.id not in self.deleting and (accepted is None or time.monotonic() - accepted > RETRY_DELETE)

    def _start(self, key: str, work: Callable[[], Awaitable[object]], also: models.InstanceState | None = None) -> None:
        """Run ``work`` in a task of its own, unless a call for ``key`` (or for the instance ``also``) is on its way."""
        if key in self.busy or (also is not None and also.id in self.busy):
            return

        async def run() -> None:
            try:
                await work()
            except Exception:  # a bug: logged, and the next pass tries again
                log.exception("draining node %s: %s failed", self.node, key, extra=self.extra)

        task = asyncio.create_task(run())
        self.busy[key] = task
        task.add_done_callback(lambda _: self.busy.pop(key, None))  # also when cancelled before it ran

    async def settle(self, *, cancel: bool = False) -> None:
        """Wait for the calls on their way (cancelled first, with ``cancel``)."""
        tasks = list(self.busy.values())
        for task in tasks if cancel else ():
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _finishing(self, pods: list[objects.Pod], by_uid: Mapping[str, models.InstanceState]) -> None:
        """What the dead controller's pod loop would do for pods being deleted: instance, then pod."""
        for pod in sorted((p for p in pods if p.metadata.deletion_timestamp), key=_deleted_at):
            instance = by_uid.get(pod.metadata.uid)
            if pod.metadata.uid in self.busy or pod.metadata.uid in self.releasing:
                continue  # its eviction or finish (with its instance's delete) is on its way, or it is released
            if instance is None:
                self._start(pod.metadata.uid, functools.partial(self.release, pod, self.result.released))
            elif self.may_delete(instance):
                grace = float(pod.metadata.deletion_grace_period_seconds or 0)
                self._start(pod.metadata.uid, functools.partial(self.finish, pod, instance, grace), also=instance)

    async def evict(self, pod: objects.Pod, instance: models.InstanceState | None = None) -> None:
        """Evict ``pod``; then, if given, delete its ``instance`` with the pod's grace period (a dead
        controller's pod: nobody else will)."""
        key = pod.key
        async with self.limit:
            try:
                await extra.evict(self.kube, pod.metadata.namespace, pod.metadata.name, uid=pod.metadata.uid)
            except errors.Throttled:
                self.result.blocked += 1
                if self.on_blocked is not None:
                    self.on_blocked(key)
                return
            except (errors.NotFound, errors.Conflict):
                pass  # gone already, or replaced by a new pod of that name (not ours to evict)
            except errors.ApiError as exc:
                log.warning("draining node %s: evicting %s failed: %s", self.node, key, exc, extra=self.extra)
                return
        self.evicted.add(pod.metadata.uid)
        self.result.evicted.append(key)
        if instance is not None:
            await self.finish(pod, instance, float(pod.spec.termination_grace_period_seconds or 30))

    async def finish(self, pod: objects.Pod, instance: models.InstanceState, grace: float) -> None:
        """For a dead controller: delete the deleted pod's instance, then release the pod at once, once the
        cloud has accepted the delete (its deletion is the cloud's now; a later pass deletes the instance
        again if it is still listed ``RETRY_DELETE`` seconds later). A StatefulSet's pod waits until its instance is no
        longer listed: its replacement, of the same identity, must not run beside it.

        Found by the soak: released only by a later pass, after a listing of the node that took seconds
        on the loaded machine, 75 pods of a dead replica stayed Terminating for over 3 minutes."""
        if self.may_delete(instance):
            await self.delete_instance(instance, grace)
        if instance.id in self.accepted and not pod.metadata.controlled_by("StatefulSet"):
            await self.release(pod, self.result.released)

    async def delete_instance(self, instance: models.InstanceState, grace: float) -> None:
        self.deleting.add(instance.id)
        try:
            async with self.cloud_limit:
                await self.provider.delete(instance.id, grace_seconds=grace)
        except errors.ApiError as exc:
            log.warning("draining node %s: deleting instance %s failed: %s", self.node, instance.id, exc,
                        extra=self.extra)  # fmt: skip
            return
        finally:
            self.deleting.discard(instance.id)
        if instance.id not in self.accepted:
            self.result.instances_deleted.append(instance.id)
        self.accepted[instance.id] = time.monotonic()

    async def force(self, pods: list[objects.Pod], instances: list[models.InstanceState]) -> None:
        """The deadline is near: delete what is left, each pod's instance before the pod, so that nothing is
        leaked; all together. Pods wait for their own instance only: at the soak's 3 -> 1 scale-in, 386 of
        the 485 pods left had no instance any more, yet waited for the 99 cloud deletes of the others (the
        account's rate), and the replica was killed at the end of its grace period before releasing one.

        A pod whose instance's delete the cloud has not accepted is kept, and with the podless instances
        not deleted either, handed over (``Result.handed_over``); the caller bounds this call by its
        deadline. Found by the soak: at a 3 -> 1 scale-in the leaving replica had 888 instances left and the
        account's rate refused most of their deletes; it removed the pods all the same and deleted the
        Node, and 28 instances ran on without a pod until the survivors' collection of gone nodes, 3
        minutes later."""
        if not pods and not instances:
            return
        log.warning("draining node %s: deadline near, removing %d pods and %d instances that are left", self.node,
                    len(pods), len(instances), extra=self.extra)  # fmt: skip
        listed = {p.metadata.uid for p in pods}
        left = [i for i in instances if self.may_delete(i)]
        theirs: dict[str, list[models.InstanceState]] = {}
        for instance in left:
            if instance.pod_uid in listed:
                theirs.setdefault(instance.pod_uid, []).append(instance)
        podless = [i for i in left if i.pod_uid not in listed]

        gone: set[str] = set()

        async def finish(pod: objects.Pod) -> None:
            its = theirs.get(pod.metadata.uid, [])
            await asyncio.gather(*(self.delete_instance(i, 0) for i in its))
            if all(i.id in self.accepted for i in its) and await self.release(pod, self.result.forced):
                gone.add(pod.metadata.uid)

        # Together: one after another, 1,736 pods took the soak's loaded API server over 8 minutes.
        try:
            await asyncio.gather(*(self.delete_instance(i, 0) for i in podless), *(finish(p) for p in pods))
        finally:  # also when the deadline cuts it short
            kept = [p.key for p in pods if p.metadata.uid not in gone]
            self.result.handed_over = kept + [i.id for i in podless if i.id not in self.accepted]

    async def conclude(
        self, before_node_delete: Callable[[], Awaitable[None]] | None, elapsed: Callable[[], float]
    ) -> Result:
        """Delete the Node, unless something was handed over to the surviving replicas; the drain's result."""
        result = self.result
        if not result.handed_over:
            if before_node_delete is not None:
                await before_node_delete()
            await self.delete_node()
        result.seconds = elapsed()
        log.info("drained node %s in %.1fs: %d evicted, %d forced, %d handed over to the surviving replicas, "
                 "node deleted: %s", self.node, result.seconds, len(result.evicted), len(result.forced),
                 len(result.handed_over), result.node_deleted, extra=self.extra)  # fmt: skip
        return result

    async def release(self, pod: objects.Pod, done: list[str]) -> bool:
        """Remove ``pod`` (see ``_release``); True once it is gone."""
        self.releasing.add(pod.metadata.uid)
        async with self.limit:
            return await _release(self.kube, self.node, pod, done)

    async def delete_node(self) -> None:
        node, kube = self.node, self.kube
        try:
            await extra.delete_node(kube, node)
            self.result.node_deleted = True
        except errors.NotFound:
            self.result.node_deleted = True
        except errors.ApiError as exc:
            log.error("draining node %s: deleting the Node failed: %s", node, exc, extra=self.extra)
        with contextlib.suppress(errors.ApiError):  # gone with the Node (owner reference), or never made
            await kube.delete(extra.lease_path(node))


async def drain(
    kube: client.Client,
    provider: base.Provider,
    *,
    node: str,
    cluster_id: str,
    deadline: float,
    before_node_delete: Callable[[], Awaitable[None]] | None = None,
    on_blocked: Callable[[str], None] | None = None,
    retry_interval: float = 1.0,
    force_margin: float = 5.0,
    concurrency: int = 20,
    kubelet_gone: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
) -> Result:
    """Cordon, evict, wait for the instances to go, delete the Node; all before ``deadline`` (monotonic).

    ``before_node_delete`` runs just before the Node is deleted: the daemon stops its node
    heartbeat there, or it would register the node again. ``on_blocked(pod key)`` is called
    each time a PodDisruptionBudget refuses an eviction. Safe to repeat (a second SIGTERM).

    ``kubelet_gone``: the node's own controller is dead (a surviving replica drains for it), so
    nobody else finishes an evicted pod: its instance is deleted here, and the pod released as soon
    as the cloud has accepted the delete (a StatefulSet's pod: once the instance is no longer listed,
    as the node's own pod loop would have done).
    """
    with tokenbucket.waiting_for_turns():  # a drain's deletes wait in place for their turn at the account's rate
        started = monotonic()
        run = _Drain(kube, provider, node=node, cluster_id=cluster_id, on_blocked=on_blocked, concurrency=concurrency,
                     kubelet_gone=kubelet_gone)  # fmt: skip
        await run.cordon()
        pods: list[objects.Pod] = []
        instances: list[models.InstanceState] = []
        try:
            while True:
                listed = monotonic()
                try:
                    pods, instances = await run.listing()
                except errors.ApiError as exc:
                    log.warning("draining node %s: listing failed: %s", node, exc, extra=run.extra)
                else:
                    if not pods and not instances:
                        break
                    run.step(pods, instances)
                if monotonic() >= deadline - force_margin:
                    await run.settle(cancel=True)  # the calls on their way hold slots that force needs
                    with contextlib.suppress(TimeoutError):  # what is not through by then is handed over
                        async with asyncio.timeout(max(0.0, deadline - monotonic())):
                            await run.force(pods, instances)
                    break
                took = monotonic() - listed
                await asyncio.sleep(_pause(retry_interval, took, deadline - force_margin - monotonic()))
        finally:
            await run.settle(cancel=True)  # nothing is left to do, or the drain is cancelled
        return await run.conclude(before_node_delete, lambda: monotonic() - started)


def _pause(interval: float, listing: float, until_force: float) -> float:
    """Seconds between passes: a listing of a big node costs the API server and the cloud, so at most a
    third of the time goes to listing; and the pause ends in time for one more listing before the force."""
    return max(0.0, min(max(interval, 2 * listing), until_force - listing))


async def _release(kube: client.Client, node: str, pod: objects.Pod, done: list[str]) -> bool:
    """Remove a pod object at once (grace 0, UID precondition); its key goes to ``done`` if removed here.
    True once it is gone (also when it was gone already, or replaced by a new pod of its name)."""
    try:
        await api.delete_pod(kube, pod.metadata.namespace, pod.metadata.name, grace_seconds=0, uid=pod.metadata.uid)
    except (errors.NotFound, errors.Conflict):
        return True
    except errors.ApiError as exc:
        log.warning("draining node %s: removing pod %s failed: %s", node, pod.key, exc, extra={"node": node})
        return False
    done.append(pod.key)
    return True


async def scale_in(kube: client.Client, *, node: str, namespace: str, pod_name: str) -> bool:
    """Whether a SIGTERM means that this replica goes for good (:func:`being_removed`), logging the answer.

    False outside a pod (a controller never drains on its own) and when the answer cannot be
    had: then it stops as for a restart, and the replacement adopts the pods.
    """
    if not namespace or not pod_name:
        return False
    try:
        removed = await being_removed(kube, namespace=namespace, pod_name=pod_name)
    except errors.ApiError as exc:
        log.warning("node %s: cannot tell whether this is a scale-in (%s); not draining", node, exc,
                    extra={"node": node})  # fmt: skip
        return False
    if not removed:
        log.info("node %s: stopping for a restart, not a scale-in; the node stays", node, extra={"node": node})
    return removed
