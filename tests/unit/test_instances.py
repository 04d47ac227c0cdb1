"""The node's cache of instance states takes the change feed's answers in: complete ones replace,
incremental ones add, change and remove; only this node's instances reach ``by_uid``."""

from __future__ import annotations

from vnode import models
from vnode.node import instances
from vnode.provider import base

NODE = {models.TAG_CLUSTER: "c1", models.TAG_NODE: "vn-0"}


def state(instance_id: str, uid: str, status: models.InstanceStatus = models.InstanceStatus.RUNNING,
          **tags: str) -> models.InstanceState:  # fmt: skip
    return models.InstanceState(instance_id, status, tags={**NODE, models.TAG_POD_UID: uid, **tags})


def test_a_complete_answer_replaces_and_an_incremental_one_changes_and_removes() -> None:
    cache = instances.Instances("c1", "vn-0")
    a, b = state("i-a", "uid-a"), state("i-b", "uid-b")
    assert cache.apply(base.Changes([a, b], cursor="c1", complete=True)) == {"uid-a", "uid-b"}
    assert cache.cursor == "c1"
    assert cache.by_uid == {"uid-a": a, "uid-b": b}

    b2 = state("i-b", "uid-b", models.InstanceStatus.TERMINATING)
    assert cache.apply(base.Changes([b2], cursor="c2")) == {"uid-b"}
    assert cache.by_uid == {"uid-a": a, "uid-b": b2}, "what the answer does not name stands"
    assert cache.apply(base.Changes([], gone=["i-b"], cursor="c3")) == {"uid-b"}
    assert cache.by_uid == {"uid-a": a}

    c = state("i-c", "uid-c")
    assert cache.apply(base.Changes([c], complete=True)) == {"uid-a", "uid-c"}, "absent from a complete answer: gone"
    assert cache.by_uid == {"uid-c": c}
    assert cache.cursor is None


def test_an_unchanged_state_touches_nothing_and_other_nodes_instances_stay_out() -> None:
    cache = instances.Instances("c1", "vn-0")
    a = state("i-a", "uid-a")
    cache.apply(base.Changes([a], complete=True))
    assert cache.apply(base.Changes([a], cursor="c")) == set()
    assert cache.apply(base.Changes([state("i-a", "uid-a")], cursor="c")) == set(), "equal, not identical"
    other = state("i-x", "uid-x", **{models.TAG_NODE: "vn-1"})
    no_uid = models.InstanceState("i-y", models.InstanceStatus.RUNNING, tags=dict(NODE))
    assert cache.apply(base.Changes([other, no_uid], cursor="c")) == set()
    assert set(cache.by_uid) == {"uid-a"}


def test_a_pushed_state_updates_the_cache_until_the_feed_says_otherwise() -> None:
    cache = instances.Instances("c1", "vn-0")
    cache.apply(base.Changes([state("i-a", "uid-a", models.InstanceStatus.PENDING)], cursor="c", complete=True))
    running = state("i-a", "uid-a")
    assert cache.put(running) == {"uid-a"}
    assert cache.by_uid["uid-a"] is running
    cache.reset()
    assert cache.cursor is None
    assert cache.by_uid["uid-a"] is running, "reset forgets the cursor, not the states"
