"""The soak's checks (soak/invariants.py) on made-up pods and listings: each invariant fires after its grace."""

from __future__ import annotations

from typing import Any

from soak import invariants
from vnode import models
from vnode.kube import objects


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, uid: str, phase: str = "Running", *, deleting: bool = False) -> objects.Pod:
    meta = objects.ObjectMeta(name=name, namespace="ns", uid=uid,
                              deletion_timestamp="2026-01-01T00:00:00Z" if deleting else None)  # fmt: skip
    return objects.Pod(metadata=meta, spec=objects.PodSpec(node_name="vnode-soak-0"),
                       status=objects.PodStatus(phase=phase))  # fmt: skip


def instance(id_: str, uid: str, status: str = "Running", cost: float = 0.0) -> dict[str, Any]:
    return {"id": id_, "status": status, "tags": {models.TAG_POD_UID: uid}, "cost_usd": cost}


def checker() -> tuple[invariants.Checker, Clock]:
    clock = Clock()
    return invariants.Checker("vnode-soak-", clock=clock), clock


def kinds(c: invariants.Checker) -> list[tuple[str, str]]:
    return sorted(c.violations)


def test_a_pod_with_its_instance_is_fine_and_a_second_instance_is_a_duplicate_at_once() -> None:
    c, _ = checker()
    c.on_pod("ns/a", pod("a", "u1"))
    c.check([instance("i-1", "u1")])
    assert kinds(c) == []
    c.check([instance("i-1", "u1"), instance("i-2", "u1")])
    assert kinds(c) == [("duplicated", "ns/a")]


def test_an_instance_outliving_its_pod_is_leaked_only_after_the_grace_and_its_cost_counts() -> None:
    c, clock = checker()
    c.on_pod("ns/a", pod("a", "u1"))
    c.on_pod("ns/a", None)
    assert c.cycles == 1
    c.check([instance("i-1", "u1", cost=1.0)])
    clock.now = invariants.LEAK_GRACE - 1
    c.check([instance("i-1", "u1", cost=1.5)])
    assert kinds(c) == [], "deleting takes a while"
    clock.now = invariants.LEAK_GRACE + 1
    c.check([instance("i-1", "u1", cost=2.0)])
    clock.now += 10
    c.check([instance("i-1", "u1", cost=2.5)])
    assert kinds(c) == [("leaked", "i-1")]
    assert c.leak_cost == {"i-1": 0.5}


def test_a_candidate_that_clears_within_its_grace_is_forgotten() -> None:
    c, clock = checker()
    c.on_pod("ns/a", pod("a", "u1"))
    c.check([])
    clock.now = invariants.STATUS_GRACE - 1
    c.check([instance("i-1", "u1")])
    clock.now = invariants.STATUS_GRACE + 5
    c.check([])
    assert kinds(c) == [], "Running without an instance, but only for a moment each time"


def test_lost_pods_and_disagreeing_phases_are_violations_after_the_status_grace() -> None:
    c, clock = checker()
    for name, uid, phase in (("run", "u1", "Running"), ("pend", "u2", "Pending"), ("done", "u3", "Succeeded"),
                             ("stale", "u4", "Running")):  # fmt: skip
        c.on_pod(f"ns/{name}", pod(name, uid, phase))
    listing = [instance("i-2", "u2"), instance("i-3", "u3"), instance("i-4", "u4", "Failed")]
    c.check(listing)
    clock.now = invariants.STATUS_GRACE + 1
    assert c.check(listing) == {"lost": 4}
    assert kinds(c) == [("lost", "ns/done"), ("lost", "ns/pend"), ("lost", "ns/run"), ("lost", "ns/stale")]


def node(ready: bool) -> objects.Node:
    return objects.Node(status={"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]})


def test_statuses_on_a_node_that_is_not_ready_are_unknown_and_the_grace_restarts_when_it_is() -> None:
    """A dead daemon's node goes NotReady and its pods' statuses are unknown, as Kubernetes says of a
    dead kubelet's; the replacement must set them right within the grace once the node is Ready."""
    c, clock = checker()
    c.on_pod("ns/pend", pod("pend", "u1", "Pending"))
    listing = [instance("i-1", "u1")]
    c.on_node("vnode-soak-0", node(False))
    c.check(listing)
    clock.now = invariants.STATUS_GRACE + 1
    assert c.check(listing) == {}
    assert c.unknown_seconds == invariants.STATUS_GRACE + 1
    c.on_node("vnode-soak-0", node(True))
    c.check(listing)
    clock.now += invariants.STATUS_GRACE - 1
    c.check(listing)
    assert kinds(c) == [], "the grace counts from the node's return"
    clock.now += 2
    c.check(listing)
    assert kinds(c) == [("lost", "ns/pend")]
    c.on_node("vnode-soak-0", None)
    assert not c.ready["vnode-soak-0"], "a node deleted (scaled away) is not Ready"


def test_a_pod_terminating_past_its_grace_is_stuck() -> None:
    c, clock = checker()
    c.on_pod("ns/a", pod("a", "u1", deleting=True))
    c.check([instance("i-1", "u1")])
    clock.now = 30 + invariants.TERMINATING_GRACE + 1
    c.check([instance("i-1", "u1")])
    assert kinds(c) == [("stuck Terminating", "ns/a")]


def test_the_final_check_wants_every_instance_to_belong_to_a_live_pod_or_one_just_gone() -> None:
    c, clock = checker()
    c.on_pod("ns/a", pod("a", "u1"))
    c.on_pod("ns/b", pod("b", "u2"))
    c.on_pod("ns/c", pod("c", "u3"))
    c.on_pod("ns/b", None)
    clock.now = invariants.SETTLE_AGE + 1
    c.on_pod("ns/c", None)
    c.final([instance("i-1", "u1"), instance("i-2", "u2"), instance("i-3", "u3"), instance("i-9", "unknown")])
    assert kinds(c) == [("leaked at the end", "i-2"), ("leaked at the end", "i-9")]


def test_pods_of_other_nodes_and_of_the_controllers_namespace_are_not_watched() -> None:
    c, _ = checker()
    other = pod("x", "u9")
    other.spec.node_name = "kwok-0"
    c.on_pod("ns/x", other)
    assert c.pods == {}


def test_the_terminating_and_leak_bounds_allow_the_deletes_queued_ahead_at_the_accounts_rate() -> None:
    """A scale-in queues thousands of deletes at once; the cloud serves 20 a second. A pod deleted
    behind 400 of them gets 20 s more than the bound, one deleted with none ahead does not."""
    c, clock = checker()
    gone = [instance(f"i-old-{n}", f"old-{n}") for n in range(400)]  # pods already gone: deletes due
    c.on_pod("ns/late", pod("late", "u-late"))
    c.on_pod("ns/first", pod("first", "u-first"))
    c.check([*gone, instance("i-late", "u-late"), instance("i-first", "u-first")])
    assert c.backlog == 400
    c.on_pod("ns/late", pod("late", "u-late", deleting=True))
    c.check([*gone, instance("i-late", "u-late")])
    bound = 30 + invariants.TERMINATING_GRACE
    clock.now = bound + 1
    c.check([*gone, instance("i-late", "u-late")])
    assert ("stuck Terminating", "ns/late") not in c.violations, "400 deletes at 20/s: 20 s more"
    clock.now = bound + 400 / invariants.DELETE_RATE + 1
    c.check([*gone, instance("i-late", "u-late")])
    assert ("stuck Terminating", "ns/late") in c.violations
    assert "400 deletes were due before" in c.violations["stuck Terminating", "ns/late"].detail


def test_pods_deleted_together_between_two_checks_count_each_other_ahead() -> None:
    """A namespace deleted whole: its pods become Terminating between two checks; the last of 3,000
    has 2,999 deletes ahead of it, not just those due at the check before (the teardown's 1,415)."""
    c, _ = checker()
    for n in range(3000):
        c.on_pod(f"ns/p{n}", pod(f"p{n}", f"u{n}"))
    c.check([instance(f"i{n}", f"u{n}") for n in range(3000)])
    for n in range(3000):
        c.on_pod(f"ns/p{n}", pod(f"p{n}", f"u{n}", deleting=True))
    last = c.pods["u2999"]
    assert last.ahead == 2999
    c.check([instance(f"i{n}", f"u{n}") for n in range(3000)])
    assert c.deleted_since == 0
    assert c.backlog == 3000
