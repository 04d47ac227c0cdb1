"""A pod's maximum Pending time (ECI's ``k8s.aliyun.com/eci-max-pending-minute``), on a real control plane.

The fake cloud borrows ECI's rules and keeps instances Pending (``start_after``); its clock runs
eleven minutes behind the daemon's, so an instance looks created eleven minutes ago as soon as it
is made, and a 10-minute limit is over at once. As ECI documents: the pod with ``restartPolicy:
Never`` ends Failed, the one with ``Always`` stays Pending with the reason, both get a Warning,
their instances are deleted (they cost nothing more) and no new one is made; a pod without the
annotation waits on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.node.conftest import Harness, pod_manifest
from tests.waiting import until
from vnode import models
from vnode.provider.fake import provider as fake

pytestmark = pytest.mark.cluster

MAX_PENDING = "k8s.aliyun.com/eci-max-pending-minute"


async def _pod(core: k8s.CoreV1Api, namespace: str, name: str) -> Any:
    return await asyncio.to_thread(core.read_namespaced_pod, name, namespace)


def _ready_reason(pod: Any) -> str:
    return next((c.reason or "" for c in pod.status.conditions or () if c.type == "Ready"), "")


async def test_an_instance_pending_past_its_limit_is_stopped_and_its_pod_says_why(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    harness.cloud = fake.FakeProvider(container_id_scheme="eci", clock=lambda: time.time() - 660)
    harness.cloud.behaviour.start_after = 3600.0  # its image never pulls
    await harness.start()
    held = {"metadata": {"annotations": {MAX_PENDING: "10"}}}
    for name, restart, extra in (("never", "Never", held), ("always", "Always", held), ("free", "Never", {})):
        body = pod_manifest(name, harness.node_name, restartPolicy=restart, **extra)
        await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

    async def failed() -> Any:
        pod = await _pod(core, namespace, "never")
        return pod if pod.status.phase == "Failed" else None

    never = await until(failed, within=30, what="the Never pod Failed")
    assert never.status.reason == "PendingTimeout"
    assert MAX_PENDING in never.status.message

    async def stopped() -> Any:
        pod = await _pod(core, namespace, "always")
        return pod if _ready_reason(pod) == "PendingTimeout" else None

    always = await until(stopped, within=30, what="the Always pod stopped for its Pending time")
    assert always.status.phase == "Pending", "as ECI's: a pod that restarts stays Pending"

    def live() -> set[str]:
        return {s.tags.get(models.TAG_NAME, "") for s in harness.cloud.instances()}

    await until(lambda: "never" not in live() and "always" not in live(), within=30, what="both instances deleted")
    for name in ("never", "always"):
        found = await asyncio.to_thread(
            core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={name}"
        )
        assert "PendingTimeout" in {(e.reason) for e in found.items if e.type == "Warning"}, name
    free = await _pod(core, namespace, "free")
    assert free.status.phase == "Pending"
    assert _ready_reason(free) != "PendingTimeout"
    assert "free" in live()
    assert len(harness.cloud.created) == 3, "no new instance for the stopped pods"
