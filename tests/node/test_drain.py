"""Scale-in drains a virtual node on the real control plane: evictions honour budgets, nothing is leaked."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable

import pytest
from kubernetes import client as k8s

from tests.node.conftest import TAINT
from tests.waiting import until, wait_for
from vnode import errors, models
from vnode.kube import client, extra, objects
from vnode.node import drain
from vnode.provider.fake import provider as fake

pytestmark = pytest.mark.cluster

CLUSTER_ID = "drain-test"


def test_ordinals_and_the_scale_in_rule() -> None:
    assert drain.ordinal_of("virtual-node-eci-12") == ("virtual-node-eci", 12)
    assert drain.ordinal_of("virtual-node-eci") is None
    assert drain.ordinal_of("web-01") is None  # StatefulSets never pad ordinals
    assert drain.removed_by_scale_in(replicas=1, ordinal=1)
    assert drain.removed_by_scale_in(replicas=0, ordinal=0)
    assert not drain.removed_by_scale_in(replicas=4, ordinal=3)


def bound_pod(core: k8s.CoreV1Api, namespace: str, node: str, name: str) -> k8s.V1Pod:
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, labels={"app": "web"}),
        spec=k8s.V1PodSpec(
            node_name=node,
            containers=[k8s.V1Container(name="c", image="nginx:alpine")],
            tolerations=[k8s.V1Toleration(key=TAINT["key"], operator="Exists")],
        ),
    )
    core.create_namespaced_pod(namespace, pod)
    # Running, as the daemon would report it: a budget protects running pods only (pending ones are
    # evicted regardless).
    status = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    made: k8s.V1Pod = core.patch_namespaced_pod_status(name, namespace, status)
    return made


async def instance_for(provider: fake.FakeProvider, node: str, pod: k8s.V1Pod) -> models.InstanceState:
    tags = {
        models.TAG_CLUSTER: CLUSTER_ID,
        models.TAG_NODE: node,
        models.TAG_NAMESPACE: pod.metadata.namespace,
        models.TAG_NAME: pod.metadata.name,
        models.TAG_POD_UID: pod.metadata.uid,
    }
    spec = models.InstanceSpec(name=pod.metadata.name, client_token=pod.metadata.uid, cpu=1, memory_gib=2,
                               containers=(models.ContainerSpec("c", "nginx:alpine"),), tags=tags)  # fmt: skip
    return await provider.create(spec)


@contextlib.asynccontextmanager
async def pod_loop(kube: client.Client, provider: fake.FakeProvider, node: str) -> AsyncIterator[None]:
    """What the daemon's pod loop does for a pod being deleted: delete its instance, then release the pod."""

    async def loop() -> None:
        while True:
            for pod in await extra.pods_on_node(kube, node):
                if not pod.metadata.deletion_timestamp:
                    continue
                for instance in await provider.list({models.TAG_POD_UID: pod.metadata.uid}):
                    await provider.delete(instance.id, grace_seconds=0)
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    path = f"/api/v1/namespaces/{pod.metadata.namespace}/pods/{pod.metadata.name}"
                    await kube.delete(path, grace_seconds=0, uid=pod.metadata.uid)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def pdb(policy: k8s.PolicyV1Api, namespace: str) -> None:
    policy.create_namespaced_pod_disruption_budget(namespace, k8s.V1PodDisruptionBudget(
        metadata=k8s.V1ObjectMeta(name="web"),
        spec=k8s.V1PodDisruptionBudgetSpec(max_unavailable=0,
                                           selector=k8s.V1LabelSelector(match_labels={"app": "web"})),
    ))  # fmt: skip


async def test_drain_evicts_through_a_budget_deletes_instances_then_the_node(
    kube: client.Client, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str, node: str
) -> None:
    provider = fake.FakeProvider()
    pods = [bound_pod(core, namespace, node, f"web-{i}") for i in range(3)]
    for pod in pods:
        await instance_for(provider, node, pod)
    ghost = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="ghost", namespace=namespace, uid="no-such-pod"))
    orphan = await instance_for(provider, node, ghost)  # an instance whose pod is long gone
    policy = k8s.PolicyV1Api(kube_api)
    pdb(policy, namespace)

    blocked = asyncio.Event()
    async with pod_loop(kube, provider, node):
        task = asyncio.create_task(drain.drain(
            kube, provider, node=node, cluster_id=CLUSTER_ID, deadline=time.monotonic() + 60,
            on_blocked=lambda key: blocked.set(), retry_interval=0.3,
        ))  # fmt: skip
        await asyncio.wait_for(blocked.wait(), timeout=30)
        assert core.read_node(node).spec.unschedulable is True
        assert not task.done(), "the budget holds the drain"
        policy.delete_namespaced_pod_disruption_budget("web", namespace)
        result = await asyncio.wait_for(task, timeout=40)

    assert sorted(result.evicted) == [f"{namespace}/web-{i}" for i in range(3)]
    assert result.blocked >= 1
    assert result.forced == []
    assert result.instances_deleted == [orphan.id]
    assert result.complete
    assert provider.instances() == []
    assert core.list_namespaced_pod(namespace).items == []
    with pytest.raises(k8s.ApiException) as exc:
        core.read_node(node)
    assert exc.value.status == 404


async def test_at_the_deadline_leftovers_are_removed_and_nothing_leaks(
    kube: client.Client, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str, node: str
) -> None:
    provider = fake.FakeProvider()
    pod = bound_pod(core, namespace, node, "web-0")
    await instance_for(provider, node, pod)
    pdb(k8s.PolicyV1Api(kube_api), namespace)  # never released, and no pod loop runs

    started = time.monotonic()
    result = await drain.drain(kube, provider, node=node, cluster_id=CLUSTER_ID, deadline=started + 4,
                               retry_interval=0.3, force_margin=1)  # fmt: skip
    assert time.monotonic() - started < 10
    assert result.forced == [f"{namespace}/web-0"]
    assert result.complete
    assert provider.instances() == []
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, timeout=10, what="the forced pod to go")


async def test_only_a_replica_its_statefulset_no_longer_wants_drains(
    kube: client.Client, kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    apps = k8s.AppsV1Api(kube_api)
    apps.create_namespaced_stateful_set(namespace, k8s.V1StatefulSet(
        metadata=k8s.V1ObjectMeta(name="vn"),
        spec=k8s.V1StatefulSetSpec(
            replicas=2, service_name="vn", pod_management_policy="Parallel",
            selector=k8s.V1LabelSelector(match_labels={"app": "vn"}),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels={"app": "vn"}),
                spec=k8s.V1PodSpec(node_selector={"vnode.io/test": "nowhere"},
                                   containers=[k8s.V1Container(name="c", image="vnode")]),
            ),
        ),
    ))  # fmt: skip
    wait_for(lambda: len(core.list_namespaced_pod(namespace).items) == 2, timeout=30, what="both replicas")

    async def removed(pod: str) -> bool:
        return await drain.being_removed(kube, namespace=namespace, pod_name=pod)

    assert not await removed("vn-0")
    assert not await removed("vn-1"), "a restart of a wanted ordinal never drains"
    await extra.scale_statefulset(kube, namespace, "vn", 1)
    assert await removed("vn-1")
    assert not await removed("vn-0")
    wait_for(lambda: [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["vn-0"],
             timeout=30, what="the scale-in to delete vn-1")  # fmt: skip
    assert await removed("vn-1"), "decided from the StatefulSet even once the pod is gone"

    async def scale_in(pod: str) -> bool:
        return await drain.scale_in(kube, node=node, namespace=namespace, pod_name=pod)

    assert not await scale_in("vn-0"), "SIGTERM of a wanted replica: a restart, the node stays"
    assert await scale_in("vn-1")
    assert not await scale_in(""), "outside a pod a controller never drains on its own"

    core.create_namespaced_pod(namespace, k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="loner-3"),
        spec=k8s.V1PodSpec(node_selector={"vnode.io/test": "nowhere"},
                           containers=[k8s.V1Container(name="c", image="x")]),
    ))  # fmt: skip
    assert not await removed("loner-3"), "no StatefulSet controls it"
    assert not await removed("no-ordinal")

    apps.delete_namespaced_stateful_set("vn", namespace, propagation_policy="Background")
    wait_for(lambda: not apps.list_namespaced_stateful_set(namespace).items, timeout=30, what="the StatefulSet to go")
    assert await removed("vn-0"), "uninstall: the StatefulSet is gone, every replica drains"


async def test_the_daemons_pod_loop_deletes_the_instances_of_evicted_pods(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    from vnode import daemon, settings

    cloud = fake.FakeProvider(container_id_scheme="eci")
    flags = {"node_name": node, "provider": "fake", "http_port": 0, "http_address": "127.0.0.1",
             "status_interval": 0.3, "cluster_id": CLUSTER_ID}  # fmt: skip
    running = daemon.Daemon(settings.load({}, flags), kube, cloud)
    task = asyncio.create_task(running.run())

    async def stop_daemon() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        await asyncio.wait_for(running.ready.wait(), timeout=30)
        for i in range(3):
            core.create_namespaced_pod(namespace, k8s.V1Pod(
                metadata=k8s.V1ObjectMeta(name=f"web-{i}"),
                spec=k8s.V1PodSpec(node_name=node, containers=[k8s.V1Container(name="c", image="nginx:alpine")],
                                   termination_grace_period_seconds=1,
                                   tolerations=[k8s.V1Toleration(operator="Exists")]),
            ))  # fmt: skip
        await asyncio.to_thread(wait_for, lambda: len(cloud.instances()) == 3, timeout=30, what="three instances")
        result = await drain.drain(kube, cloud, node=node, cluster_id=CLUSTER_ID, deadline=time.monotonic() + 60,
                                   before_node_delete=stop_daemon, retry_interval=0.3)  # fmt: skip
    finally:
        await stop_daemon()
    assert sorted(result.evicted) == [f"{namespace}/web-{i}" for i in range(3)]
    assert result.forced == []
    assert result.instances_deleted == [], "the daemon deleted them, as for any deleted pod"
    assert result.complete
    assert cloud.instances() == []
    assert sorted(cloud.deleted) == sorted(cloud.created)
    assert core.list_namespaced_pod(namespace).items == []


async def test_a_dead_replicas_pods_are_finished_in_the_order_they_were_deleted() -> None:
    """Found by the soak: at a 3 -> 1 scale-in the takeover's instance deletes went out in listing order,
    so Job pods deleted before the drain began waited behind 1,800 evicted ones (211 s Terminating)."""
    cloud = fake.FakeProvider(fake.Behaviour(), container_id_scheme="eci")
    node = "vnode-gone-2"
    deleted_at = {"late": "2026-12-05T17:28:59Z", "first": "2026-12-05T17:28:02Z", "middle": "2026-12-05T17:28:30Z"}
    pods, instances = [], []
    for name, when in deleted_at.items():
        meta = objects.ObjectMeta(name=name, namespace="ns", uid=f"uid-{name}", deletion_timestamp=when)
        pods.append(objects.Pod(metadata=meta, spec=objects.PodSpec(node_name=node)))
        tags = {models.TAG_CLUSTER: CLUSTER_ID, models.TAG_NODE: node, models.TAG_POD_UID: f"uid-{name}"}
        instances.append(await cloud.create(models.InstanceSpec(
            name=name, client_token=f"uid-{name}", cpu=1, memory_gib=2,
            containers=(models.ContainerSpec("c", "nginx:alpine"),), tags=tags)))  # fmt: skip
    released: list[str] = []

    class Kube:  # the API server's side of a release: the pods are plain objects here
        async def delete(self, path: str, **options: object) -> None:
            released.append(path.rsplit("/", 1)[-1])

    run = drain._Drain(Kube(), cloud, node=node, cluster_id=CLUSTER_ID, on_blocked=None,  # type: ignore[arg-type]
                       concurrency=1, kubelet_gone=True)  # fmt: skip
    run._finishing(pods, {i.pod_uid: i for i in instances})
    await run.settle()
    by_id = {i.id: i.tags[models.TAG_POD_UID] for i in instances}
    assert [by_id[i] for i in cloud.deleted] == ["uid-first", "uid-middle", "uid-late"]
    assert released == ["first", "middle", "late"], "each released once the cloud accepted its delete"


async def test_at_the_deadline_the_pods_left_are_removed_together(
    kube: client.Client,
    core: k8s.CoreV1Api,
    kube_api: k8s.ApiClient,
    namespace: str,
    node: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by the soak: at a 3 -> 1 scale-in a dead replica's node still held 1,736 pods at the takeover's
    deadline, and they were removed one after another (200 a minute on the loaded API server): the node
    was still there 10 minutes after the scale-in. They are removed together now, like the instances."""
    provider = fake.FakeProvider()
    for i in range(12):
        await instance_for(provider, node, bound_pod(core, namespace, node, f"web-{i}"))
    pdb(k8s.PolicyV1Api(kube_api), namespace)  # never released, and no pod loop runs: all left at the deadline
    in_flight, most = 0, 0
    delete = kube.delete

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await delete(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            in_flight -= 1

    monkeypatch.setattr(kube, "delete", counted)
    result = await drain.drain(kube, provider, node=node, cluster_id=CLUSTER_ID, deadline=time.monotonic() + 3,
                               retry_interval=0.3, force_margin=1)  # fmt: skip
    assert sorted(result.forced) == sorted(f"{namespace}/web-{i}" for i in range(12))
    assert most > 1, "the pods left at the deadline were removed one after another"
    assert result.complete
    assert provider.instances() == []


class WaitingCloud(fake.FakeProvider):
    """A cloud whose deletes wait (for the account's rate, say) until ``go`` is set, but those of ``free``."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()
        self.free: set[str] = set()

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        if instance_id not in self.free:
            await self.go.wait()
        await super().delete(instance_id, grace_seconds=grace_seconds)


@contextlib.asynccontextmanager
async def draining(work: Awaitable[object], cloud: WaitingCloud) -> AsyncIterator[asyncio.Task[object]]:
    """Run ``work`` (a drain, or part of one) in a task; at the end let the cloud's deletes through and stop it."""
    task = asyncio.ensure_future(work)
    try:
        yield task
    finally:
        cloud.go.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def names(core: k8s.CoreV1Api, namespace: str) -> set[str]:
    return {p.metadata.name for p in core.list_namespaced_pod(namespace).items}


async def test_evictions_go_on_while_the_cloud_deletes_wait_for_their_turn(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    """Found by the soak: a takeover's instance deletes, waiting in line for the account's delete rate,
    held every slot of the drain's concurrency, and the evictions waited behind them."""
    provider = WaitingCloud()
    for i in range(2):  # instances whose pods are long gone: deleted first, and they wait
        ghost = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=f"ghost-{i}", namespace=namespace, uid=f"gone-{i}"))
        await instance_for(provider, node, ghost)
    for i in range(3):
        await instance_for(provider, node, bound_pod(core, namespace, node, f"web-{i}"))
    work = drain.drain(kube, provider, node=node, cluster_id=CLUSTER_ID, deadline=time.monotonic() + 30,
                       retry_interval=0.3, concurrency=2, force_margin=1)  # fmt: skip
    async with draining(work, provider) as task:

        def all_evicted() -> bool:
            return all(p.metadata.deletion_timestamp for p in core.list_namespaced_pod(namespace).items)

        await until(all_evicted, within=15, what="the pods evicted while two cloud deletes wait")
        assert not task.done()


async def test_a_dead_controllers_evicted_pods_have_their_instances_deleted_in_the_same_pass(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    """Found by the soak: a takeover evicted a dead replica's 1,700 pods, then listed again, then deleted
    their instances: the cloud's deletes (the account's rate, the bottleneck) began minutes late. Now
    each instance is deleted as soon as its pod's eviction is through, with the pod's grace period."""
    provider = fake.FakeProvider()
    made = [await instance_for(provider, node, bound_pod(core, namespace, node, f"web-{i}")) for i in range(3)]
    run = drain._Drain(kube, provider, node=node, cluster_id=CLUSTER_ID, on_blocked=None, concurrency=4,
                       kubelet_gone=True)  # fmt: skip
    pods, instances = await run.listing()
    run.step(pods, instances)
    await run.settle()
    assert sorted(run.result.evicted) == sorted(f"{namespace}/web-{i}" for i in range(3))
    assert sorted(provider.deleted) == sorted(i.id for i in made), "deleted in the pass that evicted their pods"


async def test_a_dead_controllers_deleted_pod_is_released_while_the_other_deletes_wait(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    """Found by the soak (663 pods stuck Terminating at a 3 -> 1 scale-in): a takeover's pass waited for
    every call it started, minutes of deletes at the account's rate, so a pod whose instance was gone in
    the first seconds was released only by the pass after. Now each pass starts its calls and the next
    one comes seconds later, whatever is still on its way."""
    provider = WaitingCloud()
    leaving = bound_pod(core, namespace, node, "leaving")
    provider.free.add((await instance_for(provider, node, leaving)).id)
    core.delete_namespaced_pod("leaving", namespace, grace_period_seconds=30)  # no kubelet ends it: Terminating
    for i in range(3):  # evicted by the takeover; their instances' deletes wait for their turn
        await instance_for(provider, node, bound_pod(core, namespace, node, f"web-{i}"))
    work = drain.drain(kube, provider, node=node, cluster_id=CLUSTER_ID, deadline=time.monotonic() + 60,
                       retry_interval=0.3, kubelet_gone=True)  # fmt: skip
    async with draining(work, provider) as task:
        await until(lambda: "leaving" not in names(core, namespace), within=15,
                    what="the deleted pod released while three cloud deletes wait")  # fmt: skip
        assert not task.done()


async def test_at_the_deadline_a_pod_waits_for_its_own_instance_only(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    """Found by the soak: a leaving replica's drain reached its deadline with 485 pods and 99 instances left,
    deleted the 99 at the account's rate before releasing any pod, and was killed at the end of its grace
    period: the 386 pods without an instance were released by nobody until the takeover, a minute later."""
    provider = WaitingCloud()  # no delete goes through until the end
    made = await instance_for(provider, node, bound_pod(core, namespace, node, "with-instance"))
    for i in range(3):
        bound_pod(core, namespace, node, f"without-{i}")
    run = drain._Drain(kube, provider, node=node, cluster_id=CLUSTER_ID, on_blocked=None, concurrency=4,
                       kubelet_gone=False)  # fmt: skip
    pods, instances = await run.listing()
    async with draining(run.force(pods, instances), provider) as task:
        await until(lambda: names(core, namespace) == {"with-instance"}, within=15,
                    what="the pods without an instance released")  # fmt: skip
        assert provider.deleted == []
        provider.go.set()
        await asyncio.wait_for(task, timeout=15)
        assert names(core, namespace) == set(), "and the other once its instance is deleted"
        assert provider.deleted == [made.id]


async def test_a_dead_controllers_pods_go_once_the_cloud_accepts_their_deletes_but_a_statefulsets(
    kube: client.Client, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str, node: str
) -> None:
    """Found by the default soak: a dead replica's evicted pods were released only by a later pass, after
    a listing that took seconds on the loaded machine, and 75 stayed Terminating for over 3 minutes.
    Now a pod goes as soon as the cloud accepts its instance's delete; a StatefulSet's pod still waits
    until its instance is no longer listed (its replacement has the same identity)."""
    labels = {"app": "db"}
    template = k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=k8s.V1PodSpec(
        containers=[k8s.V1Container(name="c", image="nginx")], node_selector={"vnode.io/test": "nowhere"}))  # fmt: skip
    k8s.AppsV1Api(kube_api).create_namespaced_stateful_set(namespace, k8s.V1StatefulSet(
        metadata=k8s.V1ObjectMeta(name="db"),
        spec=k8s.V1StatefulSetSpec(replicas=1, service_name="db", selector=k8s.V1LabelSelector(match_labels=labels),
                                   template=template),
    ))  # fmt: skip
    await until(lambda: bool(core.list_namespaced_pod(namespace, label_selector="app=db").items), within=30,
                what="the StatefulSet's pod")  # fmt: skip
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "db-0"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}}  # fmt: skip
    await kube.create(f"/api/v1/namespaces/{namespace}/pods/db-0/binding", binding)
    member = core.patch_namespaced_pod_status("db-0", namespace, {"status": {"phase": "Running"}})
    provider = fake.FakeProvider()
    plain = bound_pod(core, namespace, node, "web-0")
    deleting = bound_pod(core, namespace, node, "web-1")
    core.delete_namespaced_pod("web-1", namespace, grace_period_seconds=30)  # no kubelet ends it: Terminating
    for pod in (plain, deleting, member):
        await instance_for(provider, node, pod)
    run = drain._Drain(kube, provider, node=node, cluster_id=CLUSTER_ID, on_blocked=None, concurrency=4,
                       kubelet_gone=True)  # fmt: skip
    pods, instances = await run.listing()
    run.step(pods, instances)  # one pass: evict db-0 and web-0, finish web-1; no pass after it
    await run.settle()
    assert provider.instances() == [], "every instance deleted in the pass"
    assert names(core, namespace) == {"db-0"}, "the pods released in the same pass, but the StatefulSet's"


def test_the_pause_between_passes_follows_the_listing_and_ends_before_the_force() -> None:
    assert drain._pause(1.0, 0.1, 60) == 1.0
    assert drain._pause(1.0, 3.0, 60) == 6.0, "a slow listing: at most a third of the time"
    assert drain._pause(1.0, 4.0, 10) == 6.0, "the pause ends with time for one more listing before the force"
    assert drain._pause(1.0, 4.0, 2) == 0.0
