"""``bench.kubelet_calls``, the benchmark's ``kwok+kubelet`` target: for each pod bound to one of its
nodes, exactly a kubelet's own calls, on the real control plane: one TokenRequest as the node,
bound to the pod and answered, and four Events; nothing for a pod bound elsewhere, no status."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from kubernetes import client as k8s

from bench import kubelet_calls
from tests.node.conftest import TAINT
from tests.waiting import until
from vnode.kube import client

pytestmark = pytest.mark.cluster

PODS = 3


def _pod(name: str, node: str) -> dict[str, Any]:
    toleration = {"key": TAINT["key"], "operator": "Exists"}
    spec = {"nodeName": node, "tolerations": [toleration], "containers": [{"name": "main", "image": "nginx:alpine"}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def test_each_pod_of_its_nodes_gets_a_kubelets_token_and_four_events_and_nothing_else(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    helper = kubelet_calls.Node(kube, node)
    answered: list[str] = []
    real = helper.as_node.create

    async def recorded(path: str, body: Any) -> bytes:
        raw = await real(path, body)
        if path.endswith("/token"):
            answered.append(body["spec"]["boundObjectRef"]["name"])
        return raw

    helper.as_node.create = recorded  # type: ignore[method-assign]
    serving = asyncio.create_task(kubelet_calls.serve(kube, namespace, {node: helper}))
    try:
        names = [f"k-{n}" for n in range(PODS)]
        for name in names:
            await asyncio.to_thread(core.create_namespaced_pod, namespace, _pod(name, node))
        await asyncio.to_thread(core.create_namespaced_pod, namespace, _pod("elsewhere", "no-such-node"))

        def recorded_events() -> list[tuple[str, str]]:
            items = core.list_namespaced_event(namespace).items
            return sorted((e.involved_object.name, e.reason) for e in items if e.source.host == node)

        want = sorted((name, reason) for name in names for reason in ("Pulling", "Pulled", "Created", "Started"))

        async def all_recorded() -> bool:
            return await asyncio.to_thread(recorded_events) == want

        await until(all_recorded, within=30, what="four Events per pod")
        assert sorted(answered) == names, "one TokenRequest per pod of the node, answered"
        pods = await asyncio.to_thread(core.list_namespaced_pod, namespace)
        assert all(p.status.phase == "Pending" and not p.status.container_statuses for p in pods.items), "no status"
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await helper.recorder.drain()


async def test_without_events_each_pod_gets_its_token_and_nothing_else(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    """``kwok+tokens``: the TokenRequest alone, the call a pod cannot start without."""
    helper = kubelet_calls.Node(kube, node, record_events=False)
    answered: list[str] = []
    real = helper.as_node.create

    async def recorded(path: str, body: Any) -> bytes:
        raw = await real(path, body)
        answered.append(path.rsplit("/", 1)[-1])
        return raw

    helper.as_node.create = recorded  # type: ignore[method-assign]
    serving = asyncio.create_task(kubelet_calls.serve(kube, namespace, {node: helper}))
    try:
        for name in ("t-0", "t-1"):
            await asyncio.to_thread(core.create_namespaced_pod, namespace, _pod(name, node))
        await until(lambda: len(answered) == 2, within=30, what="a TokenRequest per pod")
        await helper.recorder.drain()
        events = await asyncio.to_thread(core.list_namespaced_event, namespace)
        assert [e.reason for e in events.items if e.source.host == node] == []
        assert answered == ["token", "token"]
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def test_tokens_are_asked_as_the_node_unless_as_the_processs_own_account(kube: client.Client, node: str) -> None:
    """``kwok+tokens`` asks as the node (Node authorizer, NodeRestriction), as a kubelet does;
    ``kwok+tokens-sa`` as its own account, which the API server never refuses for lagging."""
    assert kubelet_calls.Node(kube, node).as_node.impersonated == (f"system:node:{node}", ("system:nodes",))
    assert kubelet_calls.Node(kube, node, as_node=False).as_node is kube
