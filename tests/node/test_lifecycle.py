"""The daemon's lifecycle as one sequence of phases: start, stand by, adopt, serve, drain, release, stop."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from kubernetes import client as k8s

from tests.node.conftest import Harness, pod_manifest, wait_ready
from tests.waiting import until
from vnode import daemon
from vnode.kube import extra

pytestmark = pytest.mark.cluster

Phase = daemon.Phase


async def readyz(run: daemon.Daemon) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{run.http_port}/readyz") as answer:
        return answer.status, await answer.text()


def test_every_phase_but_the_last_has_a_way_out_and_a_stop_can_come_in_any_running_phase() -> None:
    assert daemon.NEXT[Phase.STOPPED] == frozenset()
    for phase in (Phase.STARTING, Phase.STANDING_BY, Phase.ADOPTING, Phase.SERVING):
        assert {Phase.DRAINING, Phase.RELEASING} <= daemon.NEXT[phase]
    assert daemon.NEXT[Phase.DRAINING] == {Phase.RELEASING}
    assert daemon.NEXT[Phase.RELEASING] == {Phase.STOPPED}


def phase_gauge(run: daemon.Daemon) -> dict[str, float | None]:
    """The ``vnode_daemon_phase`` sample of every phase, from the daemon's own registry."""
    return {
        phase: run.registry.get_sample_value("vnode_daemon_phase", {"node": run.config.node_name, "phase": phase})
        for phase in Phase
    }


async def test_a_stop_releases_the_lease_and_keeps_the_node(harness: Harness, core: k8s.CoreV1Api) -> None:
    running = await harness.start()
    assert running.daemon.phases == [Phase.STARTING, Phase.ADOPTING, Phase.SERVING]
    assert phase_gauge(running.daemon) == {phase: float(phase is Phase.SERVING) for phase in Phase}
    assert await readyz(running.daemon) == (200, "ok")
    running.daemon.stop()
    await asyncio.wait_for(running.task, timeout=20)  # returns: no cancellation needed
    assert running.daemon.phases[-2:] == [Phase.RELEASING, Phase.STOPPED]
    assert phase_gauge(running.daemon) == {phase: float(phase is Phase.STOPPED) for phase in Phase}
    leases = k8s.CoordinationV1Api(core.api_client)
    lease = await asyncio.to_thread(leases.read_namespaced_lease, harness.node_name, "kube-node-lease")
    assert lease.spec.holder_identity is None
    assert (await asyncio.to_thread(core.read_node, harness.node_name)).metadata.name == harness.node_name


async def test_a_second_claimant_stands_by_then_adopts_when_the_first_stops(harness: Harness) -> None:
    first = await harness.start(identity="replica-a")
    second = await harness.start(identity="replica-b", wait=False)
    await until(lambda: second.daemon.phase is Phase.STANDING_BY, within=10, what="the second claimant standing by")
    assert phase_gauge(second.daemon)[Phase.STANDING_BY] == 1
    await until(lambda: second.daemon.http_port, within=10, what="the second claimant's HTTP port")
    status, reason = await readyz(second.daemon)
    assert status == 503
    assert reason == "standing by: the node's Lease is held by replica-a"
    first.daemon.stop()
    await wait_ready(second)
    assert second.daemon.phases == [Phase.STARTING, Phase.STANDING_BY, Phase.ADOPTING, Phase.SERVING]


async def statefulset(kube_api: k8s.ApiClient, namespace: str, replicas: int) -> None:
    """The StatefulSet ``vn`` that the harness's daemons take to be their own (its pods never run)."""
    apps = k8s.AppsV1Api(kube_api)
    await asyncio.to_thread(apps.create_namespaced_stateful_set, namespace, k8s.V1StatefulSet(
        metadata=k8s.V1ObjectMeta(name="vn"),
        spec=k8s.V1StatefulSetSpec(
            replicas=replicas, service_name="vn", selector=k8s.V1LabelSelector(match_labels={"app": "vn"}),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels={"app": "vn"}),
                spec=k8s.V1PodSpec(node_selector={"vnode.io/test": "nowhere"},
                                   containers=[k8s.V1Container(name="c", image="vnode")]),
            ),
        ),
    ))  # fmt: skip


async def test_sigterm_drains_a_scaled_away_replicas_node_and_keeps_a_wanted_ones(
    harness: Harness, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str
) -> None:
    await statefulset(kube_api, namespace, replicas=2)
    harness.overrides.update(pod_namespace=namespace, pod_name="vn-0", termination_grace_seconds=40)
    wanted = await harness.start()
    await asyncio.to_thread(core.create_namespaced_pod, namespace, pod_manifest("web", harness.node_name))
    await until(lambda: harness.cloud.instances(), within=20, what="the pod's instance")
    wanted.daemon.terminate()  # replica 0 is wanted: a restart, the node and its pods stay
    await asyncio.wait_for(wanted.task, timeout=20)
    assert Phase.DRAINING not in wanted.daemon.phases
    assert len(harness.cloud.instances()) == 1

    harness.overrides.update(pod_name="vn-1")
    removed = await harness.start()
    await extra.scale_statefulset(harness.kube, namespace, "vn", 1)
    removed.daemon.terminate()
    await asyncio.wait_for(removed.task, timeout=40)
    assert removed.daemon.phases[-3:] == [Phase.DRAINING, Phase.RELEASING, Phase.STOPPED]
    assert harness.cloud.instances() == []
    assert (await asyncio.to_thread(core.list_namespaced_pod, namespace, label_selector="!app")).items == []
    nodes = await asyncio.to_thread(core.list_node)
    assert harness.node_name not in {n.metadata.name for n in nodes.items}


async def test_a_draining_replica_makes_no_instance_for_the_pods_it_is_about_to_evict(
    harness: Harness, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str
) -> None:
    """Found by the soak's scale-in: the leaving replica went on creating instances for pods bound to it
    while it drained, and was killed at the end of its grace period before their status was written."""
    await statefulset(kube_api, namespace, replicas=2)
    harness.overrides.update(pod_namespace=namespace, pod_name="vn-1", termination_grace_seconds=40)
    removed = await harness.start()
    web = pod_manifest("web", harness.node_name, metadata={"labels": {"app": "web"}})
    await asyncio.to_thread(core.create_namespaced_pod, namespace, web)
    await until(lambda: _running(core, namespace, "web"), within=20, what="the pod web Running")
    # A budget keeps web (and so the drain) in place while pods bound to the node arrive.
    policy = k8s.PolicyV1Api(kube_api)
    await asyncio.to_thread(policy.create_namespaced_pod_disruption_budget, namespace, k8s.V1PodDisruptionBudget(
        metadata=k8s.V1ObjectMeta(name="web"),
        spec=k8s.V1PodDisruptionBudgetSpec(max_unavailable=0,
                                           selector=k8s.V1LabelSelector(match_labels={"app": "web"})),
    ))  # fmt: skip
    await extra.scale_statefulset(harness.kube, namespace, "vn", 1)
    removed.daemon.terminate()
    await until(lambda: removed.daemon.phase is Phase.DRAINING, within=20, what="the replica draining")
    late = [f"late-{i}" for i in range(5)]
    for name in late:  # bound by name, as a pod the scheduler placed just before the cordon
        await asyncio.to_thread(
            core.create_namespaced_pod, namespace, pod_manifest(name, harness.node_name, nodeName=harness.node_name)
        )
    await until(lambda: _none_of(core, namespace, late), within=30, what="the late pods evicted and released")
    assert len(harness.cloud.created) == 1, "only web's instance: none for a pod about to be evicted"
    await asyncio.to_thread(policy.delete_namespaced_pod_disruption_budget, "web", namespace)
    await asyncio.wait_for(removed.task, timeout=40)
    assert removed.daemon.phases[-3:] == [Phase.DRAINING, Phase.RELEASING, Phase.STOPPED]
    assert harness.cloud.instances() == []


async def _running(core: k8s.CoreV1Api, namespace: str, name: str) -> bool:
    pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
    return pod.status.phase == "Running"


async def _none_of(core: k8s.CoreV1Api, namespace: str, names: list[str]) -> bool:
    pods = await asyncio.to_thread(core.list_namespaced_pod, namespace)
    return not any(p.metadata.name in names for p in pods.items)
