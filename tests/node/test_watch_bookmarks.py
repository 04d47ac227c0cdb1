"""A watch's BOOKMARK events carry only metadata (and `"containers": null`): they must not stop the daemon."""

from __future__ import annotations

import asyncio
import contextlib

from kubernetes import client as k8s

from vnode.kube import client, objects


async def test_a_bookmark_with_null_containers_is_decoded_not_fatal(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str
) -> None:
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p"),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="nginx:alpine")], node_name="nowhere"),
    )
    core.create_namespaced_pod(namespace, pod)
    # sendInitialEvents makes the API server end the initial listing with a BOOKMARK at once.
    params = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
    seen: list[tuple[str, objects.Pod]] = []

    async def collect() -> None:
        path = f"/api/v1/namespaces/{namespace}/pods"
        events = kube.watch_objects(path, objects.Pod, resource_version="", params=params)
        async with contextlib.aclosing(events):
            async for kind, obj in events:
                seen.append((kind, obj))
                if kind == "BOOKMARK":
                    return

    await asyncio.wait_for(collect(), timeout=30)

    assert [kind for kind, _ in seen] == ["ADDED", "BOOKMARK"]
    assert seen[0][1].spec.containers[0].name == "c"
    bookmark = seen[1][1]
    assert bookmark.metadata.resource_version
    assert bookmark.spec.containers == []


async def test_a_raw_watch_passes_bookmarks_through(kube: client.Client, namespace: str) -> None:
    params = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
    kinds: list[str] = []

    async def collect() -> None:
        events = kube.watch(f"/api/v1/namespaces/{namespace}/configmaps", resource_version="", params=params)
        async with contextlib.aclosing(events):
            async for kind, raw in events:
                kinds.append(kind)
                assert raw.startswith(b"{")
                if kind == "BOOKMARK":
                    return

    await asyncio.wait_for(collect(), timeout=30)

    assert kinds[-1] == "BOOKMARK"
