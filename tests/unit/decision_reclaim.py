"""Rows of the lifecycle table (tests/unit/test_decision.py) for an instance the cloud takes back (spot):
see vnode/node/reclaim.py."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.unit.decisions import CONFIG, NOW, A, S, expect, facts, pod, state, written
from vnode import models
from vnode.kube import objects
from vnode.node import book, lifecycle

ON_ECI_1 = book.Memory(instance_id="eci-1")
KILLING = ["Killing", "Killing"]  # one per container

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


def marked() -> objects.Pod:
    p = pod(phase="Running", instance="eci-1")
    p.status.conditions.append(objects.PodCondition(type="DisruptionTarget", status="True"))
    return p


EVICTING = dataclasses.replace(CONFIG, reclaim_eviction=("example.com/release", "api-evict"))


def asking(p: objects.Pod, value: str = "api-evict") -> objects.Pod:
    """The pod carries the profile's eviction annotation."""
    p.metadata.annotations = {**p.metadata.annotations, "example.com/release": value}
    return p


RECLAIM_ROWS: list[tuple[str, lifecycle.Facts, lifecycle.Config, dict[str, Any]]] = [
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
    (
        "a pod asking for eviction is evicted through the API on the notice, even one no controller replaces",
        facts(asking(pod(phase="Running")), state(S.RUNNING, NOTICE)),
        EVICTING,
        expect(
            "reclaim-notice",
            action=A.EVICTION,
            events=["SpotToBeReleased", "Reclaiming"],
            status=("Running", ""),
            requeue=5.0,
        ),
    ),
    (
        "a marked pod asking for eviction is asked again (a budget refused it): no second warning",
        facts(asking(marked()), state(S.RUNNING, NOTICE), memory=book.Memory(instance_id="eci-1")),
        EVICTING,
        expect("reclaim-notice", action=A.EVICTION, events=["SpotToBeReleased"], status=("Running", ""), requeue=5.0),
    ),
    (
        "an evicted pod (being deleted) is stopped as asked, not evicted again",
        facts(asking(pod(deleting=True, phase="Running", instance="eci-1")), state(S.RUNNING, NOTICE), memory=ON_ECI_1),
        EVICTING,
        expect("stop", action=A.DELETE, instances=("eci-1",), grace=30.0, events=KILLING),
    ),
    (
        "another value of the annotation is no request: a ReplicaSet's pod is deleted as usual",
        facts(asking(owned(pod(phase="Running")), "delete"), state(S.RUNNING, NOTICE)),
        EVICTING,
        expect("reclaim-notice", action=A.EVICT, events=["SpotToBeReleased", "Reclaiming"], status=("Running", "")),
    ),
    (
        "the annotation means nothing to a provider that names none",
        facts(asking(pod(phase="Running")), state(S.RUNNING, NOTICE)),
        CONFIG,
        expect("reclaim-notice", events=["SpotToBeReleased", "Reclaiming"], status=("Running", "")),
    ),
    (
        "a pod asking for eviction whose instance is taken fails as the cloud says",
        facts(asking(marked()), RECLAIMED),
        EVICTING,
        expect("reclaimed", events=["SpotToBeReleased"], status=("Failed", "BidFailed")),
    ),
]
