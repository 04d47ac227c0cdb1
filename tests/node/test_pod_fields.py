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
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import eci_daemon, pod_manifest
from tests.waiting import until
from vnode.kube import client
from vnode.node import deadline, fields

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


async def phase_of(core: k8s.CoreV1Api, namespace: str, name: str, wanted: str) -> Any:
    pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
    return pod if pod.status.phase == wanted else None


async def pod_events(core: k8s.CoreV1Api, namespace: str, name: str, reason: str) -> list[Any]:
    found = await asyncio.to_thread(core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={name}")
    return [e for e in found.items if e.reason == reason]


HOOKS = {
    "postStart": {"exec": {"command": ["sh", "-c", "echo up"]}},
    "preStop": {"exec": {"command": ["sh", "-c", "sleep 2"]}},
}


async def test_lifecycle_hooks_reach_the_instance_and_pre_stop_runs_before_it_goes(
    sim: Sim, eci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    body = pod_manifest("hooked", eci_node, container={"lifecycle": HOOKS})
    await asyncio.to_thread(core.create_namespaced_pod, namespace, body)
    pod = await until(lambda: phase_of(core, namespace, "hooked", "Running"), within=30, what="the hooked pod Running")
    (group,) = groups(sim, pod.metadata.uid)
    container = group["Containers"][0]
    assert container["LifecyclePostStartHandlerExecs"] == ["sh", "-c", "echo up"]
    assert container["LifecyclePreStopHandlerExecs"] == ["sh", "-c", "sleep 2"]
    await until(lambda: pod_events(core, namespace, "hooked", "PostStartHook"), within=30, what="PostStartHook")
    await asyncio.to_thread(core.delete_namespaced_pod, "hooked", namespace)

    async def pre_stop_ran() -> Any:
        shown = groups(sim, pod.metadata.uid)
        ran = shown and any(e["Reason"] == "PreStopHook" for e in shown[0]["Events"])
        return shown[0] if ran else None

    terminating = await until(pre_stop_ran, within=30, what="the preStop hook run on the instance")
    assert terminating["Status"] == "Terminating"
    sim.advance(1)  # the simulated clock is paused: the 2 s hook still holds the instance
    assert groups(sim, pod.metadata.uid)[0]["Status"] == "Terminating"
    sim.advance(2)

    async def gone() -> bool:
        try:
            await asyncio.to_thread(core.read_namespaced_pod, "hooked", namespace)
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    await until(gone, within=30, what="the pod released once its instance is gone")


async def test_a_failed_containers_log_tail_is_its_termination_message(
    eci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    container = {
        "command": ["sh", "-c", "echo starting; echo boom; exit 3"],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    body = pod_manifest("says-why", eci_node, image="busybox", restartPolicy="Never", container=container)
    await asyncio.to_thread(core.create_namespaced_pod, namespace, body)
    pod = await until(lambda: phase_of(core, namespace, "says-why", "Failed"), within=30, what="the pod Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.message) == (3, "starting\nboom")


async def test_a_pod_active_past_its_deadline_fails_and_its_instance_is_deleted(
    sim: Sim, eci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    # The deadline runs on the node's wall clock from the instance's start: the simulated clock
    # (paused for the other tests) is set to the wall clock and runs with it for this one.
    status, clock = sim.admin("GET", "clock")
    assert status == 200, clock
    sim.admin("POST", "clock", {"advance": max(0.0, time.time() - clock["now"]), "scale": 1.0})
    try:
        await deadline_exceeded(sim, eci_node, core, namespace)
    finally:
        sim.admin("POST", "clock", {"scale": 0.0})


async def deadline_exceeded(sim: Sim, eci_node: str, core: k8s.CoreV1Api, namespace: str) -> None:
    body = pod_manifest("deadline", eci_node, activeDeadlineSeconds=4)
    await asyncio.to_thread(core.create_namespaced_pod, namespace, body)
    pod = await until(lambda: phase_of(core, namespace, "deadline", "Running"), within=30, what="the pod Running")
    assert groups(sim, pod.metadata.uid) != []
    pod = await until(lambda: phase_of(core, namespace, "deadline", "Failed"), within=30, what="Failed by its deadline")
    assert (pod.status.reason, pod.status.message) == (deadline.REASON, deadline.MESSAGE)
    (warning,) = await until(
        lambda: pod_events(core, namespace, "deadline", deadline.REASON), within=30, what="the DeadlineExceeded event"
    )
    assert (warning.type, warning.message) == ("Warning", deadline.MESSAGE)

    async def deleted() -> bool:
        return groups(sim, pod.metadata.uid) == []

    await until(deleted, within=30, what="the pod's instance deleted")
    shown = await asyncio.to_thread(core.read_namespaced_pod, "deadline", namespace)
    assert (shown.status.phase, shown.status.reason) == ("Failed", deadline.REASON)


async def test_kubectl_debug_ends_at_once_saying_why_instead_of_waiting(
    eci_node: str, core: k8s.CoreV1Api, namespace: str
) -> None:
    """``kubectl debug`` adds an ephemeral container to a running pod (the ephemeralcontainers
    subresource), which no cloud can add to a running instance: its status says it ended, why, and a
    Warning says so, so kubectl stops waiting."""
    await asyncio.to_thread(core.create_namespaced_pod, namespace, pod_manifest("web", eci_node))

    async def running() -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "web", namespace)
        return pod if pod.status.phase == "Running" else None

    await until(running, within=60, what="the pod Running")
    debugger = {"name": "debugger-1", "image": "busybox", "stdin": True, "tty": True, "targetContainerName": "main"}
    await asyncio.to_thread(
        core.patch_namespaced_pod_ephemeralcontainers,
        "web",
        namespace,
        {"spec": {"ephemeralContainers": [debugger]}},
    )

    async def ended() -> Any:
        pod = await asyncio.to_thread(core.read_namespaced_pod, "web", namespace)
        statuses = pod.status.ephemeral_container_statuses or []
        return statuses[0] if statuses and statuses[0].state.terminated else None

    status = await until(ended, within=30, what="the ephemeral container's status")
    assert (status.name, status.state.terminated.reason) == ("debugger-1", "Unsupported")
    assert "kubectl debug" in status.state.terminated.message
    found = await asyncio.to_thread(core.list_namespaced_event, namespace, field_selector="involvedObject.name=web")
    assert any(e.type == "Warning" and "kubectl debug" in e.message for e in found.items)
    pod = await asyncio.to_thread(core.read_namespaced_pod, "web", namespace)
    assert pod.status.phase == "Running", "the pod itself runs on"
