"""End to end: a Deployment of ECI spot pods keeps its replicas through a reclamation, deleted or evicted.

``vnode run --provider eci`` against the simulator (``fast`` profile, clock at real speed) and
the real control plane. The simulator reclaims one instance with a 60 s notice
(``POST /admin/instances/{id}/reclaim``); vnode marks the pod ``DisruptionTarget`` and deletes it
with its grace period, so the ReplicaSet's replacement is Running well before the old instance
would have been taken, and the old instance is deleted by vnode, never ``Expired``.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from tests.cloudsim.conftest import Sim, running
from tests.daemons import vnode_run
from tests.provider.test_e2e_daemon import live_instance_ids, virtual_pod_spec
from tests.waiting import wait_for
from vnode.cluster import launcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NOTICE = 60.0  # simulated seconds between SpotToBeReleased and the release (real seconds: the clock runs at 1x)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("spot-cloud"), profile="fast") as sim:
        status, body = sim.admin("POST", "clock", {"scale": 1.0})
        assert status == 200, body
        yield sim


@pytest.fixture(scope="module")
def http_port() -> int:
    return launcher.free_port()


@pytest.fixture(scope="module")
def node(cloud: Sim, cluster: launcher.Info, tmp_path_factory: pytest.TempPathFactory, http_port: int) -> Iterator[str]:
    log_dir = tmp_path_factory.mktemp("spot-eci")
    with vnode_run("eci", cloud.eci_env(), cluster, log_dir, "--http-port", str(http_port)) as name:
        yield name


def metric(port: int, name: str, **labels: str) -> float:
    """A sample of the daemon's /metrics (0 if absent), read as Prometheus would."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _running(core: k8s.CoreV1Api, namespace: str) -> dict[str, k8s.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector="app=spot").items
    return {p.metadata.name: p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp}


RELEASE = "k8s.aliyun.com/eci-spot-release-strategy"
SPOT = {"k8s.aliyun.com/eci-spot-strategy": "SpotAsPriceGo", "k8s.aliyun.com/eci-spot-duration": "0"}


def _two_spot_replicas(
    kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str, node: str, name: str, **annotations: str
) -> dict[str, k8s.V1Pod]:
    """A Deployment of two spot pods (``app=spot``), once both run."""
    template = {
        "metadata": {"labels": {"app": "spot"}, "annotations": {**SPOT, **annotations}},
        "spec": virtual_pod_spec(node, {"name": "web", "image": "nginx:alpine"}),
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "spot"}}, "template": template},
    }
    k8s.AppsV1Api(kube_api).create_namespaced_deployment(namespace, deployment)
    running: dict[str, k8s.V1Pod] = wait_for(
        lambda: (pods := _running(core, namespace)) and len(pods) == 2 and pods, timeout=90, what="2 spot pods Running"
    )
    return running


def test_a_deployment_of_spot_pods_keeps_its_replicas_through_a_reclamation(
    cloud: Sim, node: str, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str, http_port: int
) -> None:
    first = _two_spot_replicas(kube_api, core, namespace, node, "spot")
    victim = sorted(first)[0]
    uid = first[victim].metadata.uid
    (instance_id,) = live_instance_ids(cloud, uid)
    assert cloud.admin("GET", f"instances/{instance_id}")[1]["spot_hourly"] > 0  # bought as spot
    wait_for(lambda: metric(http_port, "vnode_spot_instances", node=node) == 2, timeout=30, what="2 spot instances")
    wait_for(lambda: metric(http_port, "vnode_spot_saved_dollars", node=node) > 0, timeout=30, what="spot savings")

    status, body = cloud.admin("POST", f"instances/{instance_id}/reclaim", {"notice": NOTICE})
    assert status == 200, body
    noticed = time.monotonic()

    def marked() -> k8s.V1PodCondition | None:
        pod = core.read_namespaced_pod(victim, namespace)  # deleted with a grace period: still there
        return next((c for c in pod.status.conditions or () if c.type == "DisruptionTarget"), None)

    condition = wait_for(marked, timeout=30, what="the DisruptionTarget condition")
    assert (condition.status, condition.reason) == ("True", "TerminationByKubelet")

    def replaced() -> dict[str, k8s.V1Pod] | None:
        pods = _running(core, namespace)
        return pods if len(pods) == 2 and victim not in pods else None

    wait_for(replaced, timeout=NOTICE, what="the replacement Running within the notice")
    assert time.monotonic() - noticed < NOTICE
    assert metric(http_port, "vnode_reclaims_total", node=node, step="evicted") >= 1

    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={victim}").items
    reasons = {(e.type, e.reason) for e in events}
    assert ("Warning", "SpotToBeReleased") in reasons
    assert ("Warning", "Reclaiming") in reasons
    # vnode deleted the old instance with the pod's grace period: the cloud never had to take it.
    wait_for(lambda: not live_instance_ids(cloud, uid), timeout=60, what=f"instance {instance_id} deleted")
    assert cloud.admin("GET", f"instances/{instance_id}")[1]["status"] != "Expired"


def test_a_pod_asking_for_api_evict_is_evicted_when_its_budget_allows(
    cloud: Sim, node: str, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str, http_port: int
) -> None:
    # k8s.aliyun.com/eci-spot-release-strategy: api-evict: the pod goes through the Eviction API, so a
    # PodDisruptionBudget holds it until the workload can spare it; then it goes within the notice.
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "evict"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "spot"}}},
    }
    policy = k8s.PolicyV1Api(kube_api)
    policy.create_namespaced_pod_disruption_budget(namespace, budget)
    first = _two_spot_replicas(kube_api, core, namespace, node, "evict", **{RELEASE: "api-evict"})
    victim = sorted(first)[0]
    uid = first[victim].metadata.uid
    (instance_id,) = live_instance_ids(cloud, uid)
    status, body = cloud.admin("POST", f"instances/{instance_id}/reclaim", {"notice": NOTICE})
    assert status == 200, body
    noticed = time.monotonic()

    def reasons() -> set[tuple[str, str]]:
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={victim}").items
        return {(e.type, e.reason) for e in events}

    wait_for(lambda: ("Warning", "EvictionBlocked") in reasons(), timeout=30, what="the budget refusing the eviction")
    pod = core.read_namespaced_pod(victim, namespace)
    assert pod.metadata.deletion_timestamp is None  # held by its budget, not deleted around it
    assert any(c.type == "DisruptionTarget" and c.status == "True" for c in pod.status.conditions or ())
    assert ("Warning", "Reclaiming") in reasons()
    assert metric(http_port, "vnode_reclaims_total", node=node, step="eviction-refused") >= 1

    policy.patch_namespaced_pod_disruption_budget("evict", namespace, {"spec": {"minAvailable": 1}})

    def replaced() -> dict[str, k8s.V1Pod] | None:
        pods = _running(core, namespace)
        return pods if len(pods) == 2 and victim not in pods else None

    wait_for(replaced, timeout=NOTICE, what="the pod evicted and replaced within the notice")
    assert time.monotonic() - noticed < NOTICE
    wait_for(lambda: not live_instance_ids(cloud, uid), timeout=60, what=f"instance {instance_id} deleted")
    assert cloud.admin("GET", f"instances/{instance_id}")[1]["status"] != "Expired"


def test_a_bare_spot_pod_runs_out_its_notice_and_fails_bid_failed_as_on_eci(
    cloud: Sim, node: str, core: k8s.CoreV1Api, namespace: str, http_port: int
) -> None:
    manifest = {
        "metadata": {"name": "batch", "annotations": SPOT},
        "spec": {**virtual_pod_spec(node, {"name": "work", "image": "nginx:alpine"}), "restartPolicy": "Never"},
    }
    core.create_namespaced_pod(namespace, manifest)

    def phase(wanted: str) -> k8s.V1Pod | None:
        pod = core.read_namespaced_pod("batch", namespace)
        return pod if pod.status.phase == wanted else None

    pod = wait_for(lambda: phase("Running"), timeout=90, what="the spot pod Running")
    (instance_id,) = live_instance_ids(cloud, pod.metadata.uid)
    before = metric(http_port, "vnode_reclaims_total", node=node, step="reclaimed")
    status, body = cloud.admin("POST", f"instances/{instance_id}/reclaim", {"notice": 3})
    assert status == 200, body
    pod = wait_for(lambda: phase("Failed"), timeout=60, what="the pod Failed once its instance is taken")
    assert pod.status.reason == "BidFailed"
    assert pod.metadata.deletion_timestamp is None  # no controller to replace it: left for its owner to see
    [target] = [c for c in pod.status.conditions if c.type == "DisruptionTarget"]
    assert target.status == "True"
    assert cloud.admin("GET", f"instances/{instance_id}")[1]["status"] == "Expired"
    wait_for(
        lambda: metric(http_port, "vnode_reclaims_total", node=node, step="reclaimed") == before + 1,
        timeout=30,
        what="the reclamation counted",
    )
