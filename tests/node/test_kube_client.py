"""vnode's own Kubernetes client against the real API server: reads, watches, patches, errors."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import ssl

import pytest
from kubernetes import client as k8s

from vnode import errors
from vnode.kube import api, client, config, informer, objects

pytestmark = pytest.mark.cluster


async def test_get_list_and_errors_map_to_the_error_tree(
    kube: client.Client, namespace: str, core: k8s.CoreV1Api
) -> None:
    core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="a"), data={"k": "v"}))
    got = await kube.get(f"/api/v1/namespaces/{namespace}/configmaps/a", objects.ConfigMap)
    assert got.data == {"k": "v"}
    listed = await kube.list(f"/api/v1/namespaces/{namespace}/configmaps", objects.ConfigMap, page=1)
    assert "a" in {item.metadata.name for item in listed.items}
    with pytest.raises(errors.NotFound):
        await kube.get(f"/api/v1/namespaces/{namespace}/configmaps/nope", objects.ConfigMap)
    body = {"metadata": {"name": "a"}, "data": {}}
    with pytest.raises(errors.Conflict):
        await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", body)
    with pytest.raises(errors.InvalidSpec):
        await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "Bad_Name"}})


async def test_patch_kinds_and_delete_with_uid_precondition(kube: client.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    made = client.decode(await kube.create(path, {"metadata": {"name": "b"}, "data": {"x": "1"}}), objects.ConfigMap)
    await kube.patch(f"{path}/b", {"data": {"y": "2"}}, kind="merge")
    await kube.patch(f"{path}/b", {"data": {"z": "3"}}, kind="strategic")
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"w": "4"}}
    await kube.patch(f"{path}/b", applied, kind="apply", force=True)
    got = await kube.get(f"{path}/b", objects.ConfigMap)
    assert got.data == {"x": "1", "y": "2", "z": "3", "w": "4"}
    with pytest.raises(errors.Conflict):
        await kube.delete(f"{path}/b", uid="00000000-0000-0000-0000-000000000000")
    await kube.delete(f"{path}/b", grace_seconds=0, uid=made.metadata.uid)
    with pytest.raises(errors.NotFound):
        await kube.get(f"{path}/b", objects.ConfigMap)


async def test_watch_resumes_from_a_resource_version(kube: client.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    listed = await kube.list(path, objects.ConfigMap)
    await kube.create(path, {"metadata": {"name": "c"}})
    seen = []
    stream = kube.watch_objects(
        path, objects.ConfigMap, resource_version=listed.metadata.resource_version, timeout_seconds=5
    )
    async with contextlib.aclosing(stream):
        async for kind, obj in stream:
            seen.append((kind, obj.metadata.name))
            if ("ADDED", "c") in seen:
                break
    assert ("ADDED", "c") in seen
    raw_seen = []
    raw_stream = kube.watch(path, resource_version=listed.metadata.resource_version, timeout_seconds=5)
    async with contextlib.aclosing(raw_stream):
        async for kind, raw in raw_stream:
            raw_seen.append((kind, json.loads(raw)["metadata"]["name"]))
            if ("ADDED", "c") in raw_seen:
                break
    assert ("ADDED", "c") in seen


async def test_informer_caches_and_reports_changes(kube: client.Client, namespace: str) -> None:
    changes: list[tuple[str, bool]] = []
    changed = asyncio.Event()

    def on_change(key: str, obj: objects.ConfigMap | None) -> None:
        changes.append((key, obj is not None))
        changed.set()

    inf = informer.Informer(kube, api.config_maps(namespace), on_change=on_change)
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.ready.wait(), 10)
        await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "d"}})
        async with asyncio.timeout(10):
            while f"{namespace}/d" not in inf.cache:
                changed.clear()
                await changed.wait()
        await kube.delete(f"/api/v1/namespaces/{namespace}/configmaps/d")
        async with asyncio.timeout(10):
            while f"{namespace}/d" in inf.cache:
                changed.clear()
                await changed.wait()
        assert (f"{namespace}/d", False) in changes
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_401_makes_the_next_request_read_the_rotated_token_file_at_once(
    kube: client.Client, namespace: str, core: k8s.CoreV1Api, tmp_path: pathlib.Path
) -> None:
    """The token file is looked at once a minute (client-go's cached file token source), not per
    request; a 401 (a token rotated or revoked meanwhile) makes the next request read it again."""
    issued = core.create_namespaced_service_account_token(
        "default", namespace, k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[]))
    )
    token = tmp_path / "token"
    token.write_text("not-a-token\n")
    credentials = config.Credentials(token_file=token)
    trusting = ssl.create_default_context(cadata=kube.config.ca_pem.decode())  # no client certificate
    with_file = client.Client(dataclasses.replace(kube.config, ssl=trusting, credentials=credentials))
    try:
        with pytest.raises(errors.ApiError):
            await api.review_self(with_file)
        token.write_text(issued.status.token + "\n")
        os.utime(token, (token.stat().st_atime, token.stat().st_mtime + 5))
        seen = await api.review_self(with_file)  # within the minute: read again because of the 401
        assert seen.username == f"system:serviceaccount:{namespace}:default"
    finally:
        await with_file.close()
