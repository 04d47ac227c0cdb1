"""helm uninstall runs the pre-delete hook for real: its Job scales the StatefulSet to 0 and runs vnode gc."""

from __future__ import annotations

import asyncio
import secrets
import subprocess

import pytest
from kubernetes import client as k8s

from tests.deploy.conftest import delete_replica_nodes
from tests.deploy.test_chart import CHART, run_helm
from vnode.cluster import build, launcher

pytestmark = pytest.mark.cluster


async def test_uninstall_scales_to_zero_through_the_hook_job(
    cluster: launcher.Info, host: str, namespace: str, kube_api: k8s.ApiClient
) -> None:
    helm = await asyncio.to_thread(build.ensure_go_tool, "helm", "helm.sh/helm/v3/cmd/helm", build.HELM_VERSION)
    name = f"vn-{secrets.token_hex(3)}"
    sets = [
        f"name={name}", "provider=fake", "replicas=2", "webhook.enabled=false", "daemon.httpPort=0",
        "daemon.kubeletPort=0", "daemon.probes=false", "uninstallHook.timeoutSeconds=60",
        f"nodeSelector.kubernetes\\.io/hostname={host}",
        "tolerations[0].key=virtual-kubelet.io/provider", "tolerations[0].operator=Exists",
    ]  # fmt: skip
    kubeconfig = ["--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    install = await asyncio.to_thread(
        run_helm, helm, "install", name, str(CHART), *kubeconfig, *[a for s in sets for a in ("--set", s)]
    )
    assert install.returncode == 0, install.stderr
    apps = k8s.AppsV1Api(kube_api)
    try:
        uninstall = await asyncio.to_thread(
            subprocess.run,
            [str(helm), "uninstall", name, *kubeconfig, "--timeout", "150s"],
            capture_output=True,
            text=True,
        )
        assert uninstall.returncode == 0, uninstall.stderr
        jobs = k8s.BatchV1Api(kube_api).list_namespaced_job(namespace).items
        assert jobs == [], "the hook's Job is deleted once it succeeded"
        assert apps.list_namespaced_stateful_set(namespace).items == []
        events = k8s.CoreV1Api(kube_api).list_namespaced_event(namespace).items
        scaled = [e for e in events if e.involved_object.kind == "StatefulSet" and e.reason == "SuccessfulDelete"]
        assert scaled, "the StatefulSet's pods were deleted by its scale to 0, before the StatefulSet itself"
    finally:
        await asyncio.to_thread(run_helm, helm, "uninstall", name, *kubeconfig, "--no-hooks")
        delete_replica_nodes(k8s.CoreV1Api(kube_api), name, 2)
