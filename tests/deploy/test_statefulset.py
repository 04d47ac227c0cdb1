"""The chart's StatefulSet on a process-provider node: each replica is a real `vnode run` under the chart's RBAC."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from kubernetes import client as k8s

from tests.deploy.conftest import delete_replica_nodes
from tests.deploy.test_chart import CHART, run_helm
from tests.waiting import wait_for
from vnode.cluster import build, launcher

pytestmark = pytest.mark.cluster


def ready_nodes(core: k8s.CoreV1Api, prefix: str) -> list[str]:
    names = []
    for node in core.list_node(label_selector="type=virtual-kubelet").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        if node.metadata.name.startswith(prefix) and ready:
            names.append(node.metadata.name)
    return sorted(names)


async def test_each_replica_registers_a_ready_node_named_after_its_pod(
    cluster: launcher.Info, host: str, namespace: str, core: k8s.CoreV1Api
) -> None:
    helm = await asyncio.to_thread(build.ensure_go_tool, "helm", "helm.sh/helm/v3/cmd/helm", build.HELM_VERSION)
    name = f"vn-{secrets.token_hex(3)}"
    sets = [
        f"name={name}", "provider=fake", f"clusterId={name}", "replicas=1", "webhook.enabled=false",
        "uninstallHook.enabled=false", "daemon.httpPort=0", "daemon.kubeletPort=0", "daemon.probes=false",
        f"nodeSelector.kubernetes\\.io/hostname={host}",
        "tolerations[0].key=virtual-kubelet.io/provider", "tolerations[0].operator=Exists",
    ]  # fmt: skip
    where = ["--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    install = await asyncio.to_thread(run_helm, helm, "install", name, str(CHART), *where,
                                      *[a for s in sets for a in ("--set", s)])  # fmt: skip
    assert install.returncode == 0, install.stderr
    try:
        await asyncio.to_thread(wait_for, lambda: ready_nodes(core, name) == [f"{name}-0"], timeout=90,
                                what="the first replica's node to be Ready")  # fmt: skip
        node = core.read_node(f"{name}-0")
        assert node.metadata.labels["type"] == "virtual-kubelet"
        assert node.metadata.labels["kubernetes.io/role"] == "agent"

        scale = ["-n", namespace, "scale", "statefulset", name, "--replicas=2"]
        await asyncio.to_thread(cluster.kubectl, *scale)
        await asyncio.to_thread(wait_for, lambda: ready_nodes(core, name) == [f"{name}-0", f"{name}-1"],
                                timeout=90, what="the second replica's node to be Ready")  # fmt: skip
    finally:
        await asyncio.to_thread(run_helm, helm, "uninstall", name, *where)
        delete_replica_nodes(core, name, 2)
