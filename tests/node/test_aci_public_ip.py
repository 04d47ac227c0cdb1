"""azure-aci's DNS name label on an ACI virtual node (real control plane, the daemon with the ACI
provider against the simulator): a pod with ``virtualkubelet.io/dnsnamelabel`` and a containerPort
runs, its container group (read with the official SDK) has a public IP with that label, and the pod
is given the address and the name; a label ACI would refuse fails the pod naming the annotation,
with nothing created."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import cloud_daemon, pod_manifest
from tests.node.test_podspec_aci import group_of
from tests.waiting import until
from vnode.kube import client
from vnode.provider.aci import mapping

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("public-ip-aci")), profile="fast") as started:
        yield started


async def test_a_labelled_pod_gets_a_public_ip_with_its_name_and_a_bad_label_fails_naming_it(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    label = f"web-{node_name}"  # unique per run: the simulator keeps a label unique in its region
    web = pod_manifest(
        "web",
        node_name,
        metadata={"annotations": {mapping.DNS_NAME_LABEL: label}},
        container={"ports": [{"containerPort": 80}]},
    )
    bad = pod_manifest(
        "bad",
        node_name,
        metadata={"annotations": {mapping.DNS_NAME_LABEL: "Not_A_Label"}},
        container={"ports": [{"containerPort": 80}]},
    )
    async with cloud_daemon(sim, kube, core, node_name, "public-ip-aci", "aci"):
        await asyncio.to_thread(core.create_namespaced_pod, namespace, web)
        await asyncio.to_thread(core.create_namespaced_pod, namespace, bad)

        async def addressed() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "web", namespace)
            shown = pod.metadata.annotations or {}
            return pod if pod.status.phase == "Running" and mapping.FQDN in shown else None

        pod = await until(addressed, within=60, what="the labelled pod Running with its public address and name")
        group = await asyncio.to_thread(group_of, sim, pod.metadata.uid)
        assert group is not None
        address = group.ip_address
        assert (address.type, address.dns_name_label) == ("Public", label)
        assert [(p.port, p.protocol) for p in address.ports] == [(80, "TCP")]
        shown = pod.metadata.annotations
        assert shown[mapping.PUBLIC_IP] == address.ip == pod.status.pod_ip
        assert shown[mapping.FQDN] == address.fqdn == f"{label}.{group.location}.azurecontainer.io"

        async def failed() -> Any:
            got = await asyncio.to_thread(core.read_namespaced_pod, "bad", namespace)
            return got if got.status.phase == "Failed" else None

        refused = await until(failed, within=30, what="the pod with a bad label Failed")
        assert refused.status.reason == "ProviderInvalidSpec"
        assert mapping.DNS_NAME_LABEL in refused.status.message
        assert "not a DNS name label" in refused.status.message
        assert await asyncio.to_thread(group_of, sim, refused.metadata.uid) is None

        async def warned() -> Any:
            events = await asyncio.to_thread(
                core.list_namespaced_event, namespace, field_selector="involvedObject.name=bad"
            )
            return next(
                (e for e in events.items if e.type == "Warning" and mapping.DNS_NAME_LABEL in (e.message or "")),
                None,
            )

        await until(warned, within=30, what="a Warning event naming the annotation")
