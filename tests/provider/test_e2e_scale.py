"""Issue #4's restart and scale acceptance on the real pieces: ``vnode run --provider eci`` as a
child process, the real control plane, ``vnode cloudsim --profile fast`` as a child process.

- ``kill -9`` of the daemon while 50 pods are being created (the cloud's creates slowed by an
  injected latency so that the kill lands mid-way, answers in flight lost), two of the pods
  force-deleted while it is down, then a restart: exactly 50 instances, one per pod, all pods
  Running, the two orphans removed. (The restarted process takes the node over only once the
  killed one's Lease has expired, about 40 s: most of this test's time.)
- 500 pods on one node reach Running.

tests/node/test_restart.py keeps the in-process versions on the fake cloud (they also check
what only a harness can see: no status rewritten on adoption, events not recorded twice).
Every child dies with the session (``PR_SET_PDEATHSIG``) and is stopped in teardown.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.daemons import VnodeRun
from tests.waiting import wait_for
from vnode import models
from vnode.cluster import launcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER_ID = "e2e-scale"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("e2e-scale-cloud"), profile="fast") as sim:
        # Real time (the test fixture starts it paused): its create/delete token bucket refills
        # at the cloud's 20/s, so 500 creates are admitted within a minute.
        status, body = sim.admin("POST", "clock", {"scale": 1.0})
        assert status == 200, body
        yield sim


@pytest.fixture
def daemon(cloud: Sim, cluster: launcher.Info, tmp_path: pathlib.Path, core: k8s.CoreV1Api) -> Iterator[VnodeRun]:
    """A daemon, not started; stopped and its Node deleted afterwards, pass or fail."""
    made = VnodeRun("eci", cloud.eci_env(), cluster, tmp_path, cluster_id=CLUSTER_ID)
    try:
        yield made
    finally:
        made.stop()
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(made.name)


def pod_manifest(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/hostname": node},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "main", "image": "nginx:alpine"}],
            "terminationGracePeriodSeconds": 5,
        },
    }


def create_pods(core: k8s.CoreV1Api, namespace: str, names: list[str], node: str, parallel: int = 10) -> None:
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        for done in pool.map(lambda n: core.create_namespaced_pod(namespace, pod_manifest(n, node)), names):
            assert done.metadata.uid


def pods(core: k8s.CoreV1Api, namespace: str) -> list[dict[str, Any]]:
    answer = core.list_namespaced_pod(namespace, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(answer.data)["items"]
    return items


def live_count(cloud: Sim, node: str) -> int:
    """The node's live instances, from the simulator's tag index (one cheap admin call)."""
    return int(cloud.totals()["by_tag"].get(f"{models.TAG_NODE}={node}", 0))


def instances(cloud: Sim, node: str) -> list[dict[str, Any]]:
    """The node's instances through the ECI API itself, every page."""
    found: list[dict[str, Any]] = []
    token = ""
    while True:
        params = {"RegionId": cloud.region, "Tag.1.Key": models.TAG_NODE, "Tag.1.Value": node, "Limit": "20"}
        if token:
            params["NextToken"] = token
        status, body = cloud.raw("DescribeContainerGroups", params)
        assert status == 200, body
        found += body["ContainerGroups"]
        token = body.get("NextToken") or ""
        if not token:
            return found


def pod_uid(group: dict[str, Any]) -> str:
    return next((t["Value"] for t in group.get("Tags") or () if t["Key"] == models.TAG_POD_UID), "")


def force_delete_all(core: k8s.CoreV1Api, namespace: str) -> None:
    """Pods of a node whose daemon is gone would wait for it: remove them outright."""
    with contextlib.suppress(k8s.ApiException):
        core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)


def test_kill_9_while_creating_50_pods_then_a_restart_leaves_exactly_50_instances_all_running(
    cloud: Sim, daemon: VnodeRun, core: k8s.CoreV1Api, namespace: str
) -> None:
    # Every create waits 1.5 s in the cloud before it acts, and 8 run at once: the kill lands
    # while most pods have no instance yet and some creates are in flight (their answers lost).
    status, body = cloud.admin("PUT", "faults/create", {"latency_ms": 1500})
    assert status == 200, body
    try:
        daemon.start("--workers", "8")
        daemon.wait_ready(core)
        create_pods(core, namespace, [f"p-{i:02d}" for i in range(52)], daemon.name)

        def a_few_instances() -> int | None:
            made = live_count(cloud, daemon.name)
            return made if made >= 4 else None

        at_kill = wait_for(a_few_instances, timeout=60, what="the first instances")
        daemon.kill9()
    finally:
        status, body = cloud.admin("DELETE", "faults/create")
        assert status in (200, 204), body
    assert at_kill < 50, f"{at_kill} instances already existed when the daemon was killed"

    try:
        # While it is down, two pods that have an instance are force-deleted: orphans to collect.
        with_instance = {pod_uid(g) for g in instances(cloud, daemon.name)}
        doomed = [p for p in pods(core, namespace) if p["metadata"]["uid"] in with_instance][:2]
        assert len(doomed) == 2
        for pod in doomed:
            core.delete_namespaced_pod(pod["metadata"]["name"], namespace, grace_period_seconds=0)

        daemon.start()

        def settled() -> bool:
            live = pods(core, namespace)
            running_ = [p for p in live if p["status"].get("phase") == "Running"]
            return len(live) == len(running_) == 50 and live_count(cloud, daemon.name) == 50

        wait_for(settled, timeout=120, what="50 pods Running on 50 instances", interval=0.5)
        groups = instances(cloud, daemon.name)
        uids = [pod_uid(g) for g in groups]
        assert len(groups) == len(set(uids)) == 50, "one instance per pod"
        assert set(uids) == {p["metadata"]["uid"] for p in pods(core, namespace)}, "no instance without a pod"
        assert not {p["metadata"]["uid"] for p in doomed} & set(uids)
        assert {g["Status"] for g in groups} == {"Running"}
        tags = [{t["Key"]: t["Value"] for t in g["Tags"]} for g in groups]
        assert all(t[models.TAG_CLUSTER] == CLUSTER_ID for t in tags)
    finally:
        daemon.stop()
        force_delete_all(core, namespace)


def test_500_pods_on_one_node_reach_running(cloud: Sim, daemon: VnodeRun, core: k8s.CoreV1Api, namespace: str) -> None:
    daemon.start()
    daemon.wait_ready(core)
    try:
        create_pods(core, namespace, [f"s-{i:03d}" for i in range(500)], daemon.name)

        def all_running() -> bool:
            return sum(p["status"].get("phase") == "Running" for p in pods(core, namespace)) == 500

        wait_for(all_running, timeout=400, what="500 pods Running", interval=2)
        groups = instances(cloud, daemon.name)
        assert len(groups) == len({pod_uid(g) for g in groups}) == 500
        assert {pod_uid(g) for g in groups} == {p["metadata"]["uid"] for p in pods(core, namespace)}
    finally:
        daemon.stop()
        force_delete_all(core, namespace)
