"""Projected service-account tokens are renewed in running instances, as a kubelet rotates them.

A kubelet requests a new token for a pod's ``serviceAccountToken`` projection once the one it
mounted is older than 80 % of its life, or than 24 hours (``tokens.renew_after``), and rewrites
the file; in-cluster clients re-read it. Without that, a pod that runs longer than its token's
life (an hour by default) is left with an expired token. Here the file lives in the cloud, so a
renewal is one TokenRequest per token of the pod and one volume update of its instance, through
the provider's optional ``base.SupportsVolumeUpdate`` ability, as ``refresh`` sends ConfigMap
and Secret changes; a provider without it renews nothing (its pods keep the token they started
with, so they should not outlive it).

The cost, as small as the job allows:

* one heap of due times for the node (``tokens.Schedule``) and one worker that sleeps until the
  earliest: no task and no polling per pod; a pod without a token volume is never put on it;
* the due time comes from the token actually issued: the reconciler tells this module of every
  token it requests for a create (``Reconciler.on_token``), and a renewal schedules the next
  from its own answer. All of a pod's tokens are renewed together, when the first is due, and
  their volumes (the whole projected volume: token, ``ca.crt``, namespace) sent in one update;
* a pod whose instance is not there yet (its create under way, or refused) waits off the heap for
  its next event; the worker starts once the cloud has been listed, so that after a restart a pod
  without an instance state really has none;
* a deleted pod leaves the heap and every map here at once.

A restarted daemon did not see its pods' tokens issued. It derives a safe bound from what it can
read instead (``tokens.derived_due``): the current token was issued no earlier than just before
the instance was created and lives at least the asked seconds (an hour at most, the lowest cap an
API server may set), so an instance younger than 80 % of that waits its turn, and an older one,
or one whose creation time the cloud does not give, is renewed at once, once. Its schedule then
follows the new token.

An update is built once and kept until it is applied: retries, after a failure or an ambiguous
answer, send the same files with the same client token (``<pod uid>-<digest>``), so the cloud
applies it once; failures are retried with exponential backoff (at least the cloud's retry hint).
Only the node's owner (the Lease holder) renews, and only Pending or Running instances.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from vnode import errors, models, waits
from vnode.kube import client, objects
from vnode.node import pods, reconcile, references, refresh, spec, tokens
from vnode.observability import metrics as metrics_mod
from vnode.provider import base

__all__ = ["Renewer", "attach"]

log = logging.getLogger(__name__)


def attach(
    controller: pods.PodController,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.time,
) -> Renewer | None:
    """A renewer fed by ``controller``'s pod watch and its reconciler's token requests, if its
    provider can update volumes; else None (and tokens are requested once, at creation)."""
    provider = controller.provider
    if not isinstance(provider, base.SupportsVolumeUpdate):
        return None
    reconciler = controller.reconciler
    renewer = Renewer(
        reconciler.as_node,  # tokens are requested as the node, as at creation
        provider,
        controller.view,
        target=reconciler.target,
        references=reconciler.references,
        listed=controller.ready,
        may_act=reconciler.may_act,
        rng=rng,
        clock=clock,
        metrics=controller.metrics,
    )
    controller.listeners.append(renewer.on_pod)
    reconciler.on_token = renewer.issued
    return renewer


class _Update:
    """A renewal built and not yet applied: sent again as it is until the cloud takes it."""

    def __init__(self, uid: str, volumes: list[models.VolumeSpec], next_due: float) -> None:
        self.uid = uid
        self.volumes = volumes
        self.next_due = next_due  # when the tokens in it are due for renewal in turn
        self.client_token = f"{uid}-{spec.volumes_digest(volumes)}"[:64]


class Renewer:
    """Keeps the service-account tokens in this node's instances' volumes fresh."""

    def __init__(
        self,
        kube: client.Client,
        provider: base.SupportsVolumeUpdate,
        view: reconcile.View,
        *,
        target: spec.Target,
        references: references.Cache[dict[str, bytes] | None],
        may_act: Callable[[], bool] = lambda: True,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        metrics: metrics_mod.Metrics | None = None,
        max_backoff: float = 60.0,
        recheck: float = 5.0,
        listed: asyncio.Event | None = None,
    ) -> None:
        self.kube = kube
        self.provider = provider
        self.view = view
        self.target = target
        self.references = references  # the reconciler's short cache of ConfigMaps and Secrets (kube-root-ca.crt)
        self.may_act = may_act
        self.clock = clock  # wall-clock seconds; tests pass one they move forward, then call ``wake``
        self.metrics = metrics
        self._rng = rng or random.Random()
        self._max_backoff = max_backoff
        self.recheck = recheck  # seconds between looks at an instance not up yet, or while standing by
        #: Set once the cloud has been listed after the pod cache synced (``PodController.ready``): only then
        #: does a pod without an instance state really have none (a restart adopts the others).
        self.listed = listed or asyncio.Event()
        if listed is None:
            self.listed.set()
        self.schedule = tokens.Schedule()  # pod key -> when to look at it next
        self._uids: dict[str, str] = {}  # pod key -> UID, of the pods with token volumes
        self._known: set[str] = set()  # keys whose due time comes from a token seen issued (else: derive it)
        self._idle: set[str] = set()  # keys waiting for their pod's next event (their instance to appear)
        self._pending: dict[str, _Update] = {}
        self._failures: dict[str, int] = {}
        self._wake = asyncio.Event()
        self.renewals = 0  # updates applied, for tests and metrics

    # --- fed by the pod watch and the reconciler ---

    def on_pod(self, key: str, pod: objects.Pod | None) -> None:
        if pod is None or pod.metadata.deletion_timestamp is not None:
            self.forget(key)
            return
        uid = pod.metadata.uid
        if self._uids.get(key) == uid:
            if key in self._idle:  # its status changed: its instance may be there now
                self._at(key, self.clock())
            return
        self.forget(key)  # a new pod of the same name, if any
        if not tokens.token_volumes(pod):
            return
        self._uids[key] = uid
        self._at(key, self.clock())

    def issued(self, pod: objects.Pod, issued: tokens.Issued) -> None:
        """A token requested for ``pod``'s create: its renewal is due from its issue (the earliest, if several)."""
        key = pod.key
        if self._uids.get(key) != pod.metadata.uid:
            return  # not (or no longer) a pod of this node's watch: nothing to keep
        due = self.clock() - issued.took + tokens.renew_after(issued.life)
        current = self.schedule.due(key)
        if key not in self._known or current is None or due < current:
            self._at(key, due)
        self._known.add(key)

    def forget(self, key: str) -> None:
        """Drop every trace of ``key`` (its pod is deleted, or replaced by a pod of the same name)."""
        self.schedule.drop(key)
        self._uids.pop(key, None)
        self._known.discard(key)
        self._idle.discard(key)
        self._pending.pop(key, None)
        self._failures.pop(key, None)

    @property
    def footprint(self) -> int:
        """Entries kept for pods, all maps and the heap together (tests check that deleted pods leave none)."""
        maps = (self._uids, self._known, self._idle, self._pending, self._failures)
        return sum(len(m) for m in maps) + self.schedule.size

    def wake(self) -> None:
        """Look at the schedule again now (the clock moved, in tests)."""
        self._wake.set()

    def _at(self, key: str, due: float) -> None:
        self._idle.discard(key)
        if self.schedule.set(key, due):
            self._wake.set()

    # --- the worker ---

    async def run(self) -> None:
        await self.listed.wait()
        while True:
            first = self.schedule.next()
            wait = None if first is None else first - self.clock()
            if wait is None or wait > 0:
                await waits.event(self._wake, wait)
                self._wake.clear()
            for key in self.schedule.pop(self.clock()):
                try:
                    await self._look(key)
                except Exception as exc:  # a bug about one pod must not end the node's renewals (nor the node)
                    log.exception("token renewal failed unexpectedly", extra={"pod": key})
                    if key in self._uids:
                        self._retry(key, exc)

    async def _look(self, key: str) -> None:
        pod = self.view.pods.get(key)
        uid = self._uids.get(key)
        if pod is None or uid is None or pod.metadata.uid != uid:
            return  # gone: ``on_pod`` forgets it
        state = self.view.states.get(uid)
        if state is not None and state.status in refresh.FINAL:
            self._known.add(key)  # its containers will not run again: nothing to renew, no more looks
            return
        now = self.clock()
        if state is None:  # its create is under way, retried or refused: the pod's next event brings it back
            self._idle.add(key)
            return
        if key not in self._known:  # an instance this daemon did not create (it restarted): derive the due time
            self._known.add(key)
            created = state.created_at.timestamp() if state.created_at is not None else None
            due = tokens.derived_due(created, (seconds for _, seconds in tokens.needs(pod).tokens), now)
            if due > now:
                self._at(key, due)
                return
        if not self.may_act() or state.status not in refresh.UPDATABLE:
            self._at(key, now + self.recheck)  # another controller holds the node, or the instance is not up yet
            return
        await self._renew(key, pod, state)

    async def _renew(self, key: str, pod: objects.Pod, state: models.InstanceState) -> None:
        uid = pod.metadata.uid
        update = self._pending.get(key)
        if update is None or update.next_due <= self.clock():  # nothing built, or its tokens are old already
            try:
                update = await self._build(pod)
            except (errors.ApiError, spec.Missing) as exc:  # kube-root-ca.crt or the account missing, say
                if self._tracks(key, uid):
                    self._retry(key, exc)
                return
            if not self._tracks(key, uid):
                return  # deleted meanwhile: nothing is kept for it
            self._pending[key] = update
        try:
            await self.provider.update_volumes(state.id, update.volumes, client_token=update.client_token)
        except errors.ApiError as exc:
            self._count(exc.code)
            if not self._tracks(key, uid):
                return
            if isinstance(exc, errors.NotFound):  # the instance is gone: if the pod gets another, renew that
                self._pending.pop(key, None)
                self._at(key, self.clock() + self.recheck)
            else:
                self._retry(key, exc)
            return
        self._count("ok")
        self.renewals += 1
        log.info("service-account tokens renewed on instance %s", state.id, extra={"pod": key})
        if self._tracks(key, uid):
            self._pending.pop(key, None)
            self._failures.pop(key, None)
            self._at(key, update.next_due)

    def _tracks(self, key: str, uid: str) -> bool:
        """Whether ``key`` is still this pod (after an await: it may have been deleted, and forgotten, meanwhile)."""
        return self._uids.get(key) == uid

    async def _build(self, pod: objects.Pod) -> _Update:
        """New tokens and the token volumes rebuilt around them (the ConfigMaps and Secrets they project too)."""
        needs = tokens.needs(pod)
        ns = pod.metadata.namespace
        names = [("configmaps", n) for n in needs.configmaps] + [("secrets", n) for n in needs.secrets]
        fetched, issued = await asyncio.gather(
            asyncio.gather(*(self.references.get(ns, kind, name) for kind, name in names)),
            asyncio.gather(*(tokens.request(self.kube, pod, aud, sec) for aud, sec in sorted(needs.tokens))),
        )
        now = self.clock()
        sources = spec.Sources(
            configmaps={n: data for (kind, n), data in zip(names, fetched, strict=True) if kind == "configmaps"},
            secrets={n: data for (kind, n), data in zip(names, fetched, strict=True) if kind == "secrets"},
            tokens={(i.audience, i.seconds): i.token for i in issued},
        )
        volumes = [spec.volume(pod, v, sources, self.target) for v in tokens.token_volumes(pod)]
        next_due = min(now - i.took + tokens.renew_after(i.life) for i in issued)
        return _Update(pod.metadata.uid, volumes, next_due)

    def _retry(self, key: str, exc: Exception) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(self._max_backoff, 0.5 * 2**failures) * (0.5 + self._rng.random() / 2)
        if isinstance(exc, errors.Retryable) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        log.warning("token renewal failed: %s; again in %.1fs", exc, delay, extra={"pod": key})
        self._at(key, self.clock() + delay)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.cloud_call("update", result)
