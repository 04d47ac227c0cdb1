"""A pod's lifecycle on the node, written as data: which stage a pod is in, and what to do about it.

:func:`decide` is pure. It takes what is known about one pod right now (:class:`Facts`: the
pod, its instance's last known state, vnode's memory of it, the clocks, and the cloud's answer
to a question this reconcile asked) and returns a :class:`Decision`: one action, the status to
write, the events to post, the memory after, when to look again. It reads no clock and calls
nothing; ``reconcile`` carries the decision out. A decision that needs the cloud's answer
(create, look up, find, delete) is an *ask*: reconcile asks, then decides again with the
answer, so one reconcile is a short chain of decisions that ends in a final one.

The lifecycle is the table :data:`STAGES`, read top to bottom, the first match wins; in the
spirit of KWOK's Stage resources (a selector, then what happens), but typed: each stage names
the pod's place in its lifecycle (pending, creating, running, finished, terminating, gone), a
condition on the facts and the plan that makes the decision. tests/unit/test_decision.py
checks it as a table.

Why deletion waits for a listing: the pod (and the token bound to it) stays while its
instance runs out its grace period, like a kubelet's pod, and is released (grace 0, UID
precondition) only once a listing that began after the delete no longer shows the instance,
so a deleted pod never leaves a billed instance behind, even one whose create was in flight.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vnode import models
from vnode.kube import objects
from vnode.node import book, deadline, events, pending, reclaim, status
from vnode.node.answers import Answer, Created, Deleted, Found, Invalid, LookedUp, Missing, NoCapacity
from vnode.node.decision import ASKS, Action, Condition, Config, Decision, Facts, Lifecycle, Plan, Stage

__all__ = [
    "ASKS",
    "STAGES",
    "Action",
    "Answer",
    "Condition",
    "Config",
    "Created",
    "Decision",
    "Deleted",
    "Facts",
    "Found",
    "Invalid",
    "Lifecycle",
    "LookedUp",
    "Missing",
    "NoCapacity",
    "Plan",
    "Stage",
    "decide",
]

MISSING_RETRY = 2.0  # seconds to the next look for a missing ConfigMap/Secret/claim, doubling each miss
MISSING_RETRY_MAX = 10.0  # up to this: a long wait costs a look per 10 s, a Secret made late starts soon
DELETE_RELOOK = 1.0  # seconds between looks at an instance being deleted (the listing usually answers first)
RELEASE_AFTER = 60.0  # seconds past the grace period after which a pod is released though its instance is listed
UNLISTED_RELOOK = 1.0  # seconds until a look at a pod whose instance was made after the last listing began
FINAL_PHASES = ("Succeeded", "Failed")
DAEMONSET_MESSAGE = "DaemonSet pods are not run on virtual nodes: there is no host to run a per-node agent on"


def decide(facts: Facts, config: Config) -> Decision:
    """The decision of the first stage whose condition holds."""
    for stage in STAGES:
        if stage.when(facts, config):
            return stage.plan(facts, config).named(stage.name)
    raise AssertionError("the last stage matches every pod")  # pragma: no cover


# --- conditions ---


def _pod(f: Facts) -> objects.Pod:
    assert f.pod is not None, "a stage that needs the pod came after the ones for a gone pod"
    return f.pod


def _grace(pod: objects.Pod) -> float:
    return float(pod.metadata.deletion_grace_period_seconds or 0)


def _answered(kind: type[Answer]) -> Condition:
    return lambda f, c: isinstance(f.answer, kind)


def _unknown(f: Facts, c: Config) -> bool:
    return f.pod is None and not f.uid


def _orphaned(f: Facts, c: Config) -> bool:
    return f.pod is None and f.state is not None and f.answer is None


def _gone(f: Facts, c: Config) -> bool:
    return f.pod is None


def _terminating(f: Facts, c: Config) -> bool:
    return bool(_pod(f).metadata.deletion_timestamp)


def _delete_asked(f: Facts, c: Config) -> bool:
    return _terminating(f, c) and bool(f.memory.delete_requested_at)


def _stopped(f: Facts, c: Config) -> bool:
    """The delete was sent, and there was no instance, or a listing begun since lacks it."""
    m = f.memory
    gone_since = f.listed_at > m.delete_requested_at and f.state is None
    return _delete_asked(f, c) and (not m.deleting or gone_since)


def _overdue(f: Facts, c: Config) -> bool:
    waited = f.moment - f.memory.delete_requested_at
    return _delete_asked(f, c) and waited >= _grace(_pod(f)) + RELEASE_AFTER


def _ended_terminating(f: Facts, c: Config) -> bool:
    """Deleted, and its listed instance has ended, which the pod does not show yet (a Job pod deleted
    as it succeeds): a kubelet writes the containers' end before the pod goes, so does vnode."""
    state = f.state
    if not _terminating(f, c) or f.answer is not None or state is None:
        return False
    if status.PHASES.get(state.status) not in FINAL_PHASES:
        return False
    return not _shows_end(f)


def _shows_end(f: Facts) -> bool:
    """The pod shows a final phase, or vnode's last write of it did (the pod may not show it yet)."""
    written = f.memory.written
    return _pod(f).phase in FINAL_PHASES or (written is not None and written.get("phase") in FINAL_PHASES)


def _found_none(f: Facts, c: Config) -> bool:
    return _terminating(f, c) and isinstance(f.answer, Found) and not f.answer.instance_ids


def _terminating_unlisted(f: Facts, c: Config) -> bool:
    return _terminating(f, c) and f.state is None and f.answer is None


def _daemonset(f: Facts, c: Config) -> bool:
    return any(ref.kind == "DaemonSet" for ref in _pod(f).metadata.owner_references)


def _created_starting(f: Facts, c: Config) -> bool:
    a = f.answer
    return isinstance(a, Created) and c.first_status_after > 0 and status.PHASES.get(a.state.status) == "Pending"


def _looked_up_nothing(f: Facts, c: Config) -> bool:
    return isinstance(f.answer, LookedUp) and f.answer.state is None


def _instance(f: Facts) -> models.InstanceState | None:
    a = f.answer
    if isinstance(a, Created | LookedUp):
        return a.state
    return f.state


def _has_instance(f: Facts, c: Config) -> bool:
    return _instance(f) is not None


def _finished(f: Facts, c: Config) -> bool:
    return _pod(f).phase in FINAL_PHASES


def _instance_in_status(pod: objects.Pod, scheme: str) -> str:
    prefix = f"{scheme}://"
    for cs in pod.status.container_statuses:
        if cs.container_id.startswith(prefix):
            return cs.container_id[len(prefix) :]
    return ""


def _had_instance(f: Facts, c: Config) -> bool:
    return bool(f.memory.instance_id or _instance_in_status(_pod(f), c.scheme))


def _unlisted(f: Facts, c: Config) -> bool:
    """The pod's instance was made after the last listing began: the next one will show it."""
    created_at = f.memory.created_at
    return _had_instance(f, c) and bool(created_at) and f.listed_at <= created_at


def _deadline(f: Facts, c: Config) -> bool:
    return deadline.exceeded(_pod(f), f.memory.written, f.now)


def _pending_too_long(f: Facts, c: Config) -> bool:
    return pending.over(_pod(f), _instance(f), f.memory.written, f.now, c.max_pending)


def _draining(f: Facts, c: Config) -> bool:
    return f.draining


def _always(f: Facts, c: Config) -> bool:
    return True


# --- plans ---


def _warn_once(memory: book.Memory, reason: str, message: str) -> tuple[book.Memory, tuple[events.Event, ...]]:
    if memory.warned == f"{reason}:{message}":
        return memory, ()
    warning = events.Event(reason, message, type="Warning")
    return dataclasses.replace(memory, warned=f"{reason}:{message}"), (warning,)


def _with_status(f: Facts, memory: book.Memory, wanted: Mapping[str, Any], **fields: Any) -> Decision:
    """Write ``wanted`` only if neither the pod nor vnode's last write shows it already."""
    written = memory.written
    if written is not None and written == wanted:  # the last write itself: nothing to convert
        return Decision(memory=memory, **fields)
    shown = status.owned(status.typed(wanted))  # compared as the pod would show it
    if status.owned(_pod(f).status) == shown or (written is not None and status.owned(status.typed(written)) == shown):
        if written is None:
            memory = dataclasses.replace(memory, written=wanted)
        return Decision(memory=memory, **fields)
    return Decision(status=wanted, memory=memory, **fields)


def _nothing(f: Facts, c: Config) -> Decision:
    return Decision()


def _forget(f: Facts, c: Config) -> Decision:
    return Decision(forget=True)


def _delete_orphan(f: Facts, c: Config) -> Decision:
    assert f.state is not None
    return Decision(action=Action.DELETE, instances=(f.state.id,), grace=0.0)


def _release(f: Facts, c: Config) -> Decision:
    return Decision(action=Action.RELEASE, forget=True)


def _release_overdue(f: Facts, c: Config) -> Decision:
    waited = f.moment - f.memory.delete_requested_at
    note = (
        f"instance of pod {_pod(f).key} still listed {waited:.0f}s after its delete; releasing the pod, "
        "orphan collection deletes the instance"
    )
    return Decision(action=Action.RELEASE, forget=True, note=note)


def _write_end(f: Facts, c: Config) -> Decision:
    """The ended instance's status written, then at once the next look (stop, or wait for the listing)."""
    assert f.state is not None
    wanted = status.from_instance(_pod(f), f.state, scheme=c.scheme, host_ip=c.node_ip, now=f.now)
    return _with_status(f, f.memory, wanted, requeue=0.0)


def _relook(f: Facts, c: Config) -> Decision:
    return Decision(requeue=DELETE_RELOOK)


def _stop(f: Facts, c: Config) -> Decision:
    pod = _pod(f)
    if isinstance(f.answer, Found):
        ids = f.answer.instance_ids
    else:
        assert f.state is not None
        ids = (f.state.id,)
    killing: tuple[events.Event, ...] = ()
    if not _shows_end(f):
        killing = tuple(
            events.Event("Killing", f"Stopping container {ct.name}", container=ct.name) for ct in pod.spec.containers
        )
    return Decision(action=Action.DELETE, instances=ids, grace=_grace(pod), events=killing * len(ids))


def _stop_sent(f: Facts, c: Config) -> Decision:
    assert isinstance(f.answer, Deleted)
    memory = dataclasses.replace(f.memory, delete_requested_at=f.answer.at, deleting=True)
    return Decision(memory=memory, requeue=DELETE_RELOOK)


def _find(f: Facts, c: Config) -> Decision:
    return Decision(action=Action.FIND)


def _refuse(f: Facts, c: Config) -> Decision:
    memory, warning = _warn_once(f.memory, "DaemonSetPodsNotSupported", DAEMONSET_MESSAGE)
    wanted = status.waiting(
        _pod(f), reason="DaemonSetPodsNotSupported", message=DAEMONSET_MESSAGE, host_ip=c.node_ip, now=f.now
    )
    return _with_status(f, memory, wanted, events=warning)


def _missing(f: Facts, c: Config) -> Decision:
    assert isinstance(f.answer, Missing)
    message, mount = f.answer.message, f.answer.mount
    event, text = (
        ("FailedMount", f"Unable to attach or mount volumes: {message}") if mount else ("Failed", f"Error: {message}")
    )
    memory, warning = _warn_once(f.memory, event, text)
    memory = dataclasses.replace(memory, misses=memory.misses + 1)
    if warning and f.answer.reason:  # virtual-kubelet's event beside the kubelet's, as often
        warning = (events.Event(f.answer.reason, message, type="Warning"), *warning)
    reason, count = (
        ("ContainerCreating", "UnboundClaim") if mount else ("CreateContainerConfigError", "MissingReference")
    )
    wanted = status.waiting(_pod(f), reason=reason, message=text if mount else message, host_ip=c.node_ip, now=f.now)
    return _with_status(f, memory, wanted, events=warning, count=count, requeue=_after(memory.misses))


def _after(misses: int) -> float:
    return min(MISSING_RETRY_MAX, MISSING_RETRY * 2.0 ** (misses - 1))


def _failed(f: Facts, c: Config, reason: str, message: str, event: str) -> Decision:
    warning = events.Event(event, message, type="Warning")
    wanted = status.failed(_pod(f), reason=reason, message=message, host_ip=c.node_ip, now=f.now)
    return _with_status(f, f.memory, wanted, events=(warning,))


def _invalid(f: Facts, c: Config) -> Decision:
    assert isinstance(f.answer, Invalid)
    reason = f.answer.reason
    return _failed(f, c, reason, f.answer.message, "Failed" if reason == "ProviderInvalidSpec" else reason)


def _instance_gone(f: Facts, c: Config) -> Decision:
    assert isinstance(f.answer, LookedUp)
    message = f"the instance {f.answer.instance_id} no longer exists in the cloud"
    return _failed(f, c, "ProviderInstanceGone", message, "ProviderInstanceGone")


def _no_capacity(f: Facts, c: Config) -> Decision:
    assert isinstance(f.answer, NoCapacity)
    error = f.answer.error
    memory, warning = _warn_once(f.memory, "ProviderCapacity", f"no capacity in any zone: {error.message}")
    wanted = status.waiting(_pod(f), reason="ProviderCapacity", message=error.message, host_ip=c.node_ip, now=f.now)
    return _with_status(f, memory, wanted, events=warning, error=error)


def _created(f: Facts, c: Config) -> Decision:
    assert isinstance(f.answer, Created)
    made = f.answer.state
    memory = dataclasses.replace(f.memory, instance_id=made.id, created_at=f.answer.sent_at)
    return Decision(memory=memory, record=made, requeue=c.first_status_after, events=f.answer.notices)


def _follow(f: Facts, c: Config) -> Decision:
    """The pod's status follows its instance (listed, just made, or just looked up)."""
    state = _instance(f)
    assert state is not None
    record = state if isinstance(f.answer, Created | LookedUp) else None
    created_at = f.answer.sent_at if isinstance(f.answer, Created) else f.memory.created_at
    pod = _pod(f)
    posts, seen = events.from_instance(pod, f.memory, state, c.started_at)
    if isinstance(f.answer, Created):
        posts = (*f.answer.notices, *posts)
    memory = f.memory
    if (memory.instance_id, memory.created_at, memory.seen_events) != (state.id, created_at, seen):
        memory = dataclasses.replace(memory, instance_id=state.id, created_at=created_at, seen_events=seen)
    if pod.spec.ephemeral_containers:  # kubectl debug: said once, and each such container ends at once
        memory, refused = _warn_once(memory, "Failed", f"Error: {status.EPHEMERAL}")
        posts = (*posts, *refused)
    wanted = status.from_instance(pod, state, scheme=c.scheme, host_ip=c.node_ip, now=f.now)
    shown = pod.metadata.annotations
    lacking = {k: v for k, v in state.annotations.items() if shown.get(k) != v and (k, v) not in memory.annotated}
    limits = (deadline.remaining(pod, wanted, f.now), pending.remaining(pod, state, f.now, c.max_pending))
    due = [t for t in limits if t is not None]
    again = max(min(due), 0.0) if due else None  # look again when a time limit falls, if one is set
    return _with_status(f, memory, wanted, events=posts, record=record, annotations=lacking or None, requeue=again)


def _reclaim(f: Facts, c: Config) -> Decision:
    """The cloud takes the instance back: its notice marks the pod, its release fails it (reclaim.py)."""
    d = _follow(f, c)
    wanted, posts, how = reclaim.plan(f, c, d.status, (d.memory or f.memory).written)
    if how is None:
        return dataclasses.replace(d, status=wanted, events=(*d.events, *posts))
    again = reclaim.EVICTION_RETRY if how is Action.EVICTION else d.requeue  # refused by a budget: ask again
    return dataclasses.replace(d, action=how, status=wanted, events=(*d.events, *posts), requeue=again)


def _deadline_exceeded(f: Facts, c: Config) -> Decision:
    return _stop_for(f, c, deadline.REASON, deadline.MESSAGE, fail=True)


def _stopped_pending(f: Facts, c: Config) -> Decision:
    pod = _pod(f)
    never = pod.spec.restart_policy == "Never"  # ECI's way: Never fails; Always and OnFailure stay Pending
    return _stop_for(f, c, pending.REASON, pending.message(pod, c.max_pending), fail=never)


def _stop_for(f: Facts, c: Config, reason: str, message: str, *, fail: bool) -> Decision:
    """The kubelet's way: the status (Failed, or Pending if ``fail`` is false) with a Warning first, then
    the instance deleted (the next look)."""
    pod, state = _pod(f), _instance(f)
    if state is not None and not f.memory.deleting and f.memory.warned == f"{reason}:{message}":
        grace = float(pod.spec.termination_grace_period_seconds or 30)
        return Decision(action=Action.DELETE, instances=(state.id,), grace=grace)
    memory, warning = _warn_once(f.memory, reason, message)
    make = status.failed if fail else status.waiting
    wanted = make(pod, reason=reason, message=message, host_ip=c.node_ip, now=f.now)
    again = 0.0 if state is not None and not f.memory.deleting else None
    return _with_status(f, memory, wanted, events=warning, requeue=again)


def _wait_for_listing(f: Facts, c: Config) -> Decision:
    return Decision(requeue=UNLISTED_RELOOK)


def _look_up(f: Facts, c: Config) -> Decision:
    instance_id = f.memory.instance_id or _instance_in_status(_pod(f), c.scheme)
    return Decision(action=Action.LOOK_UP, instances=(instance_id,))


def _hold(f: Facts, c: Config) -> Decision:
    """No instance for a pod the drain is about to evict: one made now would be deleted within the
    drain, or outlive a controller killed at the end of its grace period with no status written."""
    return Decision()


def _create(f: Facts, c: Config) -> Decision:
    return Decision(action=Action.CREATE)


L = Lifecycle
STAGES: tuple[Stage, ...] = (
    # The pod left the API (force-deleted, or released by vnode): its instance must go too.
    Stage("unknown", L.GONE, _unknown, _nothing),  # gone before vnode knew its UID
    Stage("orphaned", L.GONE, _orphaned, _delete_orphan),
    Stage("gone", L.GONE, _gone, _forget),
    # Deleted: delete the instance, release the pod once a listing begun since lacks the instance.
    Stage("released", L.TERMINATING, _stopped, _release),
    Stage("overdue", L.TERMINATING, _overdue, _release_overdue),
    Stage("ended", L.TERMINATING, _ended_terminating, _write_end),  # its end written before it goes
    Stage("stopping", L.TERMINATING, _delete_asked, _relook),
    Stage("stop-sent", L.TERMINATING, _answered(Deleted), _stop_sent),
    Stage("nothing-to-stop", L.TERMINATING, _found_none, _release),
    Stage("find", L.TERMINATING, _terminating_unlisted, _find),  # not listed: made since, or lost in flight?
    Stage("stop", L.TERMINATING, _terminating, _stop),
    # Not for a virtual node.
    Stage("refused", L.PENDING, _daemonset, _refuse),
    # The answers to a create, and to the look-up of an instance the listing lacks.
    Stage("missing-reference", L.PENDING, _answered(Missing), _missing),
    Stage("invalid", L.FINISHED, _answered(Invalid), _invalid),
    Stage("no-capacity", L.PENDING, _answered(NoCapacity), _no_capacity),
    Stage("created", L.CREATING, _created_starting, _created),
    Stage("instance-gone", L.FINISHED, _looked_up_nothing, _instance_gone),
    # Active longer than its activeDeadlineSeconds: Failed, and its instance deleted.
    Stage("deadline-exceeded", L.FINISHED, _deadline, _deadline_exceeded),
    # Pending longer than its provider's maximum Pending time: stopped (pending.py).
    Stage("pending-too-long", L.FINISHED, _pending_too_long, _stopped_pending),
    # An instance exists: the pod's status follows it.
    # The cloud takes the instance back (spot): see reclaim.py.
    Stage("reclaim-notice", L.RUNNING, reclaim.noticed, _reclaim),
    Stage("reclaimed", L.FINISHED, reclaim.reclaimed, _reclaim),
    Stage("running", L.RUNNING, _has_instance, _follow),
    Stage("finished", L.FINISHED, _finished, _nothing),  # finished (or failed fast); nothing runs for it
    Stage("unlisted", L.CREATING, _unlisted, _wait_for_listing),
    Stage("look-up", L.RUNNING, _had_instance, _look_up),  # the pod had an instance: gone, or too new?
    # The node is draining away (scale-in): the pod is evicted, and its controller makes it again elsewhere.
    Stage("held", L.PENDING, _draining, _hold),
    Stage("create", L.PENDING, _always, _create),
)
