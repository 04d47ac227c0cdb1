"""An inline CSI volume's Secret, with the chart's grants only: the node reads what a kubelet reads.

AKS mounts Azure Files on a virtual node through an inline CSI volume whose Secret is named in
``volumeAttributes.secretName``: the CSI driver reads that one, as its own account, and the Node
authorizer does not grant it to the node. With the chart's default grants such a pod waits,
saying why and the two ways out; a Secret named as the volume's ``nodePublishSecretRef`` is read
as the node, as a kubelet reads it, and the pod runs.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim
from tests.node import least_privilege
from tests.node.conftest import cloud_daemon, pod_manifest
from tests.node.test_podspec_aci import group_when_running, sim, status_text
from tests.waiting import until
from vnode.cluster import launcher

__all__ = ["sim"]  # the ACI simulator fixture, used by name

pytestmark = pytest.mark.cluster


async def test_an_inline_csi_secret_is_read_as_the_node_only_when_named_as_its_publish_secret(
    sim: Sim, cluster: launcher.Info, kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    account = {"azurestorageaccountname": b"myaccount", "azurestorageaccountkey": b"k3y"}
    secret = {
        "metadata": {"name": "azure-secret"},
        "data": {k: base64.b64encode(v).decode() for k, v in account.items()},
    }
    await asyncio.to_thread(core.create_namespaced_secret, namespace, secret)

    def files_pod(name: str, csi: dict[str, object]) -> dict[str, object]:
        volume = {"name": "data", "csi": {"driver": "file.csi.azure.com", **csi}}
        mount = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
        return pod_manifest(name, node_name, container=mount, volumes=[volume])

    by_attribute = files_pod("by-attribute", {"volumeAttributes": {"shareName": "s", "secretName": "azure-secret"}})
    by_ref = files_pod(
        "by-ref", {"volumeAttributes": {"shareName": "s"}, "nodePublishSecretRef": {"name": "azure-secret"}}
    )
    async with (
        least_privilege.daemon_client(cluster, kube_api, namespace, node_name) as limited,
        cloud_daemon(sim, limited, core, node_name, "identity-csi", "aci"),
    ):
        for body in (by_attribute, by_ref):
            await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

        async def told() -> str | None:
            text = await status_text(core, namespace, "by-attribute")
            return text if "nodePublishSecretRef" in text else None

        text = await until(told, within=30, what="the pod saying why its Secret cannot be read")
        assert 'secret \\"azure-secret\\" cannot be read' in text, text
        assert "daemon.csiDriverSecrets" in text, text
        group = await group_when_running(sim, core, namespace, "by-ref")
        volume = next(v for v in group.volumes if v.name == "data")
        assert volume.azure_file.storage_account_name == "myaccount"
        assert "Pending" in await status_text(core, namespace, "by-attribute")
