"""The issue's pod on an ECI virtual node (real control plane, the daemon with the ECI provider against
the simulator): runAsUser 1000 from the pod, NET_ADMIN added to the container, hostAliases, dnsPolicy
None with a dnsConfig. It runs, and the official SDK's DescribeContainerGroups shows each field; a
privileged container is refused with the field named in the pod's status. Its startup probe, which
ECI lacks, is folded into the liveness and readiness probes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import pathlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import eci_daemon, pod_manifest
from tests.node.test_podspec_aci import docker_secret
from tests.waiting import until
from vnode.kube import client

pytestmark = pytest.mark.cluster

# A projected downwardAPI volume: what the kubelet would write as files.
PODINFO = {
    "name": "info",
    "projected": {"sources": [{"downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "cpu_millis",
         "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu", "divisor": "1m"}},
    ]}}]},
}  # fmt: skip
DNS = {"nameservers": ["1.1.1.1"], "searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"}]}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("podspec-eci")), profile="fast") as started:
        yield started


def described(sim: Sim, uid: str) -> Any:
    request = m.DescribeContainerGroupsRequest(
        region_id=sim.region, tag=[m.DescribeContainerGroupsRequestTag(key="vnode.io/pod-uid", value=uid)]
    )
    groups = sim.client().describe_container_groups(request).body.container_groups
    return groups[0] if len(groups) == 1 else None


def says(core: k8s.CoreV1Api, namespace: str, name: str, words: str) -> Callable[[], Awaitable[str | None]]:
    """A condition for ``until``: the pod's status, as text, once it contains ``words``."""

    async def check() -> str | None:
        got = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
        text = json.dumps(got.status.to_dict(), default=str)
        return text if words in text else None

    return check


async def test_the_issues_pod_runs_with_every_field_on_the_instance(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    async with eci_daemon(sim, kube, core, node_name, "podspec-eci"):
        body = pod_manifest(
            "web",
            node_name,
            container={
                "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
                "startupProbe": {"exec": {"command": ["cat", "/started"]}, "periodSeconds": 5, "failureThreshold": 12},
                "livenessProbe": {"exec": {"command": ["true"]}},
                "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
                "volumeMounts": [{"name": "info", "mountPath": "/etc/podinfo"}],
            },
            metadata={"labels": {"tier": "web"}},
            volumes=[PODINFO],
            securityContext={"runAsUser": 1000, "runAsNonRoot": True},
            hostAliases=[{"ip": "10.1.2.3", "hostnames": ["db", "db.local"]}],
            dnsPolicy="None",
            dnsConfig=DNS,
        )
        await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

        async def running_pod() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "web", namespace)
            return pod if pod.status.phase == "Running" else None

        pod = await until(running_pod, within=30, what="the pod Running")
        group = described(sim, pod.metadata.uid)
        assert [(a.ip, a.hostnames) for a in group.host_aliases] == [("10.1.2.3", ["db", "db.local"])]
        assert (group.dns_config.name_servers, group.dns_config.searches) == (["1.1.1.1"], ["corp.example"])
        assert [(o.name, o.value) for o in group.dns_config.options] == [("ndots", "2")]
        context = group.containers[0].security_context
        assert (context.run_as_user, context.capability.adds) == (1000, ["NET_ADMIN"])
        # ECI has no startup probe: liveness waits out its window (5 s x 12), and it gates readiness.
        probes = group.containers[0]
        assert (probes.liveness_probe.execs, probes.liveness_probe.initial_delay_seconds) == (["true"], 60)
        assert (probes.readiness_probe.execs, probes.readiness_probe.failure_threshold) == (["cat", "/started"], 12)
        # A projected downwardAPI volume: the files the kubelet would write, as ECI ConfigFileVolume files.
        (info,) = [v for v in group.volumes if v.name == "info"]
        files = {f.path: base64.b64decode(f.content).decode() for f in info.config_file_volume_config_file_to_paths}
        assert (files["name"], files["cpu_millis"]) == ("web", "500")
        assert 'tier="web"' in files["labels"].splitlines()

        privileged = pod_manifest("priv", node_name, container={"securityContext": {"privileged": True}})
        await asyncio.to_thread(core.create_namespaced_pod, namespace, privileged)

        await until(says(core, namespace, "priv", "securityContext.privileged"), within=30,
                    what="the privileged pod refused naming the field")  # fmt: skip

        # runAsNonRoot without a runAsUser: the kubelet would read the image's user; the cloud does not
        # tell it, so the pod is refused saying how to make it run (with a uid it runs: the first pod).
        unchecked = pod_manifest("nonroot", node_name, container={"securityContext": {"runAsNonRoot": True}})
        await asyncio.to_thread(core.create_namespaced_pod, namespace, unchecked)

        await until(says(core, namespace, "nonroot", "set runAsUser"), within=30,
                    what="the runAsNonRoot pod refused, saying to set runAsUser")  # fmt: skip
        assert (
            described(sim, (await asyncio.to_thread(core.read_namespaced_pod, "priv", namespace)).metadata.uid) is None
        )


@contextlib.contextmanager
def kube_dns(core: k8s.CoreV1Api) -> Iterator[str]:
    """kube-system's kube-dns Service (made here if the control plane has none, removed after): its IP."""
    made = False
    try:
        service = core.read_namespaced_service("kube-dns", "kube-system")
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
        body = k8s.V1Service(
            metadata=k8s.V1ObjectMeta(name="kube-dns"),
            spec=k8s.V1ServiceSpec(ports=[k8s.V1ServicePort(name="dns", port=53, protocol="UDP")]),
        )
        service = core.create_namespaced_service("kube-system", body)
        made = True
    try:
        yield service.spec.cluster_ip
    finally:
        if made:
            with contextlib.suppress(k8s.ApiException):
                core.delete_namespaced_service("kube-dns", "kube-system")


async def test_cluster_first_gets_the_kube_dns_service_and_the_search_path(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    with kube_dns(core) as dns_ip:
        async with eci_daemon(sim, kube, core, node_name, "podspec-dns"):
            body = pod_manifest("dns", node_name, dnsConfig={"searches": ["corp.example"]})
            await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

            async def described_pod() -> Any:
                pod = await asyncio.to_thread(core.read_namespaced_pod, "dns", namespace)
                return described(sim, pod.metadata.uid) if pod.status.phase == "Running" else None

            group = await until(described_pod, within=30, what="the pod Running")
            assert group.dns_config.name_servers == [dns_ip]
            search = [f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"]
            assert group.dns_config.searches == search
            assert [(o.name, o.value) for o in group.dns_config.options] == [("ndots", "5")]


async def test_an_image_that_fails_to_pull_keeps_the_pod_pending_in_image_pull_back_off(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    """As a kubelet keeps such a pod: Pending, its container waiting in ErrImagePull then
    ImagePullBackOff, the cloud's Failed and BackOff events on the pod; never Failed by the pull."""
    image = "registry.example.com/team/does-not-exist:1"
    async with eci_daemon(sim, kube, core, node_name, "podspec-pull"):
        await asyncio.to_thread(core.create_namespaced_pod, namespace, pod_manifest("nopull", node_name, image=image))

        seen: list[Any] = [None]

        def waiting_in(reason: str) -> Any:
            async def check() -> Any:
                pod = seen[0] = await asyncio.to_thread(core.read_namespaced_pod, "nopull", namespace)
                statuses = pod.status.container_statuses or []
                waiting = statuses[0].state.waiting if statuses else None
                return pod if waiting is not None and waiting.reason == reason else None

            return check

        def last_seen() -> str:
            return f"last status: {seen[0] and seen[0].status}"

        await until(waiting_in("ErrImagePull"), within=30, what=lambda: f"the container in ErrImagePull; {last_seen()}")
        await asyncio.to_thread(sim.advance, 2)  # the cloud's next pull (the fast profile's back-off: 1 s)
        pod = await until(
            waiting_in("ImagePullBackOff"), within=30, what=lambda: f"the container in ImagePullBackOff; {last_seen()}"
        )
        assert pod.status.phase == "Pending"
        assert image in pod.status.container_statuses[0].state.waiting.message

        async def warned() -> set[str] | None:
            listed = await asyncio.to_thread(
                core.list_namespaced_event, namespace, field_selector="involvedObject.name=nopull"
            )
            reasons = {e.reason for e in listed.items if e.type == "Warning" and image in (e.message or "")}
            return reasons if {"Failed", "BackOff"} <= reasons else None

        await until(warned, within=30, what="the Failed and BackOff events of the pull on the pod")
        assert described(sim, pod.metadata.uid).status == "Pending", "the cloud pulls again"


async def test_a_private_image_pulls_with_its_secret_and_without_it_waits_in_err_image_pull(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    """imagePullSecrets become ECI's ImageRegistryCredential (the simulator pulls from its private
    registry only with one); the same image without the Secret fails its pull as the kubelet's would."""
    private = "registry.private.example/team/nginx:1"
    secret = docker_secret("regcred", "registry.private.example")
    await asyncio.to_thread(core.create_namespaced_secret, namespace, secret)
    async with eci_daemon(sim, kube, core, node_name, "podspec-eci-private"):
        body = pod_manifest("private", node_name, image=private, imagePullSecrets=[{"name": "regcred"}])
        await asyncio.to_thread(core.create_namespaced_pod, namespace, body)
        await asyncio.to_thread(
            core.create_namespaced_pod, namespace, pod_manifest("nologin", node_name, image=private)
        )

        async def running() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "private", namespace)
            return pod if pod.status.phase == "Running" else None

        await until(running, within=60, what="the private-image pod Running (the cloud pulled with the credential)")
        await until(says(core, namespace, "nologin", "ErrImagePull"), within=60, what="the pod without its Secret")
