"""``vnode gc`` deletes the instances of pods and nodes that no longer exist, and only this cluster's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.waiting import until
from vnode import models
from vnode.cluster import launcher
from vnode.kube import client
from vnode.provider.fake import provider as fake
from vnode.provider.process import provider as process

pytestmark = pytest.mark.cluster


@pytest.fixture
def node(core: k8s.CoreV1Api) -> Iterator[str]:
    name = f"gc-{secrets.token_hex(3)}"
    taint = k8s.V1Taint(key="vnode.io/test", value="gc", effect="NoSchedule")
    core.create_node(k8s.V1Node(metadata=k8s.V1ObjectMeta(name=name), spec=k8s.V1NodeSpec(taints=[taint])))
    try:
        yield name
    finally:
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(name)


def instance_spec(token: str, *, cluster: str, node: str, uid: str, name: str = "p") -> models.InstanceSpec:
    tags = {models.TAG_CLUSTER: cluster, models.TAG_NODE: node, models.TAG_POD_UID: uid,
            models.TAG_NAMESPACE: "ns", models.TAG_NAME: name}  # fmt: skip
    return models.InstanceSpec(name=name, client_token=token, cpu=1, memory_gib=2, tags=tags,
                               containers=(models.ContainerSpec("c", "x", command=("sleep", "60")),))  # fmt: skip


def live_pod(core: k8s.CoreV1Api, namespace: str, node: str) -> str:
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="alive"),
        spec=k8s.V1PodSpec(node_name=node, containers=[k8s.V1Container(name="c", image="x")],
                           tolerations=[k8s.V1Toleration(operator="Exists")]),
    )  # fmt: skip
    uid: str = core.create_namespaced_pod(namespace, pod).metadata.uid
    return uid


async def test_gc_deletes_instances_of_gone_pods_and_nodes_only_for_its_cluster(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    from vnode import gc

    cloud = fake.FakeProvider()
    uid = live_pod(core, namespace, node)
    kept = await cloud.create(instance_spec("a", cluster="c1", node=node, uid=uid))
    pod_gone = await cloud.create(instance_spec("b", cluster="c1", node=node, uid="gone-uid"))
    node_gone = await cloud.create(instance_spec("c", cluster="c1", node="no-such-node", uid=uid))
    other = await cloud.create(instance_spec("d", cluster="c2", node="no-such-node", uid="gone-uid"))

    orphans, failed = await gc.collect(kube, cloud, "c1", dry_run=True)
    assert {(o.instance.id, o.reason) for o in orphans} == {(pod_gone.id, "pod gone"), (node_gone.id, "node gone")}
    assert len(cloud.instances()) == 4, "a dry run deletes nothing"

    only_nodes = await gc.find_orphans(kube, cloud, "c1", pods=False)
    assert [o.instance.id for o in only_nodes] == [node_gone.id], "the cheap pass looks at nodes only"

    orphans, failed = await gc.collect(kube, cloud, "c1")
    assert failed == []
    assert {i.id for i in cloud.instances()} == {kept.id, other.id}


async def test_a_surviving_replica_collects_the_instances_of_gone_nodes(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    from vnode import gc

    cloud = fake.FakeProvider()
    uid = live_pod(core, namespace, node)
    kept = await cloud.create(instance_spec("a", cluster="c1", node=node, uid=uid))
    await cloud.create(instance_spec("b", cluster="c1", node="virtual-node-eci-7", uid="uid-of-a-pod-of-node-7"))
    task = asyncio.create_task(gc.collect_periodically(kube, cloud, "c1", interval=0.2, should_run=lambda: True))
    try:
        await until(lambda: len(cloud.instances()) == 1, within=20, what="the gone node's instance collected")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [i.id for i in cloud.instances()] == [kept.id]


async def test_the_gc_command_with_the_process_provider(
    cluster: launcher.Info, tmp_path: pathlib.Path, node: str
) -> None:
    state = tmp_path / "process"
    cloud = process.ProcessProvider(state, lifeline=os.getpid())
    try:
        orphan = await cloud.create(instance_spec("e", cluster="play", node=node, uid="gone-uid", name="web"))
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "VNODE_PROCESS_DIR": str(state)}
        cmd = [sys.executable, "-m", "vnode", "gc", "--provider", "process", "--cluster-id", "play"]
        dry = await asyncio.to_thread(subprocess.run, [*cmd, "--dry-run"], env=env, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
        assert f"would delete {orphan.id} pod=ns/web node={node} (pod gone)" in dry.stdout
        assert [s.id for s in await cloud.list({})] == [orphan.id]

        real = await asyncio.to_thread(subprocess.run, [*cmd, "--grace-seconds", "1"], env=env, capture_output=True,
                                      text=True)  # fmt: skip
        assert real.returncode == 0, real.stderr
        assert "1 instance(s) deleted" in real.stdout
    finally:
        process.stop_all(state)


@pytest.fixture
def service_account_token(core: k8s.CoreV1Api, namespace: str) -> Iterator[str]:
    """A token of a ServiceAccount bound to cluster-admin (the binding removed afterwards)."""
    account, binding = "gc-exec", f"vnode-test-gc-exec-{namespace}"
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=account)))
    rbac = k8s.RbacAuthorizationV1Api(core.api_client)
    rbac.create_cluster_role_binding(
        k8s.V1ClusterRoleBinding(
            metadata=k8s.V1ObjectMeta(name=binding),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)],
        )
    )
    try:
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        yield core.create_namespaced_service_account_token(account, namespace, request).status.token
    finally:
        with contextlib.suppress(k8s.ApiException):
            rbac.delete_cluster_role_binding(binding)


def exec_kubeconfig(cluster: launcher.Info, token: str, directory: pathlib.Path) -> pathlib.Path:
    """A kubeconfig whose user is an exec plugin, as EKS, AKS and ACK write them: a script that
    prints an ExecCredential with ``token``."""
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": token}}
    plugin = directory / "plugin"
    plugin.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({credential!r}))\n")
    plugin.chmod(0o755)
    user = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "interactiveMode": "Never"}
    }
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "exec",
        "clusters": [
            {"name": "c", "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca_file)}}
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "exec", "context": {"cluster": "c", "user": "u"}}],
    }
    path = directory / "kubeconfig"
    path.write_text(json.dumps(kubeconfig))  # JSON is YAML
    return path


async def test_the_gc_command_with_an_exec_plugin_kubeconfig(
    cluster: launcher.Info, service_account_token: str, tmp_path: pathlib.Path, node: str
) -> None:
    kubeconfig = exec_kubeconfig(cluster, service_account_token, tmp_path)
    state = tmp_path / "process"
    cloud = process.ProcessProvider(state, lifeline=os.getpid())
    try:
        orphan = await cloud.create(instance_spec("f", cluster="exec", node=node, uid="gone-uid", name="web"))
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"VNODE_PROCESS_DIR": str(state)}
        cmd = [sys.executable, "-m", "vnode", "gc", "--kubeconfig", str(kubeconfig), "--provider", "process",
               "--cluster-id", "exec", "--dry-run"]  # fmt: skip
        done = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert f"would delete {orphan.id} pod=ns/web node={node} (pod gone)" in done.stdout
    finally:
        process.stop_all(state)
