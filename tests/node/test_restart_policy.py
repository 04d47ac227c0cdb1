"""restartPolicy on an ECI virtual node (real control plane, the daemon on the simulator), with the
kubelet's semantics: a failing container of an ``OnFailure`` or ``Always`` pod restarts with a
doubling back-off, the pod Running, the container waiting in CrashLoopBackOff with its last
exit in ``lastState``; an ``OnFailure`` container that exits 0 ends the pod Succeeded."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import eci_daemon, pod_manifest
from tests.waiting import until
from vnode.kube import client

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """The fast profile (back-off 1 s doubling to 10 s) on a clock the test moves."""
    with running(pathlib.Path(tmp_path_factory.mktemp("restart-policy")), profile="fast") as started:
        yield started


def _restarts(sim: Sim, uid: str) -> int:
    request = m.DescribeContainerGroupsRequest(
        region_id=sim.region, tag=[m.DescribeContainerGroupsRequestTag(key="vnode.io/pod-uid", value=uid)]
    )
    (group,) = sim.client().describe_container_groups(request).body.container_groups
    return int(group.containers[0].restart_count)


async def test_on_failure_restarts_a_failing_container_with_a_doubling_back_off_and_succeeds_on_exit_0(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    fails = {"command": ["sh", "-c", "exit 3"]}
    succeeds = {"command": ["sh", "-c", "exit 0"]}
    async with eci_daemon(sim, kube, core, node_name, "restart-policy"):
        for name, container in (("fails", fails), ("done", succeeds)):
            body = pod_manifest(name, node_name, image="busybox", container=container, restartPolicy="OnFailure")
            await asyncio.to_thread(core.create_namespaced_pod, namespace, body)
        seen: dict[str, Any] = {}

        def shown(name: str, check: Any) -> Any:
            async def poll() -> Any:
                pod = seen[name] = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
                return pod if check(pod) else None

            return poll

        def what(name: str, wanted: str) -> Any:
            def said() -> str:
                last = seen.get(name)
                return (
                    f"{name}: {wanted}; last status: {json.dumps(last and last.status.to_dict(), default=str)[:1500]}"
                )

            return said

        def crash_looping(restarts: int) -> Any:
            def check(pod: Any) -> bool:
                (status,) = pod.status.container_statuses or [None]
                return (
                    status is not None
                    and status.restart_count == restarts
                    and status.state.waiting is not None
                    and status.state.waiting.reason == "CrashLoopBackOff"
                )

            return check

        done = await until(
            shown("done", lambda p: p.status.phase == "Succeeded"), within=30, what=what("done", "Succeeded")
        )
        assert done.status.container_statuses[0].restart_count == 0
        assert done.status.container_statuses[0].state.terminated.exit_code == 0

        pod = await until(shown("fails", crash_looping(0)), within=30, what=what("fails", "CrashLoopBackOff"))
        assert pod.status.phase == "Running"
        status = pod.status.container_statuses[0]
        assert status.last_state.terminated.exit_code == 3
        assert "back-off 1s restarting failed container=main" in status.state.waiting.message
        uid = pod.metadata.uid

        # The back-off doubles: restarts 1 s, then 2 s, then 4 s after each failure.
        for advance, restarts in ((1, 1), (1, 1), (1, 2), (3, 2), (1, 3)):
            await asyncio.to_thread(sim.advance, advance)
            assert await asyncio.to_thread(_restarts, sim, uid) == restarts
        pod = await until(shown("fails", crash_looping(3)), within=30, what=what("fails", "3 restarts"))
        assert pod.status.phase == "Running"
        assert "back-off 8s" in pod.status.container_statuses[0].state.waiting.message
