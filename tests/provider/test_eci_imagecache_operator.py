"""``vnode operator`` for real: ImageCache objects on the real control plane, kept as the simulator's caches.

The operator runs as the installed command (kopf inside), the CRD is the chart's own manifest,
the cloud is the simulator's ``realistic`` profile with its clock at 10x, and a pod's start is
measured in the cloud's simulated time (its Pulling and Pulled events), never in wall-clock time.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests import daemons
from tests.cloudsim.conftest import Sim, running
from tests.daemons import vnode_run
from tests.provider.test_e2e_daemon import live_instance_ids, virtual_pod_spec
from tests.waiting import wait_for
from vnode.cluster import build, launcher, procs
from vnode.provider.eci import operator

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = ROOT / "deploy/helm/vnode/crds/imagecaches.eci.alibabacloud.com.yaml"
G, V, P = operator.GROUP, operator.VERSION, operator.PLURAL


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("imc-cloud"), profile="realistic") as sim:
        status, body = sim.admin("POST", "clock", {"scale": 10.0})
        assert status == 200, body
        yield sim


@pytest.fixture(scope="module")
def api(cluster: launcher.Info) -> Iterator[k8s.ApiClient]:
    client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="module")
def crd(api: k8s.ApiClient) -> Iterator[None]:
    ext = k8s.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD.read_text())
    with contextlib.suppress(k8s.ApiException):
        ext.create_custom_resource_definition(body)

    def established() -> bool:
        got = ext.read_custom_resource_definition(body["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or ())

    wait_for(established, timeout=30, what="the ImageCache CRD Established")
    yield
    with contextlib.suppress(k8s.ApiException):
        ext.delete_custom_resource_definition(body["metadata"]["name"])


@pytest.fixture(scope="module")
def chart_account(cluster: launcher.Info, tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """A kubeconfig of the chart's own operator ServiceAccount, bound to the chart's ClusterRole.

    The operator runs with exactly the rights the chart gives it: a grant the chart lacks fails
    these tests, and the operator's log must show no Forbidden answer.
    """
    helm = build.ensure_go_tool("helm", "helm.sh/helm/v3/cmd/helm", build.HELM_VERSION)
    release = f"imc-{secrets.token_hex(3)}"
    rendered = subprocess.run(
        [str(helm), "template", release, str(ROOT / "deploy/helm/vnode"), "--namespace", "default",
         "--show-only", "templates/operator.yaml"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    rbac = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] != "Deployment"]
    assert {d["kind"] for d in rbac} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    manifest = yaml.safe_dump_all(rbac)
    cluster.kubectl("apply", "-f", "-", input=manifest)
    try:
        account = next(d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount")
        token = cluster.kubectl("-n", "default", "create", "token", account, "--duration=2h").stdout.strip()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "c", "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca_file)}}
            ],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": account}}],
            "current-context": "c",
        }
        path = tmp_path_factory.mktemp("imc-account") / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        yield path
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=manifest, check=False)


@pytest.fixture(scope="module")
def running_operator(
    cloud: Sim, cluster: launcher.Info, crd: None, chart_account: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path_factory.mktemp("imc-operator") / "operator.log"
    env = {**os.environ, **cloud.eci_env()}
    command = [sys.executable, "-m", "vnode", "operator", "--kubeconfig", str(chart_account)]
    command += ["--refresh-interval", "0.5"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, preexec_fn=procs.die_with_parent)
    try:
        yield proc
    finally:
        daemons.stop(proc)
    forbidden = [line[:300] for line in log_path.read_text().splitlines() if "Forbidden" in line or " 403" in line]
    assert not forbidden, f"the chart's operator role lacks a grant: {forbidden[0] if forbidden else ''}"


@pytest.fixture
def objects(api: k8s.ApiClient, running_operator: subprocess.Popen[bytes]) -> Iterator[k8s.CustomObjectsApi]:
    custom = k8s.CustomObjectsApi(api)
    yield custom
    for item in custom.list_cluster_custom_object(G, V, P)["items"]:  # clean up, also on failure
        with contextlib.suppress(k8s.ApiException):
            custom.delete_cluster_custom_object(G, V, P, item["metadata"]["name"])
    left = lambda: not custom.list_cluster_custom_object(G, V, P)["items"]  # noqa: E731
    wait_for(left, timeout=30, what="every ImageCache deleted by the operator")


def image_cache(name: str, *images: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "ImageCache",
        "metadata": {"name": name},
        "spec": {"images": list(images), **spec},
    }


def cloud_caches(cloud: Sim, cache_id: str) -> list[dict[str, Any]]:
    status, body = cloud.raw("DescribeImageCaches", {"RegionId": cloud.region, "ImageCacheId": cache_id})
    assert status == 200, body
    return list(body["ImageCaches"])


def wait_ready(objects: k8s.CustomObjectsApi, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        got: dict[str, Any] = objects.get_cluster_custom_object(G, V, P, name)
        return got if got.get("status", {}).get("phase") == "Ready" else None

    return wait_for(ready, timeout=60, what=f"ImageCache {name} Ready")


def test_an_image_cache_becomes_ready_and_its_deletion_deletes_the_cloud_cache(
    cloud: Sim, api: k8s.ApiClient, objects: k8s.CustomObjectsApi
) -> None:
    objects.create_cluster_custom_object(G, V, P, image_cache("web", "nginx:1.27", retentionDays=7))
    got = wait_ready(objects, "web")
    status = got["status"]
    cache_id = status["imageCacheId"]
    assert cache_id.startswith("imc-")
    assert status["progress"] == "100%"
    assert status["expireDateTime"]
    (cached,) = cloud_caches(cloud, cache_id)
    assert (cached["Status"], cached["Images"]) == ("Ready", ["nginx:1.27"])
    assert got["metadata"]["finalizers"] == [operator.FINALIZER]
    assert not [k for k in got["metadata"].get("annotations", {}) if "kopf" in k]  # persistence is in the status

    core = k8s.CoreV1Api(api)

    def reasons() -> set[str] | None:
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=web").items
        found = {e.reason for e in events}
        return found if {"Creating", "Ready"} <= found else None

    wait_for(reasons, timeout=30, what="the Creating and Ready events of ImageCache web")

    objects.delete_cluster_custom_object(G, V, P, "web")

    def gone() -> bool:
        try:
            objects.get_cluster_custom_object(G, V, P, "web")
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=30, what="ImageCache web gone (its finalizer removed)")
    assert cloud_caches(cloud, cache_id) == []


@pytest.fixture(scope="module")
def node(cloud: Sim, cluster: launcher.Info, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with vnode_run("eci", cloud.eci_env(), cluster, tmp_path_factory.mktemp("imc-node")) as name:
        yield name


def pull_seconds(cloud: Sim, uid: str) -> float:
    """How long the pod's instance pulled its images, in the cloud's simulated time."""
    (instance_id,) = live_instance_ids(cloud, uid)
    status, body = cloud.raw(
        "DescribeContainerGroups", {"RegionId": cloud.region, "ContainerGroupIds": f'["{instance_id}"]'}
    )
    assert status == 200, body
    events = {e["Reason"]: e for e in body["ContainerGroups"][0]["Events"]}
    start = datetime.datetime.fromisoformat(events["Pulling"]["FirstTimestamp"])
    end = datetime.datetime.fromisoformat(events["Pulled"]["FirstTimestamp"])
    return (end - start).total_seconds()


def test_a_pod_starts_faster_from_a_matching_cache(
    cloud: Sim, node: str, core: k8s.CoreV1Api, namespace: str, objects: k8s.CustomObjectsApi
) -> None:
    objects.create_cluster_custom_object(G, V, P, image_cache("flink", "flink:1.17"))
    wait_ready(objects, "flink")
    container = {"name": "jobmanager", "image": "flink:1.17"}
    pods = {
        "cached": {},  # k8s.aliyun.com/eci-auto-imc is on by default
        "uncached": {"k8s.aliyun.com/eci-auto-imc": "false"},
    }
    for name, wanted in pods.items():
        meta = {"name": name, "annotations": wanted}
        core.create_namespaced_pod(
            namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": virtual_pod_spec(node, container)}
        )

    def running(name: str) -> k8s.V1Pod | None:
        got: k8s.V1Pod = core.read_namespaced_pod(name, namespace)
        return got if got.status.phase == "Running" else None

    uids = {
        name: wait_for(lambda n=name: running(n), timeout=90, what=f"pod {name} Running").metadata.uid for name in pods
    }
    cached, uncached = pull_seconds(cloud, uids["cached"]), pull_seconds(cloud, uids["uncached"])
    assert cached <= 5 < 45 <= uncached, (cached, uncached)


def test_a_pod_naming_a_cache_that_is_not_ready_fails_with_the_reason(
    node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    meta = {"name": "pinned", "annotations": {"k8s.aliyun.com/eci-imc-id": "imc-none"}}
    spec = virtual_pod_spec(node, {"name": "web", "image": "nginx"})
    core.create_namespaced_pod(namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})

    def failed() -> k8s.V1Pod | None:
        got: k8s.V1Pod = core.read_namespaced_pod("pinned", namespace)
        return got if got.status.phase == "Failed" else None

    got = wait_for(failed, timeout=60, what="the pod naming a missing cache Failed")
    assert got.status.reason == "ProviderInvalidSpec"
    assert "imc-none does not exist" in got.status.message
