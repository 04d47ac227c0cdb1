"""An instance Updating its volumes keeps a running pod Running (a kubelet's volume refresh never changes the phase)."""

from __future__ import annotations

import datetime

from vnode import models
from vnode.kube import objects
from vnode.node import status

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
RUNNING = models.ContainerStatus("app", models.ContainerState.RUNNING, image="nginx", started_at=NOW, ready=True)


def pod(phase: str) -> objects.Pod:
    return objects.Pod(
        metadata=objects.ObjectMeta(name="p", namespace="n", uid="u"),
        spec=objects.PodSpec(containers=[objects.Container(name="app", image="nginx")]),
        status=objects.PodStatus(phase=phase),
    )


def phase_of(p: objects.Pod) -> str:
    state = models.InstanceState(id="eci-1", status=models.InstanceStatus.UPDATING, containers=(RUNNING,))
    result: str = status.from_instance(p, state, scheme="eci", host_ip="10.0.0.1", now=NOW)["phase"]
    return result


def test_updating_keeps_a_running_pod_running_and_ready() -> None:
    assert phase_of(pod("Running")) == "Running"


def test_updating_before_the_pod_ran_is_pending_as_the_field_maps_it() -> None:
    assert phase_of(pod("Pending")) == "Pending"
