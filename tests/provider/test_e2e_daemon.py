"""End to end: ``vnode run --provider eci`` as a child process, the real control plane, the simulated cloud.

The simulator runs the ``realistic`` profile with its clock at 10x (a ~30 s start takes ~3 s),
the daemon is the installed command with the field's environment variables read from the
simulator's cloud.json. Both die with the session (``PR_SET_PDEATHSIG``) and are stopped in
teardown, pass or fail.
"""

from __future__ import annotations

import ipaddress
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.daemons import vnode_run
from tests.waiting import wait_for
from vnode.cloudsim import catalog
from vnode.cluster import launcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLOCK_SCALE = 10.0


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("e2e-cloud"), profile="realistic") as sim:
        status, body = sim.admin("POST", "clock", {"scale": CLOCK_SCALE})
        assert status == 200, body
        yield sim


@pytest.fixture(scope="module")
def node(cloud: Sim, cluster: launcher.Info, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ECI node, configured by the field's ECI_* variables from the simulator's cloud.json."""
    with vnode_run("eci", cloud.eci_env(), cluster, tmp_path_factory.mktemp("e2e-eci")) as name:
        yield name


@pytest.fixture(scope="module")
def aci_node(cloud: Sim, cluster: launcher.Info, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ACI node with the simulator's bearer token in ACI_TOKEN."""
    with vnode_run("aci", cloud.aci_env(), cluster, tmp_path_factory.mktemp("e2e-aci")) as name:
        yield name


def virtual_pod_spec(node: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/hostname": node},
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
        "containers": [container],
        "terminationGracePeriodSeconds": 5,
        **spec,
    }


def live_instance_ids(cloud: Sim, uid: str, *, key: str = "vnode.io/pod-uid") -> list[str]:
    """The simulator's live instances tagged with this pod UID, through the ECI API itself (an
    ACI group is the same cloud's instance, its tag spelled as ARM allows)."""
    status, body = cloud.raw(
        "DescribeContainerGroups",
        {"RegionId": cloud.region, "Tag.1.Key": key, "Tag.1.Value": uid, "Limit": "20"},
    )
    assert status == 200, body
    return [g["ContainerGroupId"] for g in body["ContainerGroups"] if g["Status"] != "Terminating"]


def test_an_nginx_pod_runs_on_the_virtual_node_and_deleting_it_removes_the_instance(
    cloud: Sim, node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    container = {"name": "web", "image": "nginx:alpine"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"}, "spec": virtual_pod_spec(node, container)}
    core.create_namespaced_pod(namespace, pod)

    def running_pod() -> k8s.V1Pod | None:
        got: k8s.V1Pod = core.read_namespaced_pod("nginx", namespace)
        return got if got.status.phase == "Running" and got.status.pod_ip else None

    got = wait_for(running_pod, timeout=60, what="the nginx pod Running")
    assert got.spec.node_name == node
    networks = [ipaddress.ip_network(v["cidr"]) for v in cloud.vswitches]
    assert any(ipaddress.ip_address(got.status.pod_ip) in net for net in networks), got.status.pod_ip
    (status,) = got.status.container_statuses
    assert status.container_id.startswith("eci://")
    uid = got.metadata.uid
    (instance_id,) = live_instance_ids(cloud, uid)

    def reasons() -> set[str] | None:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=nginx").items
        found = {e.reason for e in events}
        return found if {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= found else None

    wait_for(reasons, timeout=30, what="events Scheduled, Pulling, Pulled, Created, Started")

    core.delete_namespaced_pod("nginx", namespace)
    wait_for(lambda: not live_instance_ids(cloud, uid), timeout=60, what=f"instance {instance_id} deleted")

    def pod_gone() -> bool:
        return not core.list_namespaced_pod(namespace, field_selector="metadata.name=nginx").items

    wait_for(pod_gone, timeout=60, what="the pod removed")


def test_kubectl_logs_and_exec_reach_the_eci_instance(
    node: str, cluster: launcher.Info, core: k8s.CoreV1Api, namespace: str
) -> None:
    port = core.read_node(node).status.daemon_endpoints.kubelet_endpoint.port
    if not port:
        pytest.skip("this build's vnode run does not serve the kubelet API (node announces port 0)")
    container = {"name": "web", "image": "nginx:alpine"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": virtual_pod_spec(node, container)}
    core.create_namespaced_pod(namespace, pod)
    wait_for(
        lambda: core.read_namespaced_pod("web", namespace).status.phase == "Running", timeout=60, what="the pod Running"
    )
    log = wait_for(lambda: core.read_namespaced_pod_log("web", namespace), timeout=30, what="the pod's log")
    assert "start worker processes" in log
    kubectl = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", "-n", namespace]
    echoed = subprocess.run(
        [*kubectl, "exec", "web", "--", "sh", "-c", 'echo "a b"'], capture_output=True, text=True, timeout=60
    )
    assert (echoed.returncode, echoed.stdout) == (0, "a b\n"), echoed.stderr
    failed = subprocess.run([*kubectl, "exec", "web", "--", "sh", "-c", "exit 3"], capture_output=True, timeout=60)
    assert failed.returncode == 3, failed.stderr


def test_an_nginx_pod_runs_on_the_aci_node_with_an_aci_container_id(
    cloud: Sim, aci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    container = {"name": "web", "image": "nginx:alpine"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nginx"},
        "spec": virtual_pod_spec(aci_node, container),
    }
    core.create_namespaced_pod(namespace, pod)

    def running_pod() -> k8s.V1Pod | None:
        got: k8s.V1Pod = core.read_namespaced_pod("nginx", namespace)
        return got if got.status.phase == "Running" and got.status.pod_ip else None

    got = wait_for(running_pod, timeout=60, what="the nginx pod Running on the ACI node")
    assert got.spec.node_name == aci_node
    networks = [ipaddress.ip_network(v["cidr"]) for v in cloud.vswitches]
    assert any(ipaddress.ip_address(got.status.pod_ip) in net for net in networks), got.status.pod_ip
    (status,) = got.status.container_statuses
    assert status.container_id.startswith("aci://")
    uid = got.metadata.uid
    assert live_instance_ids(cloud, uid, key="vnode.io-pod-uid")

    core.delete_namespaced_pod("nginx", namespace)
    wait_for(lambda: not live_instance_ids(cloud, uid, key="vnode.io-pod-uid"), timeout=60, what="the group deleted")


def test_the_fields_pi_job_completes_billed_at_16_by_32_for_its_run_only(
    cloud: Sim, node: str, kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str
) -> None:
    batch = k8s.BatchV1Api(kube_api)
    resources = {"limits": {"cpu": "16", "memory": "32Gi"}, "requests": {"cpu": "16", "memory": "32Gi"}}
    container = {
        "name": "pi",
        "image": "perl:5.34",
        "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"],
        "resources": resources,
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi"},
        "spec": {
            "backoffLimit": 4,
            "template": {"spec": virtual_pod_spec(node, container, restartPolicy="Never")},
        },
    }
    batch.create_namespaced_job(namespace, job)

    def complete() -> bool:
        got = batch.read_namespaced_job("pi", namespace)
        return any(c.type == "Complete" and c.status == "True" for c in got.status.conditions or ())

    wait_for(complete, timeout=120, what="the Job Complete")
    (pod,) = core.list_namespaced_pod(namespace, label_selector="job-name=pi").items
    assert pod.status.phase == "Succeeded"
    status, body = cloud.raw(
        "DescribeContainerGroups",
        {"RegionId": cloud.region, "Tag.1.Key": "vnode.io/pod-uid", "Tag.1.Value": pod.metadata.uid},
    )
    assert status == 200, body
    (group,) = body["ContainerGroups"]
    assert (group["Cpu"], group["Memory"]) == (16.0, 32.0)

    status, first = cloud.admin("GET", f"instances/{group['ContainerGroupId']}")
    assert status == 200, first
    # Let 20 more simulated seconds pass: a finished instance's bill does not grow.
    start = cloud.admin("GET", "clock")[1]["now"]
    wait_for(lambda: cloud.admin("GET", "clock")[1]["now"] > start + 20, timeout=30, what="simulated time to pass")
    status, later = cloud.admin("GET", f"instances/{group['ContainerGroupId']}")
    assert later["billable_seconds"] == first["billable_seconds"]
    rate = 16 * catalog.USD_PER_VCPU_SECOND + 32 * catalog.USD_PER_GIB_SECOND
    assert later["cost_usd"] == pytest.approx(later["billable_seconds"] * rate)
    # Billed from image pull to the end of the run: the realistic profile's ~30 s start plus the 1 s run.
    assert 1 <= later["billable_seconds"] < 90
