"""A node says Ready only once an authenticated call to its cloud has succeeded (issue #15's
"honest readiness"): a daemon with a wrong key registers its node NotReady, with the cloud's
refusal as the reason, and never Ready, and a pod bound to it is told why it waits; one whose
cloud does not answer yet is NotReady (ProviderNotReached) until it does. Real control plane;
the ECI simulator, then the fake cloud."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import Harness, Running, pod_manifest
from tests.waiting import until
from vnode import daemon, settings
from vnode.kube import client
from vnode.node import registration
from vnode.provider import registry

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("readiness")), profile="fast") as started:
        yield started


async def _ready(core: k8s.CoreV1Api, name: str) -> Any:
    try:
        node = await asyncio.to_thread(core.read_node, name)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return next((c for c in node.status.conditions or [] if c.type == "Ready"), None)


async def test_a_wrong_cloud_key_registers_a_node_that_is_never_ready_and_says_why(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, node_name: str, namespace: str
) -> None:
    env = {**sim.eci_env(), "ECI_SECRET_KEY": "not-the-secret"}
    flags = {"node_name": node_name, "provider": "eci", "http_port": 0, "http_address": "127.0.0.1"}
    config = settings.load(env, {**flags, "status_interval": 0.3, "cluster_id": "readiness"})
    cloud = registry.load("eci")(config)
    d = daemon.Daemon(config, kube, cloud, identity=f"{node_name}_pod")
    run = Running(d, asyncio.create_task(d.run()))
    seen: list[str] = []
    try:

        async def refused() -> Any:
            condition = await _ready(core, node_name)
            if condition is not None:
                seen.append(f"{condition.status}:{condition.reason}")
            return condition if condition is not None and condition.reason == "ProviderUnreachable" else None

        condition = await until(
            refused, within=30, what=lambda: f"the node NotReady with the cloud's refusal; saw {seen}"
        )
        assert condition.status == "False"
        assert "Signature" in condition.message, condition.message  # ECI's SignatureDoesNotMatch, named
        assert not [s for s in seen if s.startswith("True")], "the node was never Ready"
        assert not d.ready.is_set()

        # A pod bound to the node anyway (nodeName set: no scheduler) is told why it waits.
        bound = pod_manifest("waits", node_name, nodeName=node_name)
        await asyncio.to_thread(core.create_namespaced_pod, namespace, bound)

        async def warned() -> Any:
            listed = await asyncio.to_thread(
                core.list_namespaced_event, namespace, field_selector="involvedObject.name=waits"
            )
            return next((e for e in listed.items if e.reason == "ProviderUnreachable"), None)

        event = await until(warned, within=30, what="a Warning on the waiting pod")
        assert event.type == "Warning"
        assert "cannot start pods" in event.message
        assert "SignatureDoesNotMatch" in event.message
    finally:
        await run.stop()
        await cloud.close()
        with contextlib.suppress(k8s.ApiException):
            await asyncio.to_thread(core.delete_node, node_name)
        with contextlib.suppress(k8s.ApiException):
            await asyncio.to_thread(
                k8s.CoordinationV1Api(core.api_client).delete_namespaced_lease, node_name, "kube-node-lease"
            )


async def test_until_the_cloud_answers_once_the_node_is_not_ready(harness: Harness, core: k8s.CoreV1Api) -> None:
    harness.cloud.behaviour.unreachable = True
    run = await harness.start(wait=False)
    seen: list[tuple[str, str]] = []

    async def registered_not_reached() -> Any:
        condition = await _ready(core, harness.node_name)
        if condition is not None:
            seen.append((condition.status, condition.reason))
        return condition if condition is not None and condition.reason == registration.NOT_REACHED else None

    condition = await until(
        registered_not_reached, within=20, what=lambda: f"the node NotReady, not reached; saw {seen}"
    )
    assert condition.status == "False"
    harness.cloud.behaviour.unreachable = False
    await until(run.daemon.ready.wait, within=20, what="the daemon ready once the cloud answers")
    after = await _ready(core, harness.node_name)
    assert (after.status, after.reason) == ("True", "KubeletReady"), "Ready is written before the daemon is ready"
    assert ("True", "KubeletReady") not in seen[: seen.index(("False", registration.NOT_REACHED)) + 1]
