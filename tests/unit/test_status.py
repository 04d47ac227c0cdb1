"""Instance state → pod status, as a table: each cloud status, containers, failures, and change detection."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest

from vnode import models
from vnode.kube import objects
from vnode.node import status

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
T0 = datetime.datetime(2026, 1, 2, 3, 0, 0, tzinfo=datetime.UTC)
S, C = models.InstanceStatus, models.ContainerState


def pod(**status_fields: Any) -> objects.Pod:
    return objects.Pod(
        metadata=objects.ObjectMeta(name="p", namespace="n", uid="u"),
        spec=objects.PodSpec(containers=[objects.Container(name="app", image="nginx")]),
        status=msgspec.convert(status_fields, objects.PodStatus),
    )


def state(st: models.InstanceStatus, *containers: models.ContainerStatus, **kw: Any) -> models.InstanceState:
    return models.InstanceState(id="eci-1", status=st, containers=containers, ip="10.0.0.7", created_at=T0, **kw)


RUNNING = models.ContainerStatus("app", C.RUNNING, image="nginx", started_at=T0, ready=True)
WAITING = models.ContainerStatus("app", C.WAITING, reason="ContainerCreating")
DONE = models.ContainerStatus("app", C.TERMINATED, exit_code=0, started_at=T0, finished_at=NOW)
OOM = models.ContainerStatus("app", C.TERMINATED, exit_code=137, reason="OOMKilled", started_at=T0, finished_at=NOW)

# (instance status, container, phase, Ready, container state key, reason)
TABLE = [
    (S.SCHEDULING, WAITING, "Pending", "False", "waiting", None),
    (S.PENDING, WAITING, "Pending", "False", "waiting", None),
    (S.RESTARTING, WAITING, "Pending", "False", "waiting", None),
    (S.UPDATING, RUNNING, "Pending", "True", "running", None),
    (S.RUNNING, RUNNING, "Running", "True", "running", None),
    (S.TERMINATING, RUNNING, "Running", "True", "running", None),
    (S.SUCCEEDED, DONE, "Succeeded", "False", "terminated", None),
    (S.FAILED, OOM, "Failed", "False", "terminated", "ProviderFailed"),
    (S.EXPIRED, OOM, "Failed", "False", "terminated", "Expired"),
    (S.SCHEDULE_FAILED, WAITING, "Failed", "False", "waiting", "ScheduleFailed"),
]


@pytest.mark.parametrize(("cloud", "container", "phase", "ready", "key", "reason"), TABLE)
def test_instance_status_maps_to_phase_conditions_and_container_state(
    cloud: models.InstanceStatus,
    container: models.ContainerStatus,
    phase: str,
    ready: str,
    key: str,
    reason: str | None,
) -> None:
    got = status.from_instance(pod(), state(cloud, container), scheme="eci", host_ip="192.168.0.1", now=NOW)
    assert got["phase"] == phase
    assert {c["type"]: c["status"] for c in got["conditions"]}["Ready"] == ready
    [cs] = got["containerStatuses"]
    assert list(cs["state"]) == [key]
    assert got.get("reason") == reason
    assert got["podIP"] == "10.0.0.7"
    assert got["podIPs"] == [{"ip": "10.0.0.7"}]
    assert got["hostIP"] == "192.168.0.1"
    assert got["startTime"] == "2026-01-02T03:00:00Z"
    if key != "waiting":
        assert cs["containerID"] == "eci://eci-1"


def test_terminated_container_carries_exit_code_and_reason() -> None:
    got = status.from_instance(pod(), state(S.FAILED, OOM), scheme="aci", host_ip="", now=NOW)
    terminated = got["containerStatuses"][0]["state"]["terminated"]
    assert terminated == {
        "exitCode": 137,
        "reason": "OOMKilled",
        "startedAt": "2026-01-02T03:00:00Z",
        "finishedAt": "2026-01-02T03:04:05Z",
        "containerID": "aci://eci-1",
    }


def test_restarts_show_the_last_state() -> None:
    restarted = models.ContainerStatus(
        "app",
        C.RUNNING,
        started_at=NOW,
        ready=True,
        restart_count=2,
        last_exit_code=1,
        last_reason="Error",
        last_started_at=T0,
        last_finished_at=T0,
    )
    cs = status.from_instance(pod(), state(S.RUNNING, restarted), scheme="eci", host_ip="", now=NOW)[
        "containerStatuses"
    ][0]
    assert cs["restartCount"] == 2
    assert cs["lastState"]["terminated"]["exitCode"] == 1


def test_unchanged_conditions_keep_their_transition_time() -> None:
    first = status.from_instance(pod(), state(S.RUNNING, RUNNING), scheme="eci", host_ip="", now=T0)
    later = status.from_instance(pod(**first), state(S.RUNNING, RUNNING), scheme="eci", host_ip="", now=NOW)
    assert [c["lastTransitionTime"] for c in later["conditions"]] == ["2026-01-02T03:00:00Z"] * 4


def test_same_ignores_condition_times_but_not_states() -> None:
    running = status.from_instance(pod(), state(S.RUNNING, RUNNING), scheme="eci", host_ip="", now=T0)
    again = status.from_instance(pod(), state(S.RUNNING, RUNNING), scheme="eci", host_ip="", now=NOW)
    assert status.same(running, again)
    done = status.from_instance(pod(), state(S.SUCCEEDED, DONE), scheme="eci", host_ip="", now=NOW)
    assert not status.same(running, done)
    assert not status.same({}, running)


def test_waiting_and_failed_statuses_name_the_cause() -> None:
    waiting = status.waiting(
        pod(), reason="CreateContainerConfigError", message='secret "s" not found', host_ip="", now=NOW
    )
    assert waiting["phase"] == "Pending"
    assert waiting["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    ready = next(c for c in waiting["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "CreateContainerConfigError"
    failed = status.failed(pod(), reason="ProviderInvalidSpec", message="too big", host_ip="", now=NOW)
    assert (failed["phase"], failed["reason"], failed["message"]) == ("Failed", "ProviderInvalidSpec", "too big")
