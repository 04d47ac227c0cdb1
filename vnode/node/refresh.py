"""ConfigMap and Secret updates reach running pods' volumes, as a kubelet refreshes them.

A kubelet rewrites the files of a pod's configMap and secret volumes when the objects change;
env stays as the container started with (it is read once, at start, on a kubelet too). On a
virtual node the files live in the cloud, so a change becomes one volume update per affected
instance, through the provider's optional ``base.SupportsVolumeUpdate`` ability.

How changes are noticed, without watching the cluster and without reading per pod:

* an index ``(namespace, kind, name) -> pod keys`` of the plain ``configMap``/``secret``
  volumes of this node's pods, kept from the pod watch (``on_pod``);
* the ConfigMaps and Secrets mounted here are not watched: they are read by name, as the node
  (which may read its pods' objects only, as a kubelet may), every ``secret_interval`` seconds
  (``polled.py``), one read per distinct object, as the kubelet's ``Cache`` strategy does; a pod
  mounting one not read yet has it read at once.

Each affected pod is re-evaluated by one worker: its volumes are rebuilt from the objects as
last read and hashed, and compared with what the instance holds: the digest the instance was
tagged with at creation (``spec.TAG_VOLUMES``, so a restarted daemon knows it too), or the
last update sent. A different digest sends one update with the client token
``<pod uid>-<digest>``, so a retry after an ambiguous failure, or after a restart, never
applies twice; an unchanged one sends nothing. Failures are
retried with exponential backoff; a success posts a Normal ``VolumesUpdated`` event on the pod.
Projected volumes are not refreshed here: those holding a service-account token are rebuilt, whole,
when ``renewal`` renews the token (at 80 % of its life), so a ``kube-root-ca.crt`` change reaches them
then; other projected volumes keep the content they were created with.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable

from vnode import errors, models, waits
from vnode.kube import api, client, objects
from vnode.node import events, pods, polled, reconcile, spec
from vnode.observability import metrics as metrics_mod
from vnode.provider import base

__all__ = ["FINAL", "SECRET_INTERVAL", "UPDATABLE", "Refresher"]

log = logging.getLogger(__name__)

SECRET_INTERVAL = 60.0  # seconds between reads of a mounted ConfigMap or Secret (settings.secret_refresh_interval)

# The instances a volume update may go to, and those past any update (shared with ``renewal``).
UPDATABLE = (models.InstanceStatus.PENDING, models.InstanceStatus.RUNNING)
FINAL = (
    models.InstanceStatus.SUCCEEDED,
    models.InstanceStatus.FAILED,
    models.InstanceStatus.EXPIRED,
    models.InstanceStatus.SCHEDULE_FAILED,
    models.InstanceStatus.TERMINATING,
)


def volume_refs(pod: objects.Pod) -> set[tuple[str, str]]:
    """The (kind, name) of the ConfigMaps and Secrets that ``pod``'s plain configMap/secret volumes mount."""
    refs: set[tuple[str, str]] = set()
    for volume in pod.spec.volumes:
        if volume.config_map is not None and volume.config_map.name:
            refs.add(("configmaps", volume.config_map.name))
        if volume.secret is not None and volume.secret.secret_name:
            refs.add(("secrets", volume.secret.secret_name))
    return refs


class _Namespace:
    """One namespace's ConfigMap and Secret reads, and how many indexed pods need them."""

    def __init__(
        self,
        as_node: client.Client,
        namespace: str,
        on_change: Callable[[str, str], None],
        names: Callable[[str], Iterable[str]],
        interval: float,
    ) -> None:
        self.pods = 0
        # Read as the node: only the objects its pods mount.
        self.configmaps = polled.Objects(as_node, api.config_maps(namespace), namespace,
                                         lambda: names("configmaps"), lambda key: on_change("configmaps", key),
                                         interval=interval)  # fmt: skip
        self.secrets = polled.Objects(as_node, api.secrets(namespace), namespace, lambda: names("secrets"),
                                      lambda key: on_change("secrets", key), interval=interval)  # fmt: skip
        self.tasks = [asyncio.create_task(self.configmaps.run()), asyncio.create_task(self.secrets.run())]

    def ready(self, refs: Iterable[tuple[str, str]]) -> bool:
        """Each object among ``refs`` was read."""
        configmaps = [name for kind, name in refs if kind == "configmaps"]
        secrets = [name for kind, name in refs if kind == "secrets"]
        return self.configmaps.has_read(configmaps) and self.secrets.has_read(secrets)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


def attach(
    controller: pods.PodController,
    recorder: events.Recorder,
    rng: random.Random | None = None,
    *,
    secret_interval: float = SECRET_INTERVAL,
) -> Refresher | None:
    """A refresher fed by ``controller``'s pod watch, if its provider can update volumes; else None."""
    provider = controller.provider
    if not isinstance(provider, base.SupportsVolumeUpdate):
        return None
    refresher = Refresher(
        controller.kube,
        provider,
        controller.view,
        target=controller.reconciler.target,
        recorder=recorder,
        may_act=controller.reconciler.may_act,
        rng=rng,
        metrics=controller.metrics,
        secret_interval=secret_interval,
        as_node=controller.reconciler.as_node,
    )
    controller.listeners.append(refresher.on_pod)
    return refresher


class Refresher:
    """Keeps the files of configMap/secret volumes of this node's instances up to date."""

    def __init__(
        self,
        kube: client.Client,
        provider: base.SupportsVolumeUpdate,
        view: reconcile.View,
        *,
        target: spec.Target,
        recorder: events.Recorder,
        may_act: Callable[[], bool] = lambda: True,
        rng: random.Random | None = None,
        metrics: metrics_mod.Metrics | None = None,
        max_backoff: float = 60.0,
        recheck: float = 1.0,
        secret_interval: float = SECRET_INTERVAL,
        as_node: client.Client | None = None,
    ) -> None:
        self.kube = kube
        self.as_node = as_node or kube  # Secrets are read as the node (settings.node_identity)
        self.provider = provider
        self.view = view
        self.target = target
        self.recorder = recorder
        self.metrics = metrics
        self.may_act = may_act  # only the node's owner (the Lease holder) updates instances
        self._rng = rng or random.Random()
        self._max_backoff = max_backoff
        self.recheck = recheck  # seconds between looks at pods still waiting
        self.secret_interval = secret_interval  # seconds between reads of each mounted Secret
        self._refs: dict[str, set[tuple[str, str]]] = {}  # pod key -> (kind, name) it mounts
        self._index: dict[tuple[str, str, str], set[str]] = {}  # (namespace, kind, name) -> pod keys
        self._namespaces: dict[str, _Namespace] = {}
        self._uids: dict[str, str] = {}  # pod key -> UID
        self._applied: dict[str, str] = {}  # pod UID -> hash of the volume content the instance has
        self._failures: dict[str, int] = {}  # pod key -> failed updates in a row
        self._dirty: set[str] = set()
        self._waiting: set[str] = set()  # pod keys not yet evaluated (no instance yet, objects not read yet)
        self._wake = asyncio.Event()
        self.updates = 0  # updates sent successfully, for tests and metrics

    # --- the index, fed by the pod watch ---

    def on_pod(self, key: str, pod: objects.Pod | None) -> None:
        if pod is not None and pod.metadata.deletion_timestamp is None and self._uids.get(key) == pod.metadata.uid:
            # A pod's volumes never change: only a pod still waiting for its instance needs a look (its
            # status changes as the instance appears); every other pod event costs nothing here.
            if key in self._waiting:
                self._mark(key)
            return
        refs = volume_refs(pod) if pod is not None and pod.metadata.deletion_timestamp is None else set()
        old = self._refs.get(key, set())
        if refs != old:
            namespace = key.partition("/")[0]
            for kind, name in old - refs:
                keys = self._index.get((namespace, kind, name))
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._index[(namespace, kind, name)]
            for kind, name in refs - old:
                self._index.setdefault((namespace, kind, name), set()).add(key)
            if refs and not old:
                self._watch(namespace, +1)
            elif old and not refs:
                self._watch(namespace, -1)
            ns = self._namespaces.get(namespace)
            if ns is not None and refs - old:
                ns.configmaps.wake()
                ns.secrets.wake()
            if refs:
                self._refs[key] = refs
            else:
                self._refs.pop(key, None)
                self._failures.pop(key, None)
        if pod is None:
            self._waiting.discard(key)
            uid = self._uids.pop(key, None)
            if uid is not None:
                self._applied.pop(uid, None)
        else:
            self._uids[key] = pod.metadata.uid
        if refs:
            self._mark(key)

    def _watch(self, namespace: str, delta: int) -> None:
        ns = self._namespaces.get(namespace)
        if ns is None:
            ns = self._namespaces[namespace] = _Namespace(
                self.as_node,
                namespace,
                lambda kind, key: self._on_object(namespace, kind, key),
                lambda kind: self._mounted(namespace, kind),
                self.secret_interval,
            )
        ns.pods += delta
        if ns.pods <= 0:
            ns.stop()
            del self._namespaces[namespace]

    def _mounted(self, namespace: str, kind: str) -> list[str]:
        return [name for (ns, k, name) in self._index if ns == namespace and k == kind]

    def _on_object(self, namespace: str, kind: str, key: str) -> None:
        name = key.partition("/")[2]
        for pod_key in self._index.get((namespace, kind, name), ()):
            self._mark(pod_key)

    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    # --- the worker ---

    async def run(self) -> None:
        try:
            while True:
                if not await waits.event(self._wake, self.recheck if self._waiting else None):
                    # Pods still waiting for their instance's first listing or their namespace's watches (an
                    # adopted pod gets no status event after a restart): a dict lookup each, once a second.
                    self._dirty |= self._waiting
                self._wake.clear()
                keys, self._dirty = self._dirty, set()
                for key in keys:
                    await self._refresh(key)
        finally:
            for ns in self._namespaces.values():
                ns.stop()
            tasks = [t for ns in self._namespaces.values() for t in ns.tasks]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _refresh(self, key: str) -> None:
        pod = self.view.pods.get(key)
        refs = self._refs.get(key)
        if pod is None or not refs:
            return
        ns = self._namespaces.get(pod.metadata.namespace)
        state = self.view.states.get(pod.metadata.uid)
        if state is not None and state.status in FINAL:
            self._waiting.discard(key)  # its containers will not run again: nothing to update
            return
        if not self.may_act() or ns is None or not ns.ready(refs) or state is None or state.status not in UPDATABLE:
            self._waiting.add(key)  # looked at again on the pod's next change (its status follows the instance)
            return
        self._waiting.discard(key)
        volumes = self._volumes(pod, ns)
        if volumes is None:
            return
        digest = spec.volumes_digest(volumes)
        uid = pod.metadata.uid
        applied = self._applied.get(uid) or state.tags.get(spec.TAG_VOLUMES)
        if applied is None:  # an instance made before the tag existed: take today's content as its own
            self._applied[uid] = digest
            return
        if applied == digest:
            return
        token = f"{uid}-{digest}"[:64]
        try:
            await self.provider.update_volumes(state.id, volumes, client_token=token)
        except errors.NotFound:
            self._count("NotFound")
            return  # the instance is gone: the pod controller reports that
        except errors.ApiError as exc:
            self._count(exc.code)
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            delay = min(self._max_backoff, 0.5 * 2**failures) * (0.5 + self._rng.random() / 2)
            if isinstance(exc, errors.Retryable) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            log.warning("volume update failed: %s; again in %.1fs", exc, delay, extra={"pod": key})
            asyncio.get_running_loop().call_later(delay, self._mark, key)
            return
        self._count("ok")
        self._failures.pop(key, None)
        self._applied[uid] = digest
        self.updates += 1
        names = ", ".join(v.name for v in volumes)
        self.recorder.pod(pod, "VolumesUpdated", f"Updated the files of volumes {names} from their new content")
        log.info("volumes %s updated on instance %s", names, state.id, extra={"pod": key})

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.cloud_call("update", result)

    def _volumes(self, pod: objects.Pod, ns: _Namespace) -> list[models.VolumeSpec] | None:
        """The pod's configMap/secret volumes from the watched objects; None while a required one is missing."""
        prefix = pod.metadata.namespace + "/"
        refs = self._refs.get(prefix + pod.metadata.name, set())
        sources = spec.Sources(
            configmaps={
                name: spec.configmap_data(cm)
                for kind, name in refs
                if kind == "configmaps" and (cm := ns.configmaps.cache.get(prefix + name)) is not None
            },
            secrets={
                name: spec.secret_data(sec)
                for kind, name in refs
                if kind == "secrets" and (sec := ns.secrets.cache.get(prefix + name)) is not None
            },
        )
        try:
            return [spec.volume(pod, v, sources, self.target) for v in spec.refreshable(pod)]
        except (spec.Missing, errors.InvalidSpec):
            return None
