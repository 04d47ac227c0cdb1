"""virtual-kubelet's importable e2e suite (its nine tests) against ``vnode run --provider eci``.

The suite (Go package ``github.com/virtual-kubelet/virtual-kubelet/test/e2e``, compiled from
this folder's Go module by ``build.ensure_vk_e2e``) needs what a virtual-kubelet deployment has:

* pods whose images are ``foo``, ``bar``, ``baz`` that run and get Ready: the simulator's
  any-image setting (as virtual-kubelet's mock provider runs any image);
* the Events ``Mandatory/OptionalConfigMapNotFound`` and ``Mandatory/OptionalSecretNotFound``;
* the node proxy (``/pods``, ``/runningpods/``): the node advertises the host's address, since
  the API server refuses to proxy to loopback;
* the stats and metrics routes through the *pod* proxy ``pods/https:<node>:10250``, in the
  suite's namespace: a pod named like the node, as the virtual kubelet's own pod is in a
  deployment, here a stand-in bound to a plain Node object whose status carries the host's
  address; the kubelet API listens there on 10250. The pod proxy sends no credentials, so the
  daemon allows anonymous callers (``VNODE_KUBELET_ANONYMOUS_AUTH``, the kubelet's
  ``--anonymous-auth``) and RBAC grants ``system:anonymous`` this node's stats and metrics only.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
import secrets
import subprocess
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests import daemons
from tests.cloudsim.conftest import Sim
from tests.waiting import wait_for
from vnode import settings
from vnode.cloudsim import lifecycle
from vnode.cluster import build, launcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SUITE = (
    "TestCreatePodWithMandatoryInexistentConfigMap",
    "TestCreatePodWithMandatoryInexistentSecrets",
    "TestCreatePodWithOptionalInexistentConfigMap",
    "TestCreatePodWithOptionalInexistentSecrets",
    "TestGetMetricsResource",
    "TestGetPods",
    "TestGetStatsSummary",
    "TestPodLifecycleForceDelete",
    "TestPodLifecycleGracefulDelete",
)


@pytest.fixture(scope="module")
def conformance_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """The simulator with every image pullable, its clock at real speed."""
    state = tmp_path_factory.mktemp("vke2e-cloud")
    profile = state / "profile.json"
    profile.write_text(lifecycle.PROFILES["fast"].model_copy(update={"any_image": True}).model_dump_json())
    sim = Sim(state / "sim", profile=str(profile))
    try:
        sim.start()
        status, body = sim.admin("POST", "clock", {"scale": 1.0})
        assert status == 200, body
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def suite_namespace(kube_api: k8s.ApiClient) -> Iterator[str]:
    core = k8s.CoreV1Api(kube_api)
    name = f"vke2e-{secrets.token_hex(3)}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    try:
        wait_for(lambda: bool(core.list_namespaced_service_account(name, field_selector="metadata.name=default").items),
                 timeout=30, what=f"the default service account in {name}")  # fmt: skip
        yield name
    finally:
        core.delete_namespace(name, grace_period_seconds=0, propagation_policy="Background")


@pytest.fixture(scope="module")
def vk_node(
    cluster: launcher.Info, kube_api: k8s.ApiClient, conformance_sim: Sim, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An ECI virtual node advertising the host's address, its kubelet API on <address>:10250."""
    env = {
        **conformance_sim.eci_env(),
        "VNODE_NODE_IP": settings.AUTO_NODE_IP,
        "VNODE_KUBELET_ANONYMOUS_AUTH": "true",
    }
    run = daemons.VnodeRun("eci", env, cluster, tmp_path_factory.mktemp("vke2e-node"))
    core = k8s.CoreV1Api(kube_api)
    try:
        run.start("--kubelet-port", "10250")
        run.wait_ready(core, timeout=120)
        yield run.name
    finally:
        run.stop()
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(run.name)


@contextlib.contextmanager
def _node_pod(kube_api: k8s.ApiClient, namespace: str, node: str, address: str) -> Iterator[None]:
    """The pod named like the node in ``namespace`` (the stand-in for the virtual kubelet's own pod),
    on a plain Node object, its status carrying ``address``; and RBAC for anonymous stats and metrics."""
    core, rbac = k8s.CoreV1Api(kube_api), k8s.RbacAuthorizationV1Api(kube_api)
    host = f"vke2e-host-{secrets.token_hex(3)}"
    role = f"vke2e-anonymous-{secrets.token_hex(3)}"
    try:
        core.create_node({"metadata": {"name": host}})
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": node},
            "spec": {"nodeName": host, "containers": [{"name": "vnode", "image": "vnode"}],
                     "tolerations": [{"operator": "Exists"}]},
        })  # fmt: skip
        status = {"phase": "Running", "hostIP": address, "podIP": address, "podIPs": [{"ip": address}]}
        core.patch_namespaced_pod_status(node, namespace, {"status": status})
        rbac.create_cluster_role({
            "metadata": {"name": role},
            "rules": [{"apiGroups": [""], "resources": ["nodes/stats", "nodes/metrics"], "resourceNames": [node],
                       "verbs": ["get"]}],
        })  # fmt: skip
        rbac.create_cluster_role_binding({
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}],
        })  # fmt: skip
        yield
    finally:
        for delete in (
            lambda: rbac.delete_cluster_role_binding(role),
            lambda: rbac.delete_cluster_role(role),
            lambda: core.delete_namespaced_pod(node, namespace, grace_period_seconds=0),
            lambda: core.delete_node(host),
        ):
            with contextlib.suppress(k8s.ApiException):
                delete()


def test_the_node_proxy_reaches_the_virtual_kubelet(cluster: launcher.Info, vk_node: str) -> None:
    """``kubectl get --raw /api/v1/nodes/<node>/proxy/pods``: refused for a loopback address."""
    node = json.loads(cluster.kubectl("get", "node", vk_node, "-o", "json").stdout)
    internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    assert internal == [settings.host_address()]
    pods = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/nodes/{vk_node}/proxy/pods").stdout)
    assert pods["kind"] == "PodList"
    running = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/nodes/{vk_node}/proxy/runningpods/").stdout)
    assert running["kind"] == "PodList"


@pytest.mark.timeout(2400)  # a cold build of the suite takes minutes on a busy machine
def test_virtual_kubelets_e2e_suite_passes(
    cluster: launcher.Info, kube_api: k8s.ApiClient, vk_node: str, suite_namespace: str, tmp_path: pathlib.Path
) -> None:
    binary = build.ensure_vk_e2e()
    with _node_pod(kube_api, suite_namespace, vk_node, settings.host_address()):
        command = [str(binary), "-test.v", "-test.count=1", f"-kubeconfig={cluster.kubeconfig}"]
        command += [f"-namespace={suite_namespace}", f"-node-name={vk_node}", "-watch-timeout=2m"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    output = done.stdout + done.stderr
    (tmp_path / "vke2e.log").write_text(output)
    passed = set(re.findall(r"--- PASS: TestEndToEnd/(\w+)", output))
    assert done.returncode == 0, output[-6000:]
    assert passed == set(SUITE), output[-6000:]
