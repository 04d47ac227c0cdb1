"""The CPU and memory cost of ``vnode.node.refresh`` at 10,000 pods over 300 namespaces.

``python -m bench.refresh_cost``: the refresher's own work, in process, with the namespace's ConfigMap
watch and Secret reads replaced by ready caches (three 2 KB ConfigMaps and one Secret per namespace; each pod mounts one
ConfigMap and the Secret): indexing every pod, a later status event of every pod, the first look at
every instance (digests compared with the instance's tag), and one ConfigMap changed. The API
server's side (a watch per namespace, a read per mounted Secret per interval) is not measured here.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import types
from collections.abc import Callable
from typing import Any

import msgspec

from vnode import models
from vnode.kube import objects
from vnode.node import reconcile, refresh, resources, spec
from vnode.provider.fake import provider as fake

NAMESPACES, PODS = 300, 10_000


class ReadyNamespace:
    """Stands for ``refresh._Namespace``: synced caches, no watch and no reads."""

    def __init__(self, kube: object, namespace: str, on_change: Callable[[str, str], None], *rest: object) -> None:
        self.pods = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.configmaps = types.SimpleNamespace(cache={})
        self.secrets = types.SimpleNamespace(cache={}, wake=lambda: None)
        for k in range(3):
            meta = objects.ObjectMeta(name=f"cfg-{k}", namespace=namespace)
            self.configmaps.cache[f"{namespace}/cfg-{k}"] = objects.ConfigMap(
                metadata=meta, data={"a.conf": "x" * 2000}
            )
        meta = objects.ObjectMeta(name="creds", namespace=namespace)
        self.secrets.cache[f"{namespace}/creds"] = objects.Secret(metadata=meta, data={"pw": "c2VjcmV0"})

    def ready(self, refs: object) -> bool:
        return True

    def stop(self) -> None:
        pass


def pod(i: int) -> objects.Pod:
    body: dict[str, Any] = {
        "metadata": {"name": f"p{i}", "namespace": f"ns-{i % NAMESPACES}", "uid": f"uid-{i}"},
        "spec": {
            "containers": [{"name": "c", "image": "x"}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": f"cfg-{i % 3}"}},
                {"name": "sec", "secret": {"secretName": "creds"}},
            ],
        },
    }
    return msgspec.convert(body, objects.Pod)


async def measure(*, traced: bool) -> dict[str, float]:
    refresh._Namespace = ReadyNamespace  # type: ignore[assignment,misc]
    view = reconcile.View(pods={}, states={})
    target = spec.Target(
        cluster_id="c", node_name="n", node_ip="127.0.0.1", placement=models.Placement(), default_size=resources.DEFAULT
    )
    recorder: Any = types.SimpleNamespace(pod=lambda *a, **k: None)
    r = refresh.Refresher(None, fake.FakeProvider(), view, target=target, recorder=recorder)  # type: ignore[arg-type]
    pods = [pod(i) for i in range(PODS)]
    keys = [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods]
    out: dict[str, float] = {}
    if traced:
        tracemalloc.start()
    t = time.process_time()
    for key, p in zip(keys, pods, strict=True):
        view.pods[key] = p
        r.on_pod(key, p)
    out["index_ms"] = (time.process_time() - t) * 1000
    if traced:
        out["index_mb"] = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
    for i, p in enumerate(pods):
        view.states[p.metadata.uid] = models.InstanceState(id=f"i{i}", status=models.InstanceStatus.RUNNING)
    t = time.process_time()
    for key, p in zip(keys, pods, strict=True):
        r.on_pod(key, p)  # the instance appeared: each pod's status event
    dirty, r._dirty = r._dirty, set()
    for key in dirty:
        await r._refresh(key)
    out["first_look_ms"] = (time.process_time() - t) * 1000
    t = time.process_time()
    for key, p in zip(keys, pods, strict=True):
        r.on_pod(key, p)
    out["status_events_ms"] = (time.process_time() - t) * 1000
    changed = objects.ConfigMap(metadata=objects.ObjectMeta(name="cfg-1", namespace="ns-7"), data={"a.conf": "y"})
    r._namespaces["ns-7"].configmaps.cache["ns-7/cfg-1"] = changed  # type: ignore[attr-defined]
    r._on_object("ns-7", "configmaps", "ns-7/cfg-1")
    dirty, r._dirty = r._dirty, set()
    t = time.process_time()
    for key in dirty:
        await r._refresh(key)
    out["one_change_ms"] = (time.process_time() - t) * 1000
    out["pods_affected"] = len(dirty)
    out["namespaces"] = len(r._namespaces)
    return out


def main() -> None:
    memory = asyncio.run(measure(traced=True))["index_mb"]
    cpu = asyncio.run(measure(traced=False))
    print(
        f"{PODS} pods, {int(cpu['namespaces'])} namespaces (a ConfigMap watch and Secret reads each): "
        f"index {cpu['index_ms']:.0f} ms CPU, "
        f"{memory:.1f} MB; first look at every instance {cpu['first_look_ms']:.0f} ms; a status event of every pod "
        f"afterwards {cpu['status_events_ms']:.0f} ms; one ConfigMap change: {int(cpu['pods_affected'])} pods "
        f"re-evaluated in {cpu['one_change_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
