"""Cached pods share the strings they repeat, once settled: the pod cache's memory nearly halves."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from typing import Any

from tests.waiting import until
from vnode.kube import client, compact, objects


def pod_json(i: int) -> bytes:
    """A pod of a Deployment as the API server sends it: most of its strings are its siblings' too."""
    when = "2026-12-07T08:00:05Z"
    pod: dict[str, Any] = {
        "metadata": {"name": f"web-7d9f8c6b5-{i:05d}", "namespace": "team-a", "uid": f"uid-{i}",
                     "resourceVersion": str(1000 + i), "creationTimestamp": "2026-12-07T08:00:00Z",
                     "labels": {"app": "web", "pod-template-hash": "7d9f8c6b5"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5",
                                          "uid": "rs-uid", "controller": True}]},
        "spec": {"nodeName": "vnode-0", "serviceAccountName": "default", "containers": [{
            "name": "web", "image": "registry.example.com/team-a/web:1.27.3",
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "cn-hangzhou"}],
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": True}]}],
            "volumes": [{"name": "config", "configMap": {"name": "web-config"}}]},
        "status": {"phase": "Running", "hostIP": "10.0.0.5", "podIP": f"172.16.0.{i % 250}",
                   "conditions": [{"type": t, "status": "True", "lastTransitionTime": when}
                                  for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                   "containerStatuses": [{"name": "web", "image": "registry.example.com/team-a/web:1.27.3",
                                          "imageID": "registry.example.com/team-a/web@sha256:" + "ab" * 32,
                                          "containerID": f"eci://eci-{i}", "ready": True}]},
    }  # fmt: skip
    return json.dumps(pod).encode()


def test_interned_pods_share_their_repeated_strings_and_are_unchanged() -> None:
    first, second = (client.decode(pod_json(i), objects.Pod) for i in (1, 2))
    assert first.spec.containers[0].image is not second.spec.containers[0].image  # a decoder copies each
    for pod in (first, second):
        compact.intern_strings(pod)
    assert first == client.decode(pod_json(1), objects.Pod)
    for path in (
        lambda p: p.spec.containers[0].image,
        lambda p: p.spec.containers[0].resources.requests["memory"],
        lambda p: p.spec.containers[0].env[1].value,
        lambda p: p.spec.containers[0].volume_mounts[0].mount_path,
        lambda p: p.status.conditions[2].last_transition_time,
        lambda p: p.status.container_statuses[0].image_id,
        lambda p: p.metadata.labels["pod-template-hash"],
        lambda p: p.metadata.owner_references[0].name,
    ):
        assert path(first) is path(second)


def test_interning_takes_over_a_quarter_off_a_cached_pod() -> None:
    raw = [pod_json(i) for i in range(500)]
    tracemalloc.start()
    try:
        began = tracemalloc.get_traced_memory()[0]
        pods = [client.decode(r, objects.Pod) for r in raw]
        decoded = tracemalloc.get_traced_memory()[0] - began
        for pod in pods:
            compact.intern_strings(pod)
        interned = tracemalloc.get_traced_memory()[0] - began
    finally:
        tracemalloc.stop()
    assert interned < decoded * 3 / 4, f"{decoded / 500:.0f} bytes a pod decoded, {interned / 500:.0f} interned"


async def test_the_periodic_pass_walks_new_and_replaced_objects() -> None:
    cache = {f"team-a/web-{i}": client.decode(pod_json(i), objects.Pod) for i in range(3)}

    def shared(a: str, b: str) -> bool:
        return cache[a].spec.containers[0].image is cache[b].spec.containers[0].image

    task = asyncio.create_task(compact.compact_periodically(cache, interval=0.01))
    try:
        await until(lambda: shared("team-a/web-0", "team-a/web-2"), within=10, what="the cached pods interned")
        cache["team-a/web-1"] = client.decode(pod_json(1), objects.Pod)  # a watch event replaced it
        cache["team-a/web-3"] = client.decode(pod_json(3), objects.Pod)  # a new pod
        del cache["team-a/web-2"]
        await until(lambda: shared("team-a/web-0", "team-a/web-1"), within=10, what="the replaced pod interned")
        await until(lambda: shared("team-a/web-0", "team-a/web-3"), within=10, what="the new pod interned")
    finally:
        task.cancel()
