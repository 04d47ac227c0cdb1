"""The pod-spec fields ACI maps, on an ACI virtual node (real control plane, the daemon with the ACI
provider against the simulator): a private image with its imagePullSecret, dnsPolicy None with a
dnsConfig, runAsUser and an added capability. It runs, and the official ACI SDK shows each field on
the container group; the same image without the Secret fails its pull (the container waiting in
ErrImagePull); a dnsConfig with searches
but no name server is refused naming the field."""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as aci_models
from kubernetes import client as k8s

from tests.cloudsim.aci_fixtures import StaticToken
from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import cloud_daemon, pod_manifest
from tests.node.test_volumes_eci import claim_pod, pv, pvc
from tests.waiting import until
from vnode.kube import client

pytestmark = pytest.mark.cluster

PRIVATE = "registry.private.example/team/nginx:1"
DNS = {"nameservers": ["1.1.1.1"], "searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"}]}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("podspec-aci")), profile="fast") as started:
        yield started


def group_of(sim: Sim, uid: str) -> aci_models.ContainerGroup | None:
    """The container group of the pod ``uid``, as the official SDK reads it (None: none yet)."""
    info = sim.info["aci"]
    with ContainerInstanceManagementClient(
        StaticToken(info["token"]),
        info["subscription_id"],
        base_url=info["endpoint"],
        connection_verify=info["ca_file"],
    ) as sdk:
        rg = info["resource_group"]
        for listed in sdk.container_groups.list_by_resource_group(rg):
            if (listed.tags or {}).get("vnode.io-pod-uid") == uid:
                got: aci_models.ContainerGroup = sdk.container_groups.get(rg, listed.name)
                return got
    return None


def docker_secret(name: str, server: str) -> dict[str, Any]:
    auth = base64.b64encode(b"robot:s3cret").decode()
    config = json.dumps({"auths": {server: {"auth": auth}}}).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config).decode()},
    }


async def group_when_running(sim: Sim, core: k8s.CoreV1Api, namespace: str, name: str) -> aci_models.ContainerGroup:
    """Wait for the pod ``name`` to run; its container group, as the official SDK reads it."""

    async def running() -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
        return pod if pod.status.phase == "Running" else None

    pod = await until(running, within=60, what=f"pod {name} Running")
    group = await asyncio.to_thread(group_of, sim, pod.metadata.uid)
    assert group is not None
    return group


async def status_text(core: k8s.CoreV1Api, namespace: str, name: str) -> str:
    got = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
    return json.dumps(got.status.to_dict(), default=str)


async def test_the_mapped_fields_reach_the_container_group_and_a_pull_without_the_secret_fails(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    await asyncio.to_thread(
        core.create_namespaced_secret, namespace, docker_secret("regcred", "registry.private.example")
    )
    async with cloud_daemon(sim, kube, core, node_name, "podspec-aci", "aci"):
        body = pod_manifest(
            "web",
            node_name,
            image=PRIVATE,
            container={
                "securityContext": {
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                    "allowPrivilegeEscalation": False,
                    "runAsGroup": 3000,
                }
            },
            securityContext={"runAsUser": 1000},
            imagePullSecrets=[{"name": "regcred"}],
            dnsPolicy="None",
            dnsConfig=DNS,
        )
        await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

        async def running_pod() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "web", namespace)
            return pod if pod.status.phase == "Running" else None

        pod = await until(running_pod, within=60, what="the private-image pod Running")
        group = await asyncio.to_thread(group_of, sim, pod.metadata.uid)
        assert group is not None
        assert [(c.server, c.username, c.password) for c in group.image_registry_credentials] == [
            ("registry.private.example", "robot", None)
        ]
        dns = group.dns_config
        assert (dns.name_servers, dns.search_domains, dns.options) == (["1.1.1.1"], "corp.example", "ndots:2")
        context = group.containers[0].security_context
        assert (context.run_as_user, context.capabilities.add) == (1000, ["NET_ADMIN"])
        assert (context.run_as_group, context.capabilities.drop, context.allow_privilege_escalation) == (
            3000,
            ["ALL"],
            False,
        )

        await asyncio.to_thread(
            core.create_namespaced_pod, namespace, pod_manifest("nologin", node_name, image=PRIVATE)
        )

        async def pull_failed() -> str | None:
            text = await status_text(core, namespace, "nologin")
            return text if '"reason": "ErrImagePull"' in text else None

        await until(pull_failed, within=60, what="the pod without its imagePullSecret failing its pull")

        bad_dns = pod_manifest("baddns", node_name, dnsPolicy="Default", dnsConfig={"searches": ["corp.example"]})
        await asyncio.to_thread(core.create_namespaced_pod, namespace, bad_dns)

        async def refused() -> str | None:
            text = await status_text(core, namespace, "baddns")
            return text if "spec.dnsConfig.searches" in text else None

        await until(refused, within=30, what="the searches-only dnsConfig refused naming the field")
        uid = (await asyncio.to_thread(core.read_namespaced_pod, "baddns", namespace)).metadata.uid
        assert await asyncio.to_thread(group_of, sim, uid) is None


async def test_an_azure_files_share_and_the_probes_reach_the_container_group(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    """AKS's way to mount Azure Files on a virtual node: an inline csi volume naming the share and a
    Secret with the storage account; the pod waits for the Secret, then the group mounts the share."""
    account = {"azurestorageaccountname": b"myaccount", "azurestorageaccountkey": b"k3y"}
    share = {
        "driver": "file.csi.azure.com",
        "volumeAttributes": {"shareName": "team-data", "secretName": "azure-secret"},
    }
    probe = {"httpGet": {"path": "/ready", "port": 80}, "periodSeconds": 5}
    async with cloud_daemon(sim, kube, core, node_name, "podspec-aci-files", "aci"):
        body = pod_manifest(
            "files",
            node_name,
            container={"volumeMounts": [{"name": "data", "mountPath": "/data"}], "readinessProbe": probe},
            volumes=[{"name": "data", "csi": share}],
        )
        await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

        async def waiting_for_secret() -> str | None:
            text = await status_text(core, namespace, "files")
            return text if "azure-secret" in text else None

        await until(waiting_for_secret, within=30, what="the pod waiting for its storage account's Secret")
        secret = {
            "metadata": {"name": "azure-secret"},
            "data": {k: base64.b64encode(v).decode() for k, v in account.items()},
        }
        await asyncio.to_thread(core.create_namespaced_secret, namespace, secret)

        group = await group_when_running(sim, core, namespace, "files")
        volume = next(v for v in group.volumes if v.name == "data")
        assert (volume.name, volume.azure_file.share_name, volume.azure_file.storage_account_name) == (
            "data", "team-data", "myaccount"
        )  # fmt: skip
        container = group.containers[0]
        assert ("data", "/data") in [(m.name, m.mount_path) for m in container.volume_mounts]
        ready = container.readiness_probe
        assert (ready.http_get.path, ready.http_get.port, ready.period_seconds) == ("/ready", 80, 5)


async def test_a_claim_of_an_azure_files_volume_mounts_its_share_once_its_secret_exists(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    """A PersistentVolume of file.csi.azure.com as dynamic provisioning leaves it (the share named only in
    its volumeHandle, the account's Secret in nodeStageSecretRef): the pod waits for the Secret, then the
    container group mounts the share."""
    name = f"{namespace}-files"
    source = {"csi": {"driver": "file.csi.azure.com", "volumeHandle": "mc_rg#myaccount#pvc-share-1###default",
                      "nodeStageSecretRef": {"name": "azure-account", "namespace": namespace}}}  # fmt: skip
    await asyncio.to_thread(core.create_persistent_volume, pv(name, namespace, "files", source))
    try:
        await asyncio.to_thread(core.create_namespaced_persistent_volume_claim, namespace, pvc("files", name))
        async with cloud_daemon(sim, kube, core, node_name, "podspec-aci-pvc", "aci"):
            await asyncio.to_thread(core.create_namespaced_pod, namespace, claim_pod("shared", node_name, "files"))

            async def waiting() -> str | None:
                text = await status_text(core, namespace, "shared")
                return text if f"{namespace}/azure-account" in text else None

            await until(waiting, within=30, what="the pod waiting for its volume's Secret")
            data = {"azurestorageaccountkey": base64.b64encode(b"k3y").decode()}
            secret = {"metadata": {"name": "azure-account"}, "data": data}
            await asyncio.to_thread(core.create_namespaced_secret, namespace, secret)

            group = await group_when_running(sim, core, namespace, "shared")
            volume = next(v for v in group.volumes if v.name == "data")
            assert (volume.azure_file.share_name, volume.azure_file.storage_account_name) == (
                "pvc-share-1",
                "myaccount",
            )
    finally:
        await asyncio.to_thread(core.delete_persistent_volume, name)


async def test_what_aci_cannot_do_is_refused_aloud_and_a_startup_probe_is_folded(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    """ACI's API has no lifecycle hooks, termination message path, host aliases or hostname: a pod with
    them fails at once naming each, with no container group made. A startup probe, which no cloud has,
    becomes the readiness probe ACI runs."""
    async with cloud_daemon(sim, kube, core, node_name, "podspec-aci-refused", "aci"):
        refused = pod_manifest(
            "refused",
            node_name,
            hostname="custom",
            hostAliases=[{"ip": "10.1.2.3", "hostnames": ["db.internal"]}],
            container={
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 5"]}}},
                "terminationMessagePath": "/tmp/why",
            },
        )
        await asyncio.to_thread(core.create_namespaced_pod, namespace, refused)
        startup = {"httpGet": {"path": "/started", "port": 80}, "periodSeconds": 2, "failureThreshold": 30}
        probed = pod_manifest("probed", node_name, container={"startupProbe": startup})
        await asyncio.to_thread(core.create_namespaced_pod, namespace, probed)

        async def failed() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "refused", namespace)
            return pod if pod.status.phase == "Failed" else None

        pod = await until(failed, within=30, what="the pod of fields ACI lacks Failed")
        ready = next(c for c in pod.status.conditions if c.type == "Ready")
        assert pod.status.reason == ready.reason == "UnsupportedField"
        for field in ("spec.hostname", "spec.hostAliases", "lifecycle", "terminationMessagePath"):
            assert field in ready.message, field
        assert ready.message.endswith("(provider aci)")
        assert await asyncio.to_thread(group_of, sim, pod.metadata.uid) is None

        group = await group_when_running(sim, core, namespace, "probed")
        ready_probe = group.containers[0].readiness_probe
        assert (ready_probe.http_get.path, ready_probe.period_seconds) == ("/started", 2)
