"""A decision's memory and its one-shot effects: what a create or a delete leaves remembered, events
and annotations recorded once, a reclaim notice marked once, and a decision's name on all its fields."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.unit.decision_reclaim import NOTICE, RECLAIMED, owned
from tests.unit.decisions import CONFIG, PULLED, STARTED, STARTING, A, S, facts, pod, state
from tests.unit.test_decision import ON_ECI_1, SHOWN
from vnode.node import book, lifecycle, status


def test_memory_after_a_create_names_the_instance_and_when_it_was_sent() -> None:
    d = lifecycle.decide(facts(pod(), answer=lifecycle.Created(state(S.PENDING), 99.0)), STARTING)
    assert d.memory is not None
    assert (d.memory.instance_id, d.memory.created_at) == ("eci-1", 99.0)


def test_memory_after_a_delete_is_the_moment_it_was_accepted() -> None:
    d = lifecycle.decide(facts(pod(deleting=True), state(), answer=lifecycle.Deleted(("eci-1",), 100.5)), CONFIG)
    assert d.memory == book.Memory(delete_requested_at=100.5, deleting=True)


def test_a_missing_reference_is_looked_for_again_sooner_then_later() -> None:
    """2, 4, 8, then every 10 s: a pod waiting long for its Secret or claim costs little, one whose
    Secret is only a moment late starts within seconds (it was every 2 s, whatever the wait)."""
    memory, waits = book.Memory(), []
    for _ in range(6):
        d = lifecycle.decide(facts(pod(), answer=lifecycle.Missing('secret "s" not found'), memory=memory), CONFIG)
        assert d.memory is not None
        memory = d.memory
        waits.append(d.requeue)
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


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
