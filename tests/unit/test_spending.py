"""The node's cost by namespace and owner: increments per pass, live instances only, bounded labels."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from vnode import models
from vnode.kube import objects
from vnode.node import spending
from vnode.provider import profile

RULES = dataclasses.replace(profile.NEUTRAL, prices=profile.Prices(per_vcpu_second=0.01, per_gib_second=0.0))
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
START = T0.timestamp()


def instance(iid: str, uid: str, namespace: str = "team-a", *, ended: float | None = None) -> models.InstanceState:
    finished = T0 + datetime.timedelta(seconds=ended) if ended is not None else None
    tags = {models.TAG_NAMESPACE: namespace, models.TAG_POD_UID: uid}
    return models.InstanceState(
        id=iid,
        status=models.InstanceStatus.RUNNING,
        cpu=1,
        memory_gib=2,
        started_at=T0,
        finished_at=finished,
        tags=tags,
    )


def pod(*owners: objects.OwnerReference, hash_: str = "") -> objects.Pod:
    labels = {"pod-template-hash": hash_} if hash_ else {}
    meta = objects.ObjectMeta(name="p", namespace="team-a", owner_references=list(owners), labels=labels)
    return objects.Pod(metadata=meta)


def ref(kind: str, name: str, *, controller: bool = True) -> objects.OwnerReference:
    return objects.OwnerReference(kind=kind, name=name, controller=controller)


@pytest.mark.parametrize(
    ("the_pod", "owner"),
    [
        (pod(ref("ReplicaSet", "web-5d8f7c9b4"), hash_="5d8f7c9b4"), "Deployment/web"),
        (pod(ref("ReplicaSet", "hand-made")), "ReplicaSet/hand-made"),
        (pod(ref("Job", "nightly-29012345")), "CronJob/nightly"),
        (pod(ref("Job", "migrate-1")), "Job/migrate-1"),
        (pod(ref("StatefulSet", "db")), "StatefulSet/db"),
        (pod(ref("Node", "n", controller=False), ref("DaemonSet", "agent")), "DaemonSet/agent"),
        (pod(), "(none)"),
    ],
)
def test_the_owner_is_the_workload_a_person_names(the_pod: objects.Pod, owner: str) -> None:
    assert spending.owner_of(the_pod) == owner


def test_each_pass_counts_what_was_spent_since_the_last_and_forgets_instances_no_longer_listed() -> None:
    pods = {"u1": pod(ref("ReplicaSet", "web-abc"), hash_="abc"), "u2": pod()}
    s = spending.Spending(RULES)
    first = s.account([instance("i1", "u1"), instance("i2", "u2", "team-b")], pods.get, START + 10)
    assert first == {("team-a", "Deployment/web"): pytest.approx(0.1), ("team-b", "(none)"): pytest.approx(0.1)}
    second = s.account([instance("i1", "u1", ended=15), instance("i2", "u2", "team-b")], pods.get, START + 30)
    assert second == {("team-a", "Deployment/web"): pytest.approx(0.05), ("team-b", "(none)"): pytest.approx(0.2)}
    assert s.account([instance("i2", "u2", "team-b")], pods.get, START + 30) == {}, "nothing new, i1 forgotten"
    assert s.total == pytest.approx(0.45)
    assert list(s._counted) == ["i2"], "only live instances are remembered"


def test_a_spot_instance_is_counted_at_its_own_price_and_what_it_saved_is_summed() -> None:
    """1 vCPU at 0.01/s lists at 36 USD an hour; bought at 9 an hour, it saved three quarters."""
    s = spending.Spending(RULES)
    bought = dataclasses.replace(instance("i1", "u1"), interruptible=True, hourly_price=9.0)
    ended = dataclasses.replace(instance("i3", "u3"), interruptible=True, status=models.InstanceStatus.EXPIRED)
    first = s.account([bought, instance("i2", "u2"), ended], {}.get, START + 100)
    assert first == {("team-a", "(none)"): pytest.approx(100 * 9 / 3600 + 2 * 100 * 0.01)}
    assert s.saved == pytest.approx(100 * (0.01 - 9 / 3600))
    assert s.interruptible == 1, "the live spot instances only"
    s.account([bought], {}.get, START + 200)
    assert s.saved == pytest.approx(200 * (0.01 - 9 / 3600)), "counted once per second, whatever the passes"
    assert s.interruptible == 1


def test_past_the_bound_new_owners_are_other_in_their_namespace_then_other_everywhere() -> None:
    pods = {f"u{i}": pod(ref("StatefulSet", f"db-{i}")) for i in range(8)}
    s = spending.Spending(RULES, max_series=2)
    states = [instance(f"i{i}", f"u{i}", namespace=f"ns-{i}") for i in range(5)]
    states += [instance("i5", "u5", namespace="ns-2")]
    keys = set(s.account(states, pods.get, START + 1))
    assert keys == {
        ("ns-0", "StatefulSet/db-0"),
        ("ns-1", "StatefulSet/db-1"),
        ("ns-2", "(other)"),  # i2 and i5
        ("ns-3", "(other)"),
        ("(other)", "(other)"),  # ns-4: past both bounds
    }


def test_an_unchanged_state_object_is_priced_by_the_clock_and_a_new_one_is_read_again() -> None:
    """The change feed hands back the same object while an instance is unchanged: a pass reads its
    rate once, and still counts the time that passed; the object that says it ended stops the count."""
    s = spending.Spending(RULES)
    running = instance("i1", "u1")
    assert s.account([running], {}.get, START + 10) == {("team-a", "(none)"): pytest.approx(0.1)}
    assert s.account([running], {}.get, START + 30) == {("team-a", "(none)"): pytest.approx(0.2)}
    ended = instance("i1", "u1", ended=40)
    assert s.account([ended], {}.get, START + 100) == {("team-a", "(none)"): pytest.approx(0.1)}
    assert s.account([ended], {}.get, START + 200) == {}, "nothing after its end"
    assert s.total == pytest.approx(RULES.spent(ended, START + 200))
