"""Reconcile one pod: decide its next step from the latest facts, then carry the decision out.

The deciding is ``lifecycle.decide`` (pure, a table of stages); this module is the one place
that acts on a decision: provider calls, the status patch, events, the pod's release, and the
writes to the node's state through ``book.Book``. Every step is safe to repeat, because a
reconcile can be cut short anywhere (a crash, a cancelled task, a timeout whose request did
reach the cloud):

* create with a client token derived from the pod UID, so a retried create yields the same
  instance, and a daemon killed mid-create finds it again by tag;
* delete the instance, and release the pod (grace 0, UID precondition) only once a listing
  shows the instance gone, so a deleted pod never leaves a billed instance behind, even one
  whose create was still in flight;
* write the pod status only when it differs from what the pod shows.

What a decision changes in vnode's memory is stored only once its cloud calls succeeded, so a
retry decides again from the same memory. The caller (``pods.PodController``) guarantees one
reconcile per pod at a time and retries on ``errors.Retryable`` with backoff. A returned
number asks for another look after that many seconds (a Secret still missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from vnode import errors, models, settings
from vnode.kube import api, client, extra, objects
from vnode.node import (
    absent,
    book,
    catchup,
    claims,
    events,
    fields,
    lifecycle,
    pending,
    references,
    registry,
    spec,
    tokens,
)
from vnode.observability import metrics
from vnode.provider import base

__all__ = ["MISSING_RETRY", "Reconciler", "View"]

log = logging.getLogger(__name__)
T = TypeVar("T")

View = book.View  # where the pod controller's view is defined, and who writes it
MISSING_RETRY = lifecycle.MISSING_RETRY
REF_CACHE_SECONDS = 2.0
Action = lifecycle.Action


class Reconciler:
    def __init__(
        self,
        kube: client.Client,
        provider: base.Provider,
        *,
        book: book.Book,
        target: spec.Target,
        recorder: events.Recorder,
        metrics: metrics.Metrics,
        clock: Callable[[], datetime.datetime],
        profile: Callable[[], settings.Profile] = settings.Profile,
        monotonic: Callable[[], float] = time.monotonic,
        may_act: Callable[[], bool] = lambda: True,
        first_status_after: float = 0.0,
        as_node: client.Client | None = None,
    ) -> None:
        self.kube = kube
        # What a kubelet reads for its pods (Secrets, claims, volumes, tokens): read as the node,
        # so that the Node authorizer grants exactly those (settings.node_identity).
        self.as_node = as_node or kube
        self.provider = provider
        self.book = book
        self.target = target
        self.recorder = recorder
        self.metrics = metrics
        self.clock = clock
        self.profile = profile
        self.monotonic = monotonic
        self.may_act = may_act  # False while another controller holds the node's Lease
        self.config = lifecycle.Config(
            node_ip=target.node_ip,
            scheme=provider.container_id_scheme,
            started_at=clock(),
            first_status_after=first_status_after,
            max_pending=pending.rule(target.profile),
            reclaim_eviction=target.profile.reclaim_eviction,
        )
        self.references = references.Cache(self._read_ref, ttl=REF_CACHE_SECONDS, monotonic=monotonic)
        # PersistentVolumeClaims and their volumes: a get per claim per burst, never a list of the cluster.
        self.claim_cache = references.Cache(self._read_claim, ttl=REF_CACHE_SECONDS, monotonic=monotonic)
        #: Set once the node drains away (scale-in): pods without an instance get none, they are evicted.
        self.draining = False
        #: New pods' first TokenRequests wait here while the API server lags the watch (one per node).
        self.catchup = catchup.Gate(monotonic=monotonic)
        #: Told of every service-account token requested for a create (``renewal`` sets it).
        self.on_token: Callable[[objects.Pod, tokens.Issued], None] | None = None

    # --- the entry point ---

    async def sync(self, key: str) -> float | None:
        """Decide and act until a decision needs no answer from the cloud; its requeue is returned."""
        if not self.may_act():
            raise errors.Unavailable("standing by: another controller holds this node's Lease", code="StandingBy")
        facts = self._facts(key)
        while True:
            decision = lifecycle.decide(facts, self.config)
            if decision.events:
                assert facts.pod is not None, "events are about a pod"
                for event in decision.events:
                    self.recorder.post(facts.pod, event)
            if decision.action not in lifecycle.ASKS:
                await self._finish(key, facts, decision)
                return decision.requeue
            answer = await self._ask(facts, decision)
            facts = dataclasses.replace(facts, answer=answer, now=self.clock())

    def _facts(self, key: str) -> lifecycle.Facts:
        view = self.book.view
        pod = view.pods.get(key)
        uid = pod.metadata.uid if pod is not None else view.gone.get(key, "")
        return lifecycle.Facts(
            pod=pod,
            uid=uid,
            state=view.states.get(uid) if uid else None,
            memory=self.book.memory(uid),
            now=self.clock(),
            moment=self.monotonic(),
            listed_at=view.listed_at,
            draining=self.draining,
        )

    # --- carrying a decision out ---

    async def _ask(self, facts: lifecycle.Facts, decision: lifecycle.Decision) -> lifecycle.Answer:
        pod = facts.pod
        if decision.action is Action.DELETE:
            return await self._delete(pod, decision.instances, decision.grace)
        assert pod is not None, "only deletes are asked for a gone pod"
        if decision.action is Action.CREATE:
            return await self._create(pod)
        if decision.action is Action.LOOK_UP:
            return await self._look_up(decision.instances[0])
        return await self._find(facts.uid)

    async def _finish(self, key: str, facts: lifecycle.Facts, decision: lifecycle.Decision) -> None:
        pod, uid = facts.pod, facts.uid
        if decision.note:
            log.warning(decision.note, extra={"pod": key})
        if decision.action is Action.RELEASE:
            assert pod is not None
            await self._release(pod)
        if decision.record is not None:
            self.book.record(uid, decision.record, made=isinstance(facts.answer, lifecycle.Created))
        if decision.forget:
            self.book.forget(uid, key="" if pod is not None else key)
        elif pod is not None:
            self.book.remember(uid, facts.memory if decision.memory is None else decision.memory)
        if decision.status is not None:
            assert pod is not None
            await self._write(pod, decision.status)
            if decision.stage == "reclaimed" or _marks(decision):
                self.metrics.reclaims.labels(self.metrics.node, decision.stage).inc()
        if decision.annotations:
            assert pod is not None
            await self._annotate(pod, decision.annotations)
        if decision.action is Action.EVICT:
            assert pod is not None
            await self._evict(pod)
        if decision.action is Action.EVICTION:
            assert pod is not None
            await self._eviction(pod)
        if decision.count:
            self.metrics.retries.labels(self.metrics.node, decision.count).inc()
        if decision.error is not None:
            raise decision.error

    async def _create(self, pod: objects.Pod) -> lifecycle.Answer:
        provider = self.target.profile
        refused = fields.refusals(pod, provider.pod_fields, provider.ignored_fields)
        if refused and provider.pod_fields:  # the one place a field is refused, before anything is made
            # (a profile declaring no field at all, the neutral one of unit tests, is not checked)
            return lifecycle.Invalid(fields.message(refused, provider.name), reason=fields.REASON)
        try:
            sources = await self._sources(pod)
            wanted = spec.build(pod, sources, self.target, self.profile())
        except spec.Missing as missing:
            return lifecycle.Missing(str(missing), absent.mandatory_reason(missing))
        except claims.Unbound as unbound:
            return lifecycle.Missing(str(unbound), mount=True)
        except errors.InvalidSpec as invalid:
            return lifecycle.Invalid(invalid.message)
        for name in registry.missing(pod, sources.secrets):  # the kubelet pulls without it, and says so
            message = (
                f"Unable to retrieve some image pull secrets ({name}); attempting to pull the image may not succeed."
            )
            self.recorder.pod(pod, "FailedToRetrieveImagePullSecret", message, type="Warning")
        sent_at = self.monotonic()
        try:
            made = await self._call("create", self.provider.create(wanted))
        except errors.InvalidSpec as invalid:
            return lifecycle.Invalid(invalid.message)
        except errors.CapacityError as exc:
            return lifecycle.NoCapacity(exc)
        except errors.VolumeInUse as exc:  # like the kubelet's Multi-Attach wait: it starts once the disk is free
            return lifecycle.Missing(exc.message, mount=True)
        log.info("instance %s created", made.id, extra={"pod": pod.key, "instance": made.id})
        return lifecycle.Created(made, sent_at, absent.optional(pod, sources))

    async def _look_up(self, instance_id: str) -> lifecycle.Answer:
        try:
            return lifecycle.LookedUp(instance_id, await self._call("get", self.provider.get(instance_id)))
        except errors.NotFound:
            return lifecycle.LookedUp(instance_id, None)

    async def _find(self, uid: str) -> lifecycle.Answer:
        """The pod's instances by tag: one made since the last listing, or lost in flight, is found too."""
        tags = {
            models.TAG_CLUSTER: self.target.cluster_id,
            models.TAG_NODE: self.target.node_name,
            models.TAG_POD_UID: uid,
        }
        return lifecycle.Found(tuple(s.id for s in await self._call("list", self.provider.list(tags))))

    async def _delete(self, pod: objects.Pod | None, instance_ids: tuple[str, ...], grace: float) -> lifecycle.Answer:
        for instance_id in instance_ids:
            await self._call("delete", self.provider.delete(instance_id, grace_seconds=grace))
            if pod is None:
                log.info("instance %s deleted: its pod is gone", instance_id, extra={"instance": instance_id})
            else:
                log.info("instance %s deleting (grace %.0fs)", instance_id, grace,
                         extra={"pod": pod.key, "instance": instance_id})  # fmt: skip
        return lifecycle.Deleted(instance_ids, self.monotonic())

    async def _release(self, pod: objects.Pod) -> None:
        """Remove the pod object: its instance is gone (or given up on), the pod may go too."""
        self.book.drop(pod.metadata.uid)
        # NotFound: gone already; Conflict: a new pod of the same name, not ours to delete.
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await api.delete_pod(
                self.kube, pod.metadata.namespace, pod.metadata.name, grace_seconds=0, uid=pod.metadata.uid
            )

    async def _evict(self, pod: objects.Pod) -> None:
        """Delete the pod with its grace period: its controller replaces it while its instance still runs."""
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await api.delete_pod(self.kube, pod.metadata.namespace, pod.metadata.name, uid=pod.metadata.uid)
        self.metrics.reclaims.labels(self.metrics.node, "evicted").inc()
        log.info("pod deleted ahead of its instance's reclamation", extra={"pod": pod.key})

    async def _eviction(self, pod: objects.Pod) -> None:
        """Evict the pod through the API, as a drain does: a PodDisruptionBudget may refuse it for now
        (the decision looks again), and its controller replaces it while its instance still runs."""
        try:
            await extra.evict(self.kube, pod.metadata.namespace, pod.metadata.name, uid=pod.metadata.uid)
        except (errors.NotFound, errors.Conflict):
            return
        except errors.Throttled as refused:
            message = f"evicting the pod ahead of its instance's reclamation: refused for now ({refused.message})"
            self.recorder.pod(pod, "EvictionBlocked", message, type="Warning")
            self.metrics.reclaims.labels(self.metrics.node, "eviction-refused").inc()
            return
        self.metrics.reclaims.labels(self.metrics.node, "evicted").inc()
        log.info("pod evicted ahead of its instance's reclamation", extra={"pod": pod.key})

    async def _write(self, pod: objects.Pod, wanted: Mapping[str, Any]) -> None:
        body = {"metadata": {"uid": pod.metadata.uid}, "status": wanted}
        try:
            await api.patch_pod_status(self.kube, pod.metadata.namespace, pod.metadata.name, body)
        except errors.NotFound:
            return
        self.book.wrote(pod.metadata.uid, wanted)
        self.metrics.status_writes.labels(self.metrics.node).inc()

    async def _annotate(self, pod: objects.Pod, annotations: Mapping[str, str]) -> None:
        """The cloud's annotations (an allocated public address, say) onto the pod: a metadata patch, once."""
        body = {"metadata": {"uid": pod.metadata.uid, "annotations": dict(annotations)}}
        try:
            await api.patch_pod(self.kube, pod.metadata.namespace, pod.metadata.name, body)
        except errors.NotFound:
            return
        self.book.annotated(pod.metadata.uid, annotations)

    async def _call(self, action: str, call: Awaitable[T]) -> T:
        try:
            result = await call
        except errors.ApiError as exc:
            self.metrics.cloud_call(action, exc.code)
            raise
        self.metrics.cloud_call(action, "ok")
        return result

    # --- what a create needs ---

    async def _sources(self, pod: objects.Pod) -> spec.Sources:
        refs = spec.references(pod)
        ns = pod.metadata.namespace
        driver = claims.driver_secrets(pod)  # read as the CSI driver would, as the daemon's own account
        names = [("configmaps", n) for n in refs.configmaps]
        names += [("driver-secrets" if n in driver else "secrets", n) for n in refs.secrets]
        audiences = sorted(refs.tokens)
        claim_names = sorted(refs.claims)
        fetched, tokens, found = await asyncio.gather(
            asyncio.gather(*(self.references.get(ns, kind, name) for kind, name in names)),
            asyncio.gather(*(self._token(pod, audience, seconds) for audience, seconds in audiences)),
            asyncio.gather(*(self.claim_cache.get(ns, "persistentvolumeclaims", name) for name in claim_names)),
        )
        cms = {name: data for (kind, name), data in zip(names, fetched, strict=True) if kind == "configmaps"}
        secs = {name: data for (kind, name), data in zip(names, fetched, strict=True) if kind != "configmaps"}
        return spec.Sources(
            configmaps=cms,
            secrets=secs,
            tokens=dict(zip(audiences, tokens, strict=True)),
            claims=dict(zip(claim_names, found, strict=True)),
        )

    async def _read_claim(self, namespace: str, kind: str, name: str) -> claims.Claim | None:
        """The claim and, once it is bound, its PersistentVolume (one get each)."""
        try:
            claim = await api.read(self.as_node, api.persistent_volume_claims(namespace), name)
        except errors.NotFound:
            return None
        if claim.status.phase != "Bound" or not claim.spec.volume_name:
            return claims.Claim(claim)
        try:
            volume = await api.read(self.as_node, api.PERSISTENT_VOLUMES, claim.spec.volume_name)
        except errors.NotFound:
            return claims.Claim(claim)
        csi = volume.source().csi
        ref = (
            csi.secret_ref() if csi is not None and self.target.profile.csi_drivers.get(csi.driver) == "share" else None
        )
        if ref is None:
            return claims.Claim(claim, volume)
        # A share's credentials, in the Secret its PersistentVolume names (the driver's way, any namespace).
        return claims.Claim(claim, volume, await self._read_ref(ref.namespace or namespace, "secrets", ref.name))

    async def _read_ref(self, namespace: str, kind: str, name: str) -> dict[str, bytes] | None:
        try:
            if kind == "configmaps":
                return spec.configmap_data(await api.read(self.as_node, api.config_maps(namespace), name))
            if kind == "driver-secrets":
                return spec.secret_data(await api.read(self.kube, api.secrets(namespace), name))
            return spec.secret_data(await api.read(self.as_node, api.secrets(namespace), name))
        except errors.NotFound:
            return None
        except errors.Forbidden as refused:
            if kind != "driver-secrets" or self.as_node is self.kube:
                raise  # the Node authorizer not yet told of the pod, say: retried soon
            raise spec.Unreadable("secret", name, DRIVER_SECRET_REFUSED.format(refused.message)) from refused

    async def _token(self, pod: objects.Pod, audience: str, seconds: int) -> str:
        issued = await tokens.request(self.as_node, pod, audience, seconds, gate=self.catchup, monotonic=self.monotonic)
        if self.on_token is not None:
            self.on_token(pod, issued)  # ``renewal`` schedules the token's renewal from its issue
        return issued.token


DRIVER_SECRET_REFUSED = (
    "an inline CSI volume names it in volumeAttributes.secretName, which the CSI driver reads as its own "
    "account and the node may not ({}); name it as the volume's nodePublishSecretRef instead (read as the "
    "node, as a kubelet does), or let the daemon's account get it (the chart's daemon.csiDriverSecrets)"
)


def _marks(decision: lifecycle.Decision) -> bool:
    """Whether the decision marks a pod at its reclaim notice (not one asking for its eviction again)."""
    return decision.stage == "reclaim-notice" and any(e.reason == "Reclaiming" for e in decision.events)
