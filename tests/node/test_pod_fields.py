"""Every pod-spec field is mapped, emulated, ignored or refused aloud: against the real control plane.

The catalogue (vnode/node/fields.py) has a row for every field of the control plane's PodSpec and
Container; a pod setting a field its provider does not map fails at once, with a Warning and a
condition naming every such field, and no instance is made for it (the simulator shows none); a pod
with a readiness gate is Ready only once the gate's condition is True.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import eci_daemon, pod_manifest
from tests.waiting import until
from vnode.kube import client
from vnode.node import fields

pytestmark = pytest.mark.cluster


def test_every_field_of_the_control_planes_pod_spec_and_container_has_a_row(kube_api: k8s.ApiClient) -> None:
    request = kube_api.param_serialize("GET", "/openapi/v3/api/v1", auth_settings=["BearerToken"])
    answer = kube_api.call_api(*request)
    answer.read()
    schemas = json.loads(answer.data)["components"]["schemas"]
    properties = {
        "": schemas["io.k8s.api.core.v1.PodSpec"]["properties"],
        "containers.": schemas["io.k8s.api.core.v1.Container"]["properties"],
        "securityContext.": schemas["io.k8s.api.core.v1.PodSecurityContext"]["properties"],
        "dnsConfig.": schemas["io.k8s.api.core.v1.PodDNSConfig"]["properties"],
        "containers.securityContext.": schemas["io.k8s.api.core.v1.SecurityContext"]["properties"],
        "containers.securityContext.capabilities.": schemas["io.k8s.api.core.v1.Capabilities"]["properties"],
    }
    served = {prefix + name: p.get("description", "") for prefix, ps in properties.items() for name, p in ps.items()}
    missing = {path: why[:200] for path, why in served.items() if path not in fields.BY_PATH}
    assert missing == {}, "fields of the control plane without a row in vnode/node/fields.py"
    rows = [f.path for f in fields.POD + fields.POD_SUB + fields.CONTAINER]
    assert sorted(set(rows) - set(served)) == [], "rows of vnode/node/fields.py the control plane does not have"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("pod-fields")), profile="fast") as started:
        yield started


def groups(sim: Sim, uid: str) -> list[dict[str, Any]]:
    params = {"RegionId": sim.region, "Tag.1.Key": "vnode.io/pod-uid", "Tag.1.Value": uid, "Limit": "20"}
    status, body = sim.raw("DescribeContainerGroups", params)
    assert status == 200, body
    return list(body["ContainerGroups"])


@pytest.fixture
async def eci_node(sim: Sim, kube: client.Client, core: k8s.CoreV1Api, node_name: str) -> AsyncIterator[str]:
    """A daemon with the ECI provider for ``node_name``, stopped and its node removed afterwards."""
    async with eci_daemon(sim, kube, core, node_name, "pod-fields"):
        yield node_name


async def test_a_pod_with_refused_fields_fails_aloud_and_makes_no_instance(
    sim: Sim, eci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    body = pod_manifest("refused", eci_node, hostNetwork=True, container={"securityContext": {"privileged": True}})
    await asyncio.to_thread(core.create_namespaced_pod, namespace, body)
    fine = pod_manifest(
        "mapped",
        eci_node,
        hostname="fine",
        container={
            "command": ["sleep", "3600"],
            "env": [{"name": "A", "value": "1"}],
            "ports": [{"containerPort": 80}],
            "livenessProbe": {"tcpSocket": {"port": 80}},
        },
    )
    await asyncio.to_thread(core.create_namespaced_pod, namespace, fine)

    async def phase(name: str, wanted: str) -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
        return pod if pod.status.phase == wanted else None

    pod = await until(lambda: phase("refused", "Failed"), within=30, what="the refused pod Failed")
    assert pod.status.reason == fields.REASON
    (ready,) = [c for c in pod.status.conditions if c.type == "Ready"]
    assert ready.status == "False"
    assert ready.reason == fields.REASON
    assert "spec.hostNetwork: virtual nodes have no host network" in ready.message
    assert "spec.containers[0].securityContext.privileged: virtual nodes run no privileged containers" in ready.message
    assert ready.message.endswith("(provider eci)")

    async def warning() -> Any:
        found = await asyncio.to_thread(
            core.list_namespaced_event, namespace, field_selector="involvedObject.name=refused"
        )
        return [e for e in found.items if e.reason == fields.REASON and e.type == "Warning"]

    (event,) = await until(warning, within=30, what="the UnsupportedField Warning")
    assert "spec.hostNetwork" in event.message
    assert "privileged" in event.message
    await until(lambda: phase("mapped", "Running"), within=30, what="the pod of mapped fields Running")
    assert groups(sim, pod.metadata.uid) == []


async def test_a_readiness_gate_holds_ready_until_its_condition_is_true(
    eci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    gate = "example.com/load-balancer"
    body = pod_manifest("gated", eci_node, readinessGates=[{"conditionType": gate}])
    await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

    shown: list[Any] = []

    async def ready(status: str, reason: str | None) -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "gated", namespace)
        conditions = {c.type: c for c in pod.status.conditions or []}
        c = conditions.get("Ready")
        shown[:] = [pod.status.phase, *((x.type, x.status, x.reason) for x in conditions.values())]
        running = pod.status.phase == "Running" and conditions.get("ContainersReady")
        return pod if running and c and (c.status, c.reason) == (status, reason) else None

    pod = await until(lambda: ready("False", "ReadinessGatesNotReady"), within=30, what="Running, not Ready")
    (c,) = [c for c in pod.status.conditions if c.type == "Ready"]
    assert gate in c.message
    patch = {"status": {"conditions": [{"type": gate, "status": "True"}]}}
    await asyncio.to_thread(core.patch_namespaced_pod_status, "gated", namespace, patch)
    pod = await until(lambda: ready("True", None), within=30, what=lambda: f"Ready once the gate is True: {shown}")
