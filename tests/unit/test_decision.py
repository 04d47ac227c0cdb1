"""A pod's lifecycle as a table: facts about one pod in, the decision out (stage, action, status, events...)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from tests.unit.decision_reclaim import RECLAIM_ROWS
from tests.unit.decisions import (
    CAPACITY,
    CONFIG,
    NOW,
    OLD,
    PULLED,
    STARTED,
    STARTING,
    A,
    S,
    asked,
    expect,
    facts,
    pod,
    state,
    summary,
    written,
)
from vnode import models
from vnode.kube import objects
from vnode.node import book, deadline, events, lifecycle, pending, status

SHOWN = status.from_instance(pod(), state(), scheme="eci", host_ip="10.0.0.1", now=NOW)  # as after a restart
KILLING = ["Killing", "Killing"]  # one per container
GONE = lifecycle.LookedUp("eci-1", None)
NOTICE = events.Event("OptionalConfigMapNotFound", 'configmap "c" not found', type="Warning")


def deadlined(p: objects.Pod, seconds: int = 60) -> objects.Pod:
    """``p`` with an activeDeadlineSeconds, started five minutes ago."""
    p.spec.active_deadline_seconds = seconds
    p.status.start_time = status.rfc3339(NOW - datetime.timedelta(minutes=5))
    return p


DEADLINE_MARK = f"{deadline.REASON}:{deadline.MESSAGE}"
DEADLINE_SHOWN = status.failed(pod(), reason=deadline.REASON, message=deadline.MESSAGE, host_ip="10.0.0.1", now=NOW)

MAX_PENDING = "k8s.aliyun.com/eci-max-pending-minute"
HELD = dataclasses.replace(CONFIG, max_pending=pending.Rule(MAX_PENDING))  # ECI's rule


def waiting(minutes: int = 10, restart: str = "Always", shows: Any = None) -> objects.Pod:
    """A pending pod held to ``minutes`` of Pending time."""
    p = pod(shows=shows)
    p.metadata.annotations = {MAX_PENDING: str(minutes)}
    p.spec.restart_policy = restart
    return p


def pulling(minutes_ago: float, *, init_running: bool = False) -> models.InstanceState:
    """An instance Pending since ``minutes_ago`` (its image will not pull)."""
    init = (models.ContainerStatus("init", models.ContainerState.RUNNING, started_at=NOW),) if init_running else ()
    created = NOW - datetime.timedelta(minutes=minutes_ago)
    return models.InstanceState(id="eci-1", status=S.PENDING, created_at=created, init_containers=init)


ON_ECI_1 = book.Memory(instance_id="eci-1")
STOPPED_WHY = pending.message(waiting(), HELD.max_pending)
STOPPED_PENDING = status.waiting(pod(), reason=pending.REASON, message=STOPPED_WHY, host_ip="10.0.0.1", now=NOW)
STOPPED_MARK = f"{pending.REASON}:{STOPPED_WHY}"

TABLE: list[tuple[str, lifecycle.Facts, lifecycle.Config, dict[str, Any]]] = [
    # --- pending: create, or say why not ---
    ("a new pod is created", facts(pod()), CONFIG, expect("create", action=A.CREATE)),
    ("a draining node makes no instance for a pod it will evict", facts(pod(), draining=True), CONFIG, expect("held")),
    (
        "a draining node's running pod still follows its instance",
        facts(pod(), state(S.RUNNING, STARTED), draining=True),
        CONFIG,
        expect("running", events=["Started"], status=("Running", "")),
    ),
    (
        "a missing reference waits, warns and looks again",
        facts(pod(), answer=lifecycle.Missing('secret "s" not found')),
        CONFIG,
        expect(
            "missing-reference",
            events=["Failed"],
            status=("Pending", "CreateContainerConfigError"),
            count="MissingReference",
            requeue=lifecycle.MISSING_RETRY,
        ),
    ),
    (
        "a missing reference is warned about once",
        facts(
            pod(),
            answer=lifecycle.Missing('secret "s" not found'),
            memory=book.Memory(warned='Failed:Error: secret "s" not found'),
        ),
        CONFIG,
        expect(
            "missing-reference",
            status=("Pending", "CreateContainerConfigError"),
            count="MissingReference",
            requeue=lifecycle.MISSING_RETRY,
        ),
    ),
    (
        "a missing reference virtual-kubelet names gets its event too, once",
        facts(pod(), answer=lifecycle.Missing('secret "s" not found', reason="MandatorySecretNotFound")),
        CONFIG,
        expect(
            "missing-reference",
            events=["MandatorySecretNotFound", "Failed"],
            status=("Pending", "CreateContainerConfigError"),
            count="MissingReference",
            requeue=lifecycle.MISSING_RETRY,
        ),
    ),
    (
        "a claim not bound yet waits like the kubelet: ContainerCreating, FailedMount, a look again",
        facts(pod(), answer=lifecycle.Missing('persistentvolumeclaim "data" not bound', mount=True)),
        CONFIG,
        expect(
            "missing-reference",
            events=["FailedMount"],
            status=("Pending", "ContainerCreating"),
            count="UnboundClaim",
            requeue=lifecycle.MISSING_RETRY,
        ),
    ),
    (
        "a claim not bound yet is warned about once",
        facts(
            pod(),
            answer=lifecycle.Missing('persistentvolumeclaim "data" not bound', mount=True),
            memory=book.Memory(
                warned='FailedMount:Unable to attach or mount volumes: persistentvolumeclaim "data" not bound'
            ),
        ),
        CONFIG,
        expect(
            "missing-reference",
            status=("Pending", "ContainerCreating"),
            count="UnboundClaim",
            requeue=lifecycle.MISSING_RETRY,
        ),
    ),
    (
        "a create that skipped an optional reference says so",
        facts(pod(), answer=lifecycle.Created(state(), 99.0, (NOTICE,))),
        CONFIG,
        expect("running", events=["OptionalConfigMapNotFound"], status=("Running", ""), record="eci-1"),
    ),
    (
        "a create still starting says so too",
        facts(pod(), answer=lifecycle.Created(state(S.PENDING), 99.0, (NOTICE,))),
        STARTING,
        expect("created", events=["OptionalConfigMapNotFound"], record="eci-1", requeue=2.0),
    ),
    (
        "an invalid spec fails the pod",
        facts(pod(), answer=lifecycle.Invalid("65 vCPU is more than any instance")),
        CONFIG,
        expect("invalid", events=["Failed"], status=("Failed", "ProviderInvalidSpec")),
    ),
    (
        "a refused field fails the pod with its own reason",
        facts(pod(), answer=lifecycle.Invalid("spec.hostNetwork: no host network", reason="UnsupportedField")),
        CONFIG,
        expect("invalid", events=["UnsupportedField"], status=("Failed", "UnsupportedField")),
    ),
    (
        "no capacity anywhere: pending, warned, retried with backoff",
        facts(pod(), answer=lifecycle.NoCapacity(CAPACITY)),
        CONFIG,
        expect("no-capacity", events=["ProviderCapacity"], status=("Pending", "ProviderCapacity"), error=CAPACITY),
    ),
    (
        "a DaemonSet pod is refused",
        facts(pod(daemonset=True)),
        CONFIG,
        expect("refused", events=["DaemonSetPodsNotSupported"], status=("Pending", "DaemonSetPodsNotSupported")),
    ),
    (
        "a DaemonSet pod already refused is left alone",
        facts(
            pod(daemonset=True),
            memory=book.Memory(
                warned=f"DaemonSetPodsNotSupported:{lifecycle.DAEMONSET_MESSAGE}",
                written=status.waiting(
                    pod(),
                    reason="DaemonSetPodsNotSupported",
                    message=lifecycle.DAEMONSET_MESSAGE,
                    host_ip="10.0.0.1",
                    now=NOW,
                ),
            ),
        ),
        CONFIG,
        expect("refused"),
    ),
    # --- creating: a just-made instance ---
    (
        "a just-made starting instance waits for the next listing before its first status",
        facts(pod(), answer=lifecycle.Created(state(S.PENDING), 99.0)),
        STARTING,
        expect("created", record="eci-1", requeue=2.0),
    ),
    (
        "a just-made instance already running gets its status at once",
        facts(pod(), answer=lifecycle.Created(state(S.RUNNING, STARTED), 99.0)),
        STARTING,
        expect("running", record="eci-1", events=["Started"], status=("Running", "")),
    ),
    (
        "without a first-status wait, a starting instance's status is written at once",
        facts(pod(), answer=lifecycle.Created(state(S.PENDING), 99.0)),
        CONFIG,
        expect("running", record="eci-1", status=("Pending", "")),
    ),
    (
        "an instance made after the last listing began: wait for the next one",
        facts(pod(), memory=book.Memory(instance_id="eci-1", created_at=60.0), listed_at=50.0),
        CONFIG,
        expect("unlisted", requeue=1.0),
    ),
    # --- running: the status follows the instance ---
    (
        "a running instance: status and its events",
        facts(pod(), state(S.RUNNING, PULLED, STARTED)),
        CONFIG,
        expect("running", events=["Pulled", "Started"], status=("Running", "")),
    ),
    (
        "nothing new: no write, no event",
        facts(pod(), state(S.RUNNING), memory=written(pod(), state(S.RUNNING))),
        CONFIG,
        expect("running"),
    ),
    (
        "adopted after a restart: the pod shows the status already, older events were recorded",
        facts(pod(shows=SHOWN), state(S.RUNNING, OLD, STARTED)),
        CONFIG,
        expect("running", events=["Started"]),
    ),
    (
        "a finished instance: the pod succeeds",
        facts(pod(phase="Running"), state(S.SUCCEEDED)),
        CONFIG,
        expect("running", status=("Succeeded", "PodCompleted")),
    ),
    ("a finished pod without instance is left alone", facts(pod(phase="Succeeded")), CONFIG, expect("finished")),
    (
        "an instance the listing lacks is looked up",
        facts(pod(), memory=book.Memory(instance_id="eci-1", created_at=10.0)),
        CONFIG,
        expect("look-up", action=A.LOOK_UP, instances=("eci-1",)),
    ),
    (
        "after a restart, the instance is known from the pod's container IDs",
        facts(pod(phase="Running", instance="eci-7")),
        CONFIG,
        expect("look-up", action=A.LOOK_UP, instances=("eci-7",)),
    ),
    (
        "a looked-up instance is recorded and followed",
        facts(pod(), memory=book.Memory(instance_id="eci-1"), answer=lifecycle.LookedUp("eci-1", state())),
        CONFIG,
        expect("running", record="eci-1", status=("Running", "")),
    ),
    (
        "a vanished instance fails the pod",
        facts(pod(phase="Running"), memory=book.Memory(instance_id="eci-1"), answer=GONE),
        CONFIG,
        expect("instance-gone", events=["ProviderInstanceGone"], status=("Failed", "ProviderInstanceGone")),
    ),
    # --- terminating: delete the instance, release the pod once a listing lacks it ---
    (
        "a deleted pod's listed instance is deleted with the pod's grace",
        facts(pod(deleting=True, phase="Running"), state()),
        CONFIG,
        expect("stop", action=A.DELETE, instances=("eci-1",), grace=30.0, events=KILLING),
    ),
    (
        "a finished pod's instance is deleted without Killing events",
        facts(pod(deleting=True, phase="Succeeded"), state(S.SUCCEEDED)),
        CONFIG,
        expect("stop", action=A.DELETE, instances=("eci-1",), grace=30.0),
    ),
    (
        "a deleted pod whose instance ended: its end is written before the instance is deleted",
        facts(pod(deleting=True, phase="Running"), state(S.SUCCEEDED)),
        CONFIG,
        expect("ended", status=("Succeeded", "PodCompleted"), requeue=0.0),
    ),
    (
        "its end written: then the instance is deleted, without Killing events",
        facts(
            pod(deleting=True, phase="Running"),
            state(S.SUCCEEDED),
            memory=book.Memory(instance_id="eci-1", written={"phase": "Succeeded"}),
        ),
        CONFIG,
        expect("stop", action=A.DELETE, instances=("eci-1",), grace=30.0),
    ),
    (
        "an instance that fails while its delete is under way: the pod shows it",
        facts(pod(deleting=True, phase="Running"), state(S.FAILED), memory=asked(60.0), listed_at=70.0),
        CONFIG,
        expect("ended", status=("Failed", "ProviderFailed"), requeue=0.0),
    ),
    (
        "an unlisted instance is looked for by tag",
        facts(pod(deleting=True)),
        CONFIG,
        expect("find", action=A.FIND),
    ),
    (
        "found by tag: deleted",
        facts(pod(deleting=True), answer=lifecycle.Found(("eci-2",))),
        CONFIG,
        expect("stop", action=A.DELETE, instances=("eci-2",), grace=30.0, events=KILLING),
    ),
    (
        "no instance anywhere: the pod is released at once",
        facts(pod(deleting=True), answer=lifecycle.Found(())),
        CONFIG,
        expect("nothing-to-stop", action=A.RELEASE, forget=True),
    ),
    (
        "delete sent: look again soon",
        facts(pod(deleting=True), state(), answer=lifecycle.Deleted(("eci-1",), 100.5)),
        CONFIG,
        expect("stop-sent", requeue=lifecycle.DELETE_RELOOK),
    ),
    (
        "no listing since the delete: still stopping",
        facts(pod(deleting=True), None, memory=asked(60.0), listed_at=50.0),
        CONFIG,
        expect("stopping", requeue=lifecycle.DELETE_RELOOK),
    ),
    (
        "a listing since the delete still shows the instance: still stopping",
        facts(pod(deleting=True), state(S.TERMINATING), memory=asked(60.0), listed_at=70.0),
        CONFIG,
        expect("stopping", requeue=lifecycle.DELETE_RELOOK),
    ),
    (
        "a listing since the delete lacks the instance: the pod is released",
        facts(pod(deleting=True), None, memory=asked(60.0), listed_at=70.0),
        CONFIG,
        expect("released", action=A.RELEASE, forget=True),
    ),
    (
        "still listed long past the grace period: released anyway, with a warning",
        facts(pod(deleting=True), state(S.TERMINATING), memory=asked(10.0), listed_at=95.0, moment=100.0),
        CONFIG,
        expect("overdue", action=A.RELEASE, forget=True, note=True),
    ),
    # --- gone: the pod left the API ---
    (
        "a gone pod's instance is deleted at once",
        facts(None, state()),
        CONFIG,
        expect("orphaned", action=A.DELETE, instances=("eci-1",)),
    ),
    (
        "a gone pod's instance deleted: forget the pod",
        facts(None, state(), answer=lifecycle.Deleted(("eci-1",), 100.2)),
        CONFIG,
        expect("gone", forget=True),
    ),
    ("a gone pod without instance is forgotten", facts(None), CONFIG, expect("gone", forget=True)),
    ("a pod gone before vnode knew it", facts(None, uid=""), CONFIG, expect("unknown")),
    # --- activeDeadlineSeconds: Failed, warned, then the instance deleted; a due-time before ---
    (
        "a pod active past its deadline fails with a warning and is looked at again at once",
        facts(deadlined(pod(phase="Running")), state()),
        CONFIG,
        expect("deadline-exceeded", events=["DeadlineExceeded"], status=("Failed", "DeadlineExceeded"), requeue=0.0),
    ),
    (
        "a pod failed by its deadline has its instance deleted",
        facts(deadlined(pod(phase="Running")), state(), memory=book.Memory(warned=DEADLINE_MARK)),
        CONFIG,
        expect("deadline-exceeded", action=A.DELETE, instances=("eci-1",), grace=30.0),
    ),
    (
        "a pod failed by its deadline whose instance is being deleted is left alone",
        facts(deadlined(pod(shows=DEADLINE_SHOWN)), state(), memory=book.Memory(warned=DEADLINE_MARK, deleting=True)),
        CONFIG,
        expect("deadline-exceeded"),
    ),
    (
        "a running pod is looked at again when its deadline falls",
        facts(deadlined(pod(phase="Running"), seconds=600), state()),
        CONFIG,
        expect("running", status=("Running", ""), requeue=300.0),
    ),
    (
        "a pod that succeeded before its deadline is left alone",
        facts(deadlined(pod(phase="Succeeded"))),
        CONFIG,
        expect("finished"),
    ),
]


def debugged() -> objects.Pod:
    """A running pod to which ``kubectl debug`` added an ephemeral container."""
    p = pod(phase="Running", instance="eci-1")
    p.spec.ephemeral_containers = [{"name": "debugger", "image": "busybox"}]
    return p


TABLE += [
    (
        "an ephemeral container (kubectl debug) is said to end at once, with a warning",
        facts(debugged(), state(), memory=book.Memory(instance_id="eci-1")),
        CONFIG,
        expect("running", events=["Failed"], status=("Running", "")),
    ),
]

# --- the provider's maximum Pending time (ECI's eci-max-pending-minute): see vnode/node/pending.py ---
TABLE += [
    (
        "an instance Pending past the pod's limit: the pod (restartPolicy Never) fails with a warning",
        facts(waiting(10, "Never"), pulling(11), memory=ON_ECI_1),
        HELD,
        expect("pending-too-long", events=["PendingTimeout"], status=("Failed", "PendingTimeout"), requeue=0.0),
    ),
    (
        "... a pod that restarts stays Pending, as ECI's does, with the reason",
        facts(waiting(10, "Always"), pulling(11), memory=ON_ECI_1),
        HELD,
        expect("pending-too-long", events=["PendingTimeout"], status=("Pending", "PendingTimeout"), requeue=0.0),
    ),
    (
        "... then its instance is deleted: it costs nothing more",
        facts(waiting(10), pulling(11), memory=dataclasses.replace(ON_ECI_1, warned=STOPPED_MARK)),
        HELD,
        expect("pending-too-long", action=A.DELETE, instances=("eci-1",), grace=30.0),
    ),
    (
        "... and with its instance gone, no new one is made and nothing is written",
        facts(waiting(10, shows=STOPPED_PENDING), None, memory=dataclasses.replace(ON_ECI_1, warned=STOPPED_MARK)),
        HELD,
        expect("pending-too-long"),
    ),
    (
        "an instance Pending within the limit is looked at again when the limit falls",
        facts(waiting(10), pulling(4), memory=ON_ECI_1),
        HELD,
        expect("running", status=("Pending", "ContainersNotReady"), requeue=pytest.approx(360.0)),
    ),
    (
        "an instance whose init container runs is not held to it",
        facts(waiting(10), pulling(30, init_running=True), memory=ON_ECI_1),
        HELD,
        expect("running", status=("Pending", "ContainersNotReady")),
    ),
    (
        "a provider without the rule ignores the annotation",
        facts(waiting(10), pulling(30), memory=ON_ECI_1),
        CONFIG,
        expect("running", status=("Pending", "ContainersNotReady")),
    ),
]

# --- the cloud takes the instance back (spot): tests/unit/decision_reclaim.py ---
TABLE += RECLAIM_ROWS


@pytest.mark.parametrize(("facts", "config", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_decision(facts: lifecycle.Facts, config: lifecycle.Config, expected: dict[str, Any]) -> None:
    assert summary(lifecycle.decide(facts, config)) == expected


def test_every_stage_is_reached_by_the_table() -> None:
    reached = {lifecycle.decide(f, c).stage for _, f, c, _ in TABLE}
    assert reached == {stage.name for stage in lifecycle.STAGES}
    assert {stage.lifecycle for stage in lifecycle.STAGES} == set(lifecycle.Lifecycle)
