"""Reconcile one pod: from its latest state and its instance's latest state, take the next step.

Every step is safe to repeat, because a reconcile can be cut short anywhere (a crash, a
cancelled task, a timeout whose request did reach the cloud):

* create with a client token derived from the pod UID, so a retried create yields the same
  instance, and a daemon killed mid-create finds it again by tag;
* delete the instance, and release the pod (grace 0, UID precondition) only once a listing
  shows the instance gone, so a deleted pod never leaves a billed instance behind, even one
  whose create was still in flight;
* write the pod status only when it differs from what the pod shows.

The caller (``pods.PodController``) guarantees one reconcile per pod at a time and retries
on ``errors.Retryable`` with backoff. A returned number asks for another look after that
many seconds (a Secret still missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from vnode import errors, models, settings
from vnode.kube import api, client, objects
from vnode.node import events, references, spec, status
from vnode.observability import metrics
from vnode.provider import base

__all__ = ["MISSING_RETRY", "Reconciler", "View"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MISSING_RETRY = 2.0  # seconds between looks for a missing ConfigMap/Secret
REF_CACHE_SECONDS = 2.0
DELETE_RELOOK = 1.0  # seconds between looks at an instance being deleted (the listing usually answers first)
RELEASE_AFTER = 60.0  # seconds past the grace period after which a pod is released though its instance is listed


@dataclasses.dataclass
class View:
    """What the pod controller knows right now, shared with the reconciler."""

    pods: dict[str, objects.Pod]  # the informer's cache, by namespace/name
    states: dict[str, models.InstanceState]  # the last listing, by pod UID
    listed_at: float = 0.0  # monotonic time the last complete listing *started*
    gone: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> UID of pods deleted from the cache
    created: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # an instance was made: list soon


@dataclasses.dataclass
class _Memory:
    """What vnode remembers about a pod between reconciles (lost on restart, rebuilt from the cloud)."""

    instance_id: str = ""
    created_at: float = 0.0
    seen_events: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    written: dict[str, Any] | None = None
    warned: str = ""
    delete_requested_at: float = 0.0  # monotonic time the instance's delete was accepted
    deleting: bool = False  # an instance existed when the delete was sent


class Reconciler:
    def __init__(
        self,
        kube: client.Client,
        provider: base.Provider,
        *,
        view: View,
        target: spec.Target,
        recorder: events.Recorder,
        metrics: metrics.Metrics,
        clock: Callable[[], datetime.datetime],
        profile: Callable[[], settings.Profile] = settings.Profile,
        monotonic: Callable[[], float] = time.monotonic,
        may_act: Callable[[], bool] = lambda: True,
        first_status_after: float = 0.0,
    ) -> None:
        self.kube = kube
        self.provider = provider
        self.view = view
        self.target = target
        self.recorder = recorder
        self.metrics = metrics
        self.clock = clock
        self.profile = profile
        self.monotonic = monotonic
        self.may_act = may_act  # False while another controller holds the node's Lease
        self.started_at = clock()
        self.memory: dict[str, _Memory] = {}
        self.references = references.Cache(self._read_ref, ttl=REF_CACHE_SECONDS, monotonic=monotonic)
        # A just-created instance is almost always still starting, and the next listing usually
        # shows it further along: its first status waits for that (or this long), so that a pod
        # that starts within one listing gets one status write, not Pending then Running.
        self.first_status_after = first_status_after

    def forget(self, uid: str) -> None:
        self.memory.pop(uid, None)

    # --- the entry point ---

    async def sync(self, key: str) -> float | None:
        if not self.may_act():
            raise errors.Unavailable("standing by: another controller holds this node's Lease", code="StandingBy")
        pod = self.view.pods.get(key)
        if pod is None:
            await self._pod_gone(key)
            return None
        uid = pod.metadata.uid
        memory = self.memory.setdefault(uid, _Memory())
        if pod.metadata.deletion_timestamp:
            return await self._delete(pod, memory)
        if any(ref.kind == "DaemonSet" for ref in pod.metadata.owner_references):
            message = "DaemonSet pods are not run on virtual nodes: there is no host to run a per-node agent on"
            await self._warn_once(pod, memory, "DaemonSetPodsNotSupported", message)
            await self._write(
                pod,
                memory,
                status.waiting(
                    pod,
                    reason="DaemonSetPodsNotSupported",
                    message=message,
                    host_ip=self.target.node_ip,
                    now=self.clock(),
                ),
            )
            return None
        state = self.view.states.get(uid)
        if state is None:
            if pod.phase in ("Succeeded", "Failed"):
                return None  # finished (or failed fast); nothing runs for it
            instance_id = memory.instance_id or self._instance_in_status(pod)
            if instance_id:
                return await self._maybe_vanished(pod, memory, instance_id)
            created = await self._create(pod, memory)
            if not isinstance(created, models.InstanceState):
                return created  # failed for good (None) or waiting for a reference (seconds)
            if self.first_status_after > 0 and status.PHASES.get(created.status) == "Pending":
                return self.first_status_after
            state = created
        memory.instance_id = state.id
        self._record_events(pod, memory, state)
        wanted = status.from_instance(
            pod, state, scheme=self.provider.container_id_scheme, host_ip=self.target.node_ip, now=self.clock()
        )
        await self._write(pod, memory, wanted)
        return None

    # --- steps ---

    def _instance_in_status(self, pod: objects.Pod) -> str:
        prefix = f"{self.provider.container_id_scheme}://"
        for c in pod.status.get("containerStatuses") or []:
            cid = c.get("containerID") or ""
            if cid.startswith(prefix):
                return str(cid[len(prefix) :])
        return ""

    async def _maybe_vanished(self, pod: objects.Pod, memory: _Memory, instance_id: str) -> float | None:
        """The pod had an instance that the last listing does not show: gone, or just too new to be listed?"""
        if memory.created_at and self.view.listed_at <= memory.created_at:
            return 1.0  # created after the last listing began: wait for the next one
        try:
            state = await self._call("get", self.provider.get(instance_id))
        except errors.NotFound:
            message = f"the instance {instance_id} no longer exists in the cloud"
            self.recorder.pod(pod, "ProviderInstanceGone", message, type="Warning")
            await self._write(
                pod,
                memory,
                status.failed(
                    pod, reason="ProviderInstanceGone", message=message, host_ip=self.target.node_ip, now=self.clock()
                ),
            )
            return None
        self.view.states[pod.metadata.uid] = state
        memory.instance_id = state.id
        self._record_events(pod, memory, state)
        wanted = status.from_instance(
            pod, state, scheme=self.provider.container_id_scheme, host_ip=self.target.node_ip, now=self.clock()
        )
        await self._write(pod, memory, wanted)
        return None

    async def _create(self, pod: objects.Pod, memory: _Memory) -> models.InstanceState | float | None:
        try:
            sources = await self._sources(pod)
            wanted = spec.build(pod, sources, self.target, self.profile())
        except spec.Missing as missing:
            reason = "CreateContainerConfigError"
            await self._warn_once(pod, memory, "Failed", f"Error: {missing}")
            await self._write(
                pod,
                memory,
                status.waiting(pod, reason=reason, message=str(missing), host_ip=self.target.node_ip, now=self.clock()),
            )
            self.metrics.retries.labels(self.metrics.node, "MissingReference").inc()
            return MISSING_RETRY
        except errors.InvalidSpec as invalid:
            await self._fail(pod, memory, "ProviderInvalidSpec", invalid.message)
            return None
        try:
            started = self.monotonic()
            made = await self._call("create", self.provider.create(wanted))
        except errors.InvalidSpec as invalid:
            await self._fail(pod, memory, "ProviderInvalidSpec", invalid.message)
            return None
        except errors.CapacityError as exc:
            await self._warn_once(pod, memory, "ProviderCapacity", f"no capacity in any zone: {exc.message}")
            await self._write(
                pod,
                memory,
                status.waiting(
                    pod, reason="ProviderCapacity", message=exc.message, host_ip=self.target.node_ip, now=self.clock()
                ),
            )
            raise
        memory.instance_id, memory.created_at = made.id, started
        self.view.created.set()
        self.view.states[pod.metadata.uid] = made
        log.info("instance %s created", made.id, extra={"pod": pod.key, "instance": made.id})
        return made

    async def _fail(self, pod: objects.Pod, memory: _Memory, reason: str, message: str) -> None:
        self.recorder.pod(pod, "Failed", message, type="Warning")
        await self._write(
            pod,
            memory,
            status.failed(pod, reason=reason, message=message, host_ip=self.target.node_ip, now=self.clock()),
        )

    async def _pod_gone(self, key: str) -> None:
        """The pod vanished from the API (force-deleted, or released by us): its instance must go too."""
        uid = self.view.gone.get(key)
        if uid is None:
            return
        state = self.view.states.get(uid)
        if state is not None:
            await self._call("delete", self.provider.delete(state.id, grace_seconds=0))
            log.info("instance %s deleted: its pod is gone", state.id, extra={"pod": key, "instance": state.id})
            self.view.states.pop(uid, None)
        self.view.gone.pop(key, None)
        self.forget(uid)

    async def _delete(self, pod: objects.Pod, memory: _Memory) -> float | None:
        """Delete the instance, then release the pod once a cloud listing shows the instance gone.

        Like a kubelet, which removes the pod object only after its containers stopped: the pod
        (and the service-account token bound to it) stays while the instance runs out its grace
        period, so a workload that needs the API on its way out (a vnode replica draining its own
        node) still has it. No polling per pod: the listing that no longer shows the instance
        queues the pod again; a re-look every ``DELETE_RELOOK`` seconds is the safety net.
        """
        uid = pod.metadata.uid
        grace = float(pod.metadata.deletion_grace_period_seconds or 0)
        if not memory.delete_requested_at:
            found = []
            state = self.view.states.get(uid)
            if state is not None:
                found.append(state.id)
            else:
                # Not in the last listing: it may have been made since, or be lost in flight. Ask.
                tags = {
                    models.TAG_CLUSTER: self.target.cluster_id,
                    models.TAG_NODE: self.target.node_name,
                    models.TAG_POD_UID: uid,
                }
                found = [s.id for s in await self._call("list", self.provider.list(tags))]
            for instance_id in found:
                if pod.phase not in ("Succeeded", "Failed"):
                    for c in pod.spec.containers:
                        self.recorder.pod(pod, "Killing", f"Stopping container {c.name}", container=c.name)
                await self._call("delete", self.provider.delete(instance_id, grace_seconds=grace))
                log.info("instance %s deleting (grace %.0fs)", instance_id, grace,
                         extra={"pod": pod.key, "instance": instance_id})  # fmt: skip
            memory.delete_requested_at = self.monotonic()
            memory.deleting = bool(found)
        if memory.deleting and not self._gone_since(uid, memory.delete_requested_at):
            waited = self.monotonic() - memory.delete_requested_at
            if waited < grace + RELEASE_AFTER:
                return DELETE_RELOOK
            log.warning("instance of pod %s still listed %.0fs after its delete; releasing the pod, orphan "
                        "collection deletes the instance", pod.key, waited, extra={"pod": pod.key})  # fmt: skip
        self.view.states.pop(uid, None)
        # NotFound: gone already; Conflict: a new pod of the same name, not ours to delete.
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await api.delete_pod(self.kube, pod.metadata.namespace, pod.metadata.name, grace_seconds=0, uid=uid)
        self.forget(uid)
        return None

    def _gone_since(self, uid: str, moment: float) -> bool:
        """Whether a cloud listing that started after ``moment`` lacks the pod's instance."""
        return self.view.listed_at > moment and uid not in self.view.states

    # --- helpers ---

    async def _call(self, action: str, call: Awaitable[T]) -> T:
        try:
            result = await call
        except errors.ApiError as exc:
            self.metrics.cloud_call(action, exc.code)
            raise
        self.metrics.cloud_call(action, "ok")
        return result

    async def _warn_once(self, pod: objects.Pod, memory: _Memory, reason: str, message: str) -> None:
        if memory.warned != f"{reason}:{message}":
            memory.warned = f"{reason}:{message}"
            self.recorder.pod(pod, reason, message, type="Warning")

    def _record_events(self, pod: objects.Pod, memory: _Memory, state: models.InstanceState) -> None:
        fresh = []
        for event in state.events:
            mark = (event.reason, event.container, status.rfc3339(event.timestamp) or event.message)
            if mark not in memory.seen_events:
                memory.seen_events.add(mark)
                fresh.append(event)
        if memory.written is None and pod.status.get("containerStatuses"):
            # Adopted after a restart: what happened before this daemon started was recorded by
            # the one before it (its status is on the pod); only newer events are ours to record.
            fresh = [e for e in fresh if e.timestamp is None or e.timestamp >= self.started_at]
        for event in fresh:
            self.recorder.pod(
                pod, event.reason, event.message, type=event.type.value, container=event.container, when=event.timestamp
            )

    async def _write(self, pod: objects.Pod, memory: _Memory, wanted: dict[str, Any]) -> None:
        if status.same(pod.status, wanted) or (memory.written is not None and status.same(memory.written, wanted)):
            memory.written = memory.written or wanted
            return
        body = {"metadata": {"uid": pod.metadata.uid}, "status": wanted}
        try:
            await api.patch_pod_status(self.kube, pod.metadata.namespace, pod.metadata.name, body)
        except errors.NotFound:
            return
        memory.written = wanted
        self.metrics.status_writes.labels(self.metrics.node).inc()

    async def _sources(self, pod: objects.Pod) -> spec.Sources:
        refs = spec.references(pod)
        ns = pod.metadata.namespace
        names = [("configmaps", n) for n in refs.configmaps] + [("secrets", n) for n in refs.secrets]
        audiences = sorted(refs.tokens)
        fetched, tokens = await asyncio.gather(
            asyncio.gather(*(self.references.get(ns, kind, name) for kind, name in names)),
            asyncio.gather(*(self._token(pod, audience, seconds) for audience, seconds in audiences)),
        )
        cms = {name: data for (kind, name), data in zip(names, fetched, strict=True) if kind == "configmaps"}
        secs = {name: data for (kind, name), data in zip(names, fetched, strict=True) if kind == "secrets"}
        return spec.Sources(configmaps=cms, secrets=secs, tokens=dict(zip(audiences, tokens, strict=True)))

    async def _read_ref(self, namespace: str, kind: str, name: str) -> dict[str, bytes] | None:
        try:
            if kind == "configmaps":
                return spec.configmap_data(await api.read(self.kube, api.config_maps(namespace), name))
            return spec.secret_data(await api.read(self.kube, api.secrets(namespace), name))
        except errors.NotFound:
            return None

    async def _token(self, pod: objects.Pod, audience: str, seconds: int) -> str:
        account = pod.spec.service_account_name or "default"
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "name": pod.metadata.name,
                    "uid": pod.metadata.uid,
                },
            },
        }
        if audience:
            body["spec"]["audiences"] = [audience]
        try:
            answer = await api.request_token(self.kube, pod.metadata.namespace, account, body)
        except errors.NotFound as exc:
            raise spec.Missing("serviceaccount", account) from exc
        return answer.status.token
