"""A scaled-away replica that died before draining: the surviving replica drains its node for it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import secrets
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client as k8s

from tests.node.test_drain import CLUSTER_ID, TAINT, bound_pod, instance_for
from vnode import gc
from vnode.kube import client
from vnode.provider.fake import provider as fake

pytestmark = pytest.mark.cluster


class Finder:
    """A stand-in for ``gc.Abandoned``: the n-th look answers ``answer(n)``; ``enough`` is set at look ``wanted``."""

    def __init__(self, answer: Callable[[int], list[str]], wanted: int) -> None:
        self.answer, self.wanted, self.looks = answer, wanted, 0
        self.enough = asyncio.Event()

    async def find(self) -> list[str]:
        self.looks += 1
        if self.looks >= self.wanted:
            self.enough.set()
        return self.answer(self.looks)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def statefulset(kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str) -> Iterator[str]:
    """A StatefulSet of 1 replica (its pod never schedules), and the left-over Node and Lease of its ordinal 2."""
    name = f"vs-{secrets.token_hex(3)}"
    apps, leases = k8s.AppsV1Api(kube_api), k8s.CoordinationV1Api(kube_api)
    labels = {"app": name}
    apps.create_namespaced_stateful_set(namespace, k8s.V1StatefulSet(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1StatefulSetSpec(replicas=1, service_name=name, selector=k8s.V1LabelSelector(match_labels=labels),
                                   template=k8s.V1PodTemplateSpec(
                                       metadata=k8s.V1ObjectMeta(labels=labels),
                                       spec=k8s.V1PodSpec(node_selector={"vnode.io/test": "nowhere"},
                                                          containers=[k8s.V1Container(name="c", image="x")]))),
    ))  # fmt: skip
    node = f"{name}-2"
    core.create_node(k8s.V1Node(metadata=k8s.V1ObjectMeta(name=node, labels={"type": "virtual-kubelet"}),
                                spec=k8s.V1NodeSpec(taints=[k8s.V1Taint(**TAINT)])))  # fmt: skip
    leases.create_namespaced_lease("kube-node-lease", k8s.V1Lease(
        metadata=k8s.V1ObjectMeta(name=node),
        spec=k8s.V1LeaseSpec(holder_identity=f"{node}_dead", lease_duration_seconds=40, renew_time=_now()),
    ))  # fmt: skip
    try:
        yield name
    finally:
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(node)
        with contextlib.suppress(k8s.ApiException):
            leases.delete_namespaced_lease(node, "kube-node-lease")
        with contextlib.suppress(k8s.ApiException):
            apps.delete_namespaced_stateful_set(name, namespace)


async def test_a_dead_scaled_away_replicas_node_is_drained_by_the_survivor(
    kube: client.Client, kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str, statefulset: str
) -> None:
    node = f"{statefulset}-2"
    cloud = fake.FakeProvider(fake.Behaviour(stop_takes=0.5), container_id_scheme="eci")
    pods = [bound_pod(core, namespace, node, f"web-{i}") for i in range(3)]
    for pod in pods:
        await instance_for(cloud, node, pod)
    clock = [1000.0]
    abandoned = gc.Abandoned(kube, namespace, statefulset, monotonic=lambda: clock[0])

    assert await abandoned.find() == [], "first sight of its Lease: not yet known to be stale"
    clock[0] += 30
    assert await abandoned.find() == [], "not stale for a whole lease duration yet"
    leases = k8s.CoordinationV1Api(kube_api)
    leases.patch_namespaced_lease(node, "kube-node-lease", {"spec": {"renewTime": _now()}})
    clock[0] += 30
    assert await abandoned.find() == [], "renewed meanwhile: someone still holds it"
    clock[0] += 41
    assert await abandoned.find() == [node]

    assert await gc.drain_abandoned(kube, cloud, CLUSTER_ID, abandoned, seconds=60) == [node]
    assert cloud.instances() == []
    assert sorted(cloud.deleted) == sorted(cloud.created)
    assert core.list_namespaced_pod(namespace, field_selector=f"spec.nodeName={node}").items == []
    assert node not in {n.metadata.name for n in core.list_node().items}


async def test_a_node_whose_replica_still_exists_or_is_wanted_is_not_abandoned(
    kube: client.Client, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str, statefulset: str
) -> None:
    node = f"{statefulset}-2"
    clock = [0.0]
    abandoned = gc.Abandoned(kube, namespace, statefulset, monotonic=lambda: clock[0])
    k8s.AppsV1Api(kube_api).patch_namespaced_stateful_set_scale(statefulset, namespace, {"spec": {"replicas": 3}})
    await abandoned.find()
    clock[0] += 100
    assert await abandoned.find() == [], "ordinal 2 is wanted again: its replica will come back and adopt"
    k8s.AppsV1Api(kube_api).patch_namespaced_stateful_set_scale(statefulset, namespace, {"spec": {"replicas": 1}})
    core.create_namespaced_pod(namespace, k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=node),
        spec=k8s.V1PodSpec(node_selector={"vnode.io/test": "nowhere"},
                           containers=[k8s.V1Container(name="c", image="x")]),
    ))  # fmt: skip
    await abandoned.find()
    clock[0] += 100
    assert await abandoned.find() == [], "its replica's pod still exists: it drains its own node"


async def test_a_replica_that_died_before_the_scale_in_is_taken_over_at_the_first_look_after_it(
    kube: client.Client, kube_api: k8s.ApiClient, namespace: str, statefulset: str
) -> None:
    """Its Lease was watched while it was still wanted: stale already when the scale-in comes (the soak
    measured 50 s from the scale-in to the takeover when only removed replicas' Leases were read)."""
    node = f"{statefulset}-2"
    clock = [0.0]
    abandoned = gc.Abandoned(kube, namespace, statefulset, monotonic=lambda: clock[0])
    apps = k8s.AppsV1Api(kube_api)
    apps.patch_namespaced_stateful_set_scale(statefulset, namespace, {"spec": {"replicas": 3}})
    assert await abandoned.find() == []
    clock[0] += 41
    assert await abandoned.find() == [], "stale, but its ordinal is still wanted"
    apps.patch_namespaced_stateful_set_scale(statefulset, namespace, {"spec": {"replicas": 1}})
    assert await abandoned.find() == [node]


async def test_abandoned_nodes_are_looked_for_more_often_than_the_collection_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scale-in need not wait for the collection's interval (60 s by default) to be taken over."""
    finder = Finder(lambda _: [], wanted=5)
    monkeypatch.setattr(gc, "ABANDONED_EVERY", 0.01)
    collected: list[bool] = []

    async def collect(*args: object, **kwargs: object) -> tuple[list[object], set[str]]:
        collected.append(True)
        return [], set()

    monkeypatch.setattr(gc, "collect", collect)
    task = asyncio.create_task(
        gc.collect_periodically(None, None, "c", interval=3600, should_run=lambda: True, abandoned=finder)  # type: ignore[arg-type]
    )
    try:
        await asyncio.wait_for(finder.enough.wait(), 10)
    finally:
        task.cancel()
    assert collected == [], "the collection itself keeps its interval"


async def test_a_node_abandoned_while_another_drains_is_taken_over_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The soak's scale-in 3 -> 1: one leaving replica was killed mid-drain, the other at the end of its
    grace period; the second node waited three minutes for the first one's drain to end before its own
    began (633 pods stuck Terminating, 288 instances leaked meanwhile). Each drain now runs on its own."""
    started: list[str] = []
    release = asyncio.Event()
    both = asyncio.Event()
    finder = Finder(lambda n: ["vs-2"] if n < 3 else ["vs-1", "vs-2"], wanted=10)

    class Result:
        complete = True

    async def drain(*args: object, node: str, **kwargs: object) -> Result:
        started.append(node)
        if len(started) == 2:
            both.set()
        await release.wait()
        return Result()

    monkeypatch.setattr(gc, "ABANDONED_EVERY", 0.01)
    monkeypatch.setattr(gc.drain, "drain", drain)
    task = asyncio.create_task(
        gc.collect_periodically(None, None, "c", interval=3600, should_run=lambda: True, abandoned=finder)  # type: ignore[arg-type]
    )
    try:
        await asyncio.wait_for(both.wait(), 10)
        await asyncio.wait_for(finder.enough.wait(), 10)  # looks go on while both drain: no drain starts twice
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert started == ["vs-2", "vs-1"], "vs-1 began while vs-2 was draining; neither began twice"


async def test_a_node_handed_over_by_its_leaving_replica_is_taken_over_at_the_first_look(
    kube: client.Client, kube_api: k8s.ApiClient, namespace: str, statefulset: str
) -> None:
    """A leaving replica whose drain could not finish by its deadline gives its Lease up and keeps its Node
    (``drain.Result.handed_over``): nobody will renew that Lease, so there is no lease duration to wait."""
    node = f"{statefulset}-2"
    leases = k8s.CoordinationV1Api(kube_api)
    leases.patch_namespaced_lease(node, "kube-node-lease", {"spec": {"holderIdentity": None, "renewTime": _now()}})
    abandoned = gc.Abandoned(kube, namespace, statefulset, monotonic=lambda: 0.0)
    assert await abandoned.find() == [node]


async def test_an_uninstall_drains_the_nodes_no_replica_is_left_to_take_over(
    kube: client.Client, kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str, statefulset: str
) -> None:
    """``vnode gc --scale-down`` (the chart's pre-delete hook) scales every replica away: a node handed over
    at a replica's deadline, or left by one that died, has nobody to take it over but the hook itself."""
    node = f"{statefulset}-2"
    cloud = fake.FakeProvider()
    for i in range(2):
        await instance_for(cloud, node, bound_pod(core, namespace, node, f"web-{i}"))
    leases = k8s.CoordinationV1Api(kube_api)
    leases.patch_namespaced_lease(node, "kube-node-lease", {"spec": {"holderIdentity": None, "renewTime": _now()}})
    assert await gc.scale_down(kube, cloud, CLUSTER_ID, namespace, statefulset, wait_seconds=60)
    assert cloud.instances() == []
    assert core.list_namespaced_pod(namespace, field_selector=f"spec.nodeName={node}").items == []
