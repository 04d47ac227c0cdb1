"""A node says Ready only once an authenticated call to its cloud has succeeded (issue #15's
"honest readiness"): a daemon with a wrong key registers its node NotReady, with the cloud's
refusal as the reason, and never Ready, and a pod bound to it is told why it waits; one whose
cloud does not answer yet is NotReady (ProviderNotReached) until it does. Real control plane;
the ECI simulator, then the fake cloud."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import Harness, cloud_daemon, pod_manifest
from tests.waiting import until
from vnode import errors, settings
from vnode.kube import api, client
from vnode.node import registration
from vnode.provider.fake import provider as fake

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


async def test_a_wrong_cloud_key_ends_the_daemon_after_saying_why_on_the_node_and_the_waiting_pods(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, node_name: str, namespace: str
) -> None:
    """Issue #15's rules: never Ready on a refused key; the Node's NotReady reason and a Warning on each
    pod bound to it say why; then the daemon ends with one error naming the settings (no retry would
    help), and its restarts (a crash loop) never make the node Ready."""
    bound = pod_manifest("waits", node_name, nodeName=node_name)  # bound anyway: nodeName set, no scheduler
    await asyncio.to_thread(core.create_namespaced_pod, namespace, bound)
    seen: list[str] = []

    async def refused() -> Any:
        condition = await _ready(core, node_name)
        if condition is not None:
            seen.append(f"{condition.status}:{condition.reason}")
        return condition if condition is not None and condition.reason == "ProviderUnreachable" else None

    for attempt in range(2):  # the first start, and a restart of the crash loop
        async with cloud_daemon(
            sim, kube, core, node_name, "readiness", wait=False, env={"ECI_SECRET_KEY": "not-the-secret"}
        ) as run:
            with pytest.raises(ExceptionGroup) as ended:
                await asyncio.wait_for(asyncio.shield(run.task), timeout=60)
            run.ended = True
            stopped = ended.value.subgroup(errors.ConfigError)
            assert stopped is not None, ended.value
            message = str(stopped.exceptions[0])
            assert message.startswith("ECI_ACCESS_KEY/ECI_SECRET_KEY: the eci cloud refuses them: "), message
            assert "SignatureDoesNotMatch" in message, message
            condition = await until(refused, within=30, what=lambda: f"the node NotReady with the refusal; saw {seen}")
            assert condition.status == "False"
            assert "Signature" in condition.message, condition.message
            assert not run.daemon.ready.is_set()
        assert not [s for s in seen if s.startswith("True")], f"the node was never Ready (start {attempt + 1})"

    async def warned() -> Any:
        listed = await asyncio.to_thread(
            core.list_namespaced_event, namespace, field_selector="involvedObject.name=waits"
        )
        return next((e for e in listed.items if e.reason == "ProviderUnreachable"), None)

    event = await until(warned, within=30, what="a Warning on the waiting pod")
    assert event.type == "Warning"
    assert "cannot start pods" in event.message
    assert "SignatureDoesNotMatch" in event.message


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


async def test_a_health_change_during_a_status_write_is_written_by_the_next(
    kube: client.Client, core: k8s.CoreV1Api, node_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller remembered the health *after* its patch as written: a change while the patch
    was in flight then passed for written, and the node showed the old reason for a minute (the
    wrong-key test above failed that way in a full run)."""
    health = registration.CloudHealth()
    config = settings.load({}, {"node_name": node_name, "provider": "fake", "cluster_id": "readiness"})
    controller = registration.NodeController(
        kube, fake.FakeProvider(), config, health=health, clock=lambda: datetime.datetime.now(datetime.UTC)
    )
    real = api.patch_node_status

    async def patch_then_change(*args: Any, **kwargs: Any) -> None:
        await real(*args, **kwargs)
        health.set(False, "ProviderUnreachable", "the cloud does not answer: refused")

    try:
        await controller.register()  # writes ProviderNotReached
        monkeypatch.setattr(api, "patch_node_status", patch_then_change)
        await controller.write_status(force=True)  # the health changes while this write is in flight
        monkeypatch.setattr(api, "patch_node_status", real)
        await controller.write_status()
        condition = await _ready(core, node_name)
        assert (condition.status, condition.reason) == ("False", "ProviderUnreachable")
    finally:
        with contextlib.suppress(k8s.ApiException):
            await asyncio.to_thread(core.delete_node, node_name)
