"""A pod's lifecycle as a table: facts about one pod in, the decision out (stage, action, status, events...)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import msgspec
import pytest

from vnode import errors, models
from vnode.kube import objects
from vnode.node import book, deadline, events, lifecycle, status

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
BEFORE = NOW - datetime.timedelta(minutes=5)  # earlier than this daemon's start
CONFIG = lifecycle.Config(node_ip="10.0.0.1", scheme="eci", started_at=NOW - datetime.timedelta(minutes=1))
STARTING = dataclasses.replace(CONFIG, first_status_after=2.0)
A, S, C = lifecycle.Action, models.InstanceStatus, models.ContainerState
UID = "uid-1"
CAPACITY = errors.CapacityError("no stock of ecs.c6 in any zone", code="NoStock")
PULLED = models.InstanceEvent("Pulled", "pulled nginx", timestamp=NOW, container="app")
STARTED = models.InstanceEvent("Started", "started app", timestamp=NOW, container="app")
OLD = models.InstanceEvent("Pulling", "pulling nginx", timestamp=BEFORE, container="app")


def pod(
    *, deleting: bool = False, phase: str = "Pending", daemonset: bool = False, instance: str = "", shows: Any = None
) -> objects.Pod:
    """A pod of two containers; ``shows``: the status it shows (else just ``phase``, and ``instance``'s ID)."""
    meta = objects.ObjectMeta(name="web", namespace="ns", uid=UID)
    if deleting:
        meta.deletion_timestamp, meta.deletion_grace_period_seconds = "2026-01-02T03:04:00Z", 30
    if daemonset:
        meta.owner_references = [objects.OwnerReference(kind="DaemonSet", name="agent")]
    st: dict[str, Any] = shows or {"phase": phase}
    if instance:
        st["containerStatuses"] = [{"name": "app", "containerID": f"eci://{instance}"}]
    containers = [objects.Container(name="app", image="nginx"), objects.Container(name="side", image="envoy")]
    return objects.Pod(
        metadata=meta, spec=objects.PodSpec(containers=containers), status=msgspec.convert(st, objects.PodStatus)
    )


def state(st: models.InstanceStatus = S.RUNNING, *evs: models.InstanceEvent) -> models.InstanceState:
    running = tuple(models.ContainerStatus(name, C.RUNNING, started_at=NOW, ready=True) for name in ("app", "side"))
    return models.InstanceState(id="eci-1", status=st, containers=running, ip="192.168.0.9", events=evs)


def facts(p: objects.Pod | None = None, s: models.InstanceState | None = None, **kw: Any) -> lifecycle.Facts:
    fields: dict[str, Any] = {"uid": UID, "memory": book.Memory(), "now": NOW, "moment": 100.0, "listed_at": 50.0}
    return lifecycle.Facts(pod=p, state=s, **{**fields, **kw})


def asked(at: float, *, deleting: bool = True) -> book.Memory:
    return book.Memory(instance_id="eci-1", delete_requested_at=at, deleting=deleting)


def written(p: objects.Pod, s: models.InstanceState) -> book.Memory:
    return book.Memory(instance_id=s.id, written=status.from_instance(p, s, scheme="eci", host_ip="10.0.0.1", now=NOW))


def _why(st: Any) -> str:
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    return str(st.get("reason") or ready.get("reason") or "")


def summary(d: lifecycle.Decision) -> dict[str, Any]:
    return {
        "stage": d.stage,
        "action": d.action,
        "instances": d.instances,
        "grace": d.grace,
        "events": [e.reason for e in d.events],
        "status": None if d.status is None else (d.status["phase"], _why(d.status)),
        "record": d.record.id if d.record else None,
        "forget": d.forget,
        "requeue": d.requeue,
        "count": d.count,
        "error": d.error,
        "note": bool(d.note),
    }


def expect(stage: str, **fields: Any) -> dict[str, Any]:
    base = {"action": A.NOTHING, "instances": (), "grace": 0.0, "events": [], "status": None, "record": None}
    base |= {"forget": False, "requeue": None, "count": "", "error": None, "note": False}
    return {"stage": stage, **base, **fields}


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

TABLE: list[tuple[str, lifecycle.Facts, lifecycle.Config, dict[str, Any]]] = [
    # --- pending: create, or say why not ---
    ("a new pod is created", facts(pod()), CONFIG, expect("create", action=A.CREATE)),
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

# --- the cloud takes the instance back (spot): see vnode/node/reclaim.py ---
NOTICE = models.InstanceEvent(
    "SpotToBeReleased",
    "Spot ECI will be released in 3 minutes",
    type=models.EventType.WARNING,
    timestamp=NOW,
    notice=models.Notice.RECLAIM,
)
RECLAIMED = dataclasses.replace(state(S.EXPIRED, NOTICE), reason="BidFailed", message="released")


def owned(p: objects.Pod, kind: str = "ReplicaSet") -> objects.Pod:
    p.metadata.owner_references = [objects.OwnerReference(kind=kind, name="web-1", controller=True)]
    return p


def uncontrolled() -> objects.Pod:
    p = owned(pod(phase="Running"))
    p.metadata.owner_references[0].controller = False
    return p


ON_ECI_1 = book.Memory(instance_id="eci-1")


def marked() -> objects.Pod:
    p = pod(phase="Running", instance="eci-1")
    p.status.conditions.append(objects.PodCondition(type="DisruptionTarget", status="True"))
    return p


TABLE += [
    (
        "a reclaim notice marks a pod no controller replaces; it runs on",
        facts(pod(phase="Running"), state(S.RUNNING, NOTICE)),
        CONFIG,
        expect("reclaim-notice", events=["SpotToBeReleased", "Reclaiming"], status=("Running", "")),
    ),
    (
        "a reclaim notice deletes a ReplicaSet's pod with its grace period: the replacement starts now",
        facts(owned(pod(phase="Running")), state(S.RUNNING, NOTICE)),
        CONFIG,
        expect("reclaim-notice", action=A.EVICT, events=["SpotToBeReleased", "Reclaiming"], status=("Running", "")),
    ),
    (
        "a Job's pod is marked, not deleted (its controller decides)",
        facts(owned(pod(phase="Running"), "Job"), state(S.RUNNING, NOTICE)),
        CONFIG,
        expect("reclaim-notice", events=["SpotToBeReleased", "Reclaiming"], status=("Running", "")),
    ),
    (
        "a marked pod follows its instance",
        facts(marked(), state(S.RUNNING, NOTICE), memory=book.Memory(instance_id="eci-1")),
        CONFIG,
        expect("running", events=["SpotToBeReleased"], status=("Running", "")),
    ),
    (
        "a reclaimed instance fails its pod as the cloud says (BidFailed)",
        facts(marked(), RECLAIMED),
        CONFIG,
        expect("reclaimed", events=["SpotToBeReleased"], status=("Failed", "BidFailed")),
    ),
    (
        "a StatefulSet's pod is deleted on the notice too: its controller recreates it",
        facts(owned(pod(phase="Running"), "StatefulSet"), state(S.RUNNING, NOTICE)),
        CONFIG,
        expect("reclaim-notice", action=A.EVICT, events=["SpotToBeReleased", "Reclaiming"], status=("Running", "")),
    ),
    (
        "a ReplicaSet that owns the pod but does not control it replaces nothing: marked, not deleted",
        facts(uncontrolled(), state(S.RUNNING, NOTICE)),
        CONFIG,
        expect("reclaim-notice", events=["SpotToBeReleased", "Reclaiming"], status=("Running", "")),
    ),
    (
        "a notice before the containers run marks the pending pod (its replacement can start sooner)",
        facts(owned(pod(phase="Pending")), state(S.PENDING, NOTICE)),
        CONFIG,
        expect("reclaim-notice", action=A.EVICT, events=["SpotToBeReleased", "Reclaiming"], status=("Pending", "")),
    ),
    (
        "a pod being deleted when the notice comes is stopped as asked, not marked",
        facts(pod(deleting=True, phase="Running", instance="eci-1"), state(S.RUNNING, NOTICE), memory=ON_ECI_1),
        CONFIG,
        expect("stop", action=A.DELETE, instances=("eci-1",), grace=30.0, events=KILLING),
    ),
    (
        "a notice vnode missed (it was down) still fails the pod as the cloud says, unmarked",
        facts(pod(phase="Running", instance="eci-1"), RECLAIMED, memory=ON_ECI_1),
        CONFIG,
        expect("reclaimed", events=["SpotToBeReleased"], status=("Failed", "BidFailed")),
    ),
    (
        "a BidFailed status written but not seen yet is not written again (the metric counts writes)",
        facts(marked(), RECLAIMED, memory=written(marked(), RECLAIMED)),
        CONFIG,
        expect("reclaimed", events=["SpotToBeReleased"]),
    ),
    (
        "a pod that shows its reclamation is not reclaimed again",
        facts(pod(phase="Failed", instance="eci-1"), RECLAIMED, memory=written(marked(), RECLAIMED)),
        CONFIG,
        expect("running", events=["SpotToBeReleased"]),
    ),
    (
        "an instance Expired without a notice is no reclamation: the pod follows it",
        facts(pod(phase="Running", instance="eci-1"), state(S.EXPIRED), memory=ON_ECI_1),
        CONFIG,
        expect("running", status=("Failed", "Expired")),
    ),
]


@pytest.mark.parametrize(("facts", "config", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_decision(facts: lifecycle.Facts, config: lifecycle.Config, expected: dict[str, Any]) -> None:
    assert summary(lifecycle.decide(facts, config)) == expected


def test_every_stage_is_reached_by_the_table() -> None:
    reached = {lifecycle.decide(f, c).stage for _, f, c, _ in TABLE}
    assert reached == {stage.name for stage in lifecycle.STAGES}
    assert {stage.lifecycle for stage in lifecycle.STAGES} == set(lifecycle.Lifecycle)


def test_memory_after_a_create_names_the_instance_and_when_it_was_sent() -> None:
    d = lifecycle.decide(facts(pod(), answer=lifecycle.Created(state(S.PENDING), 99.0)), STARTING)
    assert d.memory is not None
    assert (d.memory.instance_id, d.memory.created_at) == ("eci-1", 99.0)


def test_memory_after_a_delete_is_the_moment_it_was_accepted() -> None:
    d = lifecycle.decide(facts(pod(deleting=True), state(), answer=lifecycle.Deleted(("eci-1",), 100.5)), CONFIG)
    assert d.memory == book.Memory(delete_requested_at=100.5, deleting=True)


def test_events_are_recorded_once() -> None:
    first = lifecycle.decide(facts(pod(), state(S.RUNNING, PULLED, STARTED)), CONFIG)
    assert first.memory is not None
    again = lifecycle.decide(facts(pod(), state(S.RUNNING, PULLED, STARTED), memory=first.memory), CONFIG)
    assert [e.reason for e in first.events] == ["Pulled", "Started"]
    assert again.events == ()


def test_a_status_the_pod_shows_already_is_remembered_not_written() -> None:
    d = lifecycle.decide(facts(pod(shows=SHOWN), state()), CONFIG)
    assert d.status is None
    assert d.memory is not None
    assert d.memory.written is not None
    assert status.same(d.memory.written, SHOWN)


def test_the_clouds_annotations_are_patched_once_and_not_while_the_pod_shows_them() -> None:
    public = {"k8s.aliyun.com/allocated-eipAddress": "47.98.1.2"}
    with_eip = dataclasses.replace(state(), annotations=public)
    first = lifecycle.decide(facts(pod(), with_eip), CONFIG)
    assert first.annotations == public
    patched = book.Memory(instance_id="eci-1", annotated=frozenset(public.items()))
    assert lifecycle.decide(facts(pod(), with_eip, memory=patched), CONFIG).annotations is None
    shown = pod()
    shown.metadata.annotations = dict(public)
    assert lifecycle.decide(facts(shown, with_eip), CONFIG).annotations is None
    assert lifecycle.decide(facts(pod(), state()), CONFIG).annotations is None


def test_a_reclaim_notice_writes_the_disruption_target_condition() -> None:
    d = lifecycle.decide(facts(owned(pod(phase="Running")), state(S.RUNNING, NOTICE)), CONFIG)
    assert d.status is not None
    target = [c for c in d.status["conditions"] if c["type"] == "DisruptionTarget"]
    assert len(target) == 1
    assert (target[0]["status"], target[0]["reason"]) == ("True", "TerminationByKubelet")
    assert "replacement" in target[0]["message"]
    warning = d.events[-1]
    assert (warning.type, warning.reason) == ("Warning", "Reclaiming")


def test_a_notice_seen_once_marks_the_pod_once() -> None:
    first = lifecycle.decide(facts(pod(phase="Running"), state(S.RUNNING, NOTICE)), CONFIG)
    assert first.memory is not None
    assert first.status is not None
    again = facts(
        pod(phase="Running"), state(S.RUNNING, NOTICE), memory=dataclasses.replace(first.memory, written=first.status)
    )
    assert lifecycle.decide(again, CONFIG).stage == "running"


def _targets(d: lifecycle.Decision) -> list[dict[str, Any]]:
    assert d.status is not None
    return [c for c in d.status["conditions"] if c["type"] == "DisruptionTarget"]


def test_a_pod_failed_by_a_missed_notice_is_marked_as_it_fails() -> None:
    d = lifecycle.decide(facts(pod(phase="Running", instance="eci-1"), RECLAIMED, memory=ON_ECI_1), CONFIG)
    assert (d.stage, d.status and d.status["phase"]) == ("reclaimed", "Failed")
    [target] = _targets(d)
    assert (target["status"], target["reason"]) == ("True", "TerminationByKubelet")
    assert target["message"].startswith("the cloud reclaimed instance eci-1")


def test_a_marked_pod_fails_without_a_second_mark() -> None:
    noticed = lifecycle.decide(facts(pod(phase="Running"), state(S.RUNNING, NOTICE)), CONFIG)
    assert noticed.memory is not None
    memory = dataclasses.replace(noticed.memory, written=noticed.status)
    d = lifecycle.decide(facts(pod(phase="Running"), RECLAIMED, memory=memory), CONFIG)
    assert d.stage == "reclaimed"
    assert _targets(d) == []  # the condition vnode wrote stays on the pod (merged by type); none added


def test_naming_a_decision_keeps_every_field() -> None:
    """``Decision.named`` copies the fields positionally (for speed): a field added to Decision
    and not to it fails here."""
    values: dict[str, Any] = {}
    for i, f in enumerate(dataclasses.fields(lifecycle.Decision)):
        values[f.name] = object() if f.name != "action" else A.DELETE
        values[f.name] = values[f.name] if f.name != "stage" else f"stage-{i}"
    full = lifecycle.Decision(**values)
    assert full.named("other") == dataclasses.replace(full, stage="other")
