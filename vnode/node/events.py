"""Kubernetes Events about pods, as a kubelet would record them (Pulling, Pulled, Created, Started...).

Events are for people reading ``kubectl describe``; losing one must never slow or fail a
reconcile. So they are posted in the background, a bounded number at a time, and a failure
is logged, not raised. Like the kubelet's (``--event-qps=50 --event-burst=100``), the
recorder paces its posts with a token bucket: in a burst of thousands of pods, the API
server's time goes to pod status first, and the events follow at a steady rate. Beyond
``backlog`` waiting events, new ones are dropped (counted in ``dropped``), as the kubelet's
broadcaster drops them when its queue is full.

Like client-go's event correlator (``NewEventCorrelator``, the kubelet's), a repeat of an event
(same pod, type, reason, message and container) is not a new Event: the first one's ``count``
and ``lastTimestamp`` are patched (and while the first is still waiting to be posted, it simply
carries the count), remembered in an LRU of ``MAX_EVENTS`` keys; and a spam filter allows each
pod a burst of ``SPAM_BURST`` events, then one per ``SPAM_PERIOD`` seconds, dropping the rest
(counted in ``spam_dropped``). A cloud that retries a pull every few minutes for hours thus
leaves one Event with a count, as a kubelet's ImagePullBackOff does. Not done: client-go's
merging of ten similar messages into "(combined from similar events)".
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from vnode import errors, models, tokenbucket
from vnode.kube import api, client, objects
from vnode.node import book

__all__ = ["MAX_EVENTS", "SPAM_BURST", "SPAM_PERIOD", "Event", "Pacer", "Recorder", "from_instance"]

MAX_EVENTS = 4096  # client-go's LRU of event keys
SPAM_BURST = 25  # client-go's spam filter: events per object at once...
SPAM_PERIOD = 300.0  # ...then one per this many seconds

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """An event to record about a pod, as a reconcile decides it (``when``: now, if not given)."""

    reason: str
    message: str
    type: str = "Normal"
    container: str = ""
    when: datetime.datetime | None = None


def from_instance(
    pod: objects.Pod, memory: book.Memory, state: models.InstanceState, started_at: datetime.datetime
) -> tuple[tuple[Event, ...], frozenset[tuple[str, str, int | str]]]:
    """The instance's events not recorded yet, and the marks of every event seen after these."""
    fresh: list[models.InstanceEvent] = []
    added: set[tuple[str, str, int | str]] = set()
    for event in state.events:
        mark = (event.reason, event.container, int(event.timestamp.timestamp()) if event.timestamp else event.message)
        if mark not in memory.seen_events and mark not in added:
            added.add(mark)
            fresh.append(event)
    if memory.written is None and pod.status.container_statuses:
        # Adopted after a restart: what happened before this daemon started was recorded by
        # the one before it (its status is on the pod); only newer events are ours to record.
        fresh = [e for e in fresh if e.timestamp is None or e.timestamp >= started_at]
    posts = tuple(Event(e.reason, e.message, type=e.type.value, container=e.container, when=e.timestamp) for e in fresh)
    return posts, (memory.seen_events | added) if added else memory.seen_events


class Pacer:
    """A token bucket that waits: ``rate`` per second on average, ``burst`` at once; ``rate=0`` never waits."""

    def __init__(self, rate: float, burst: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._bucket = tokenbucket.TokenBucket(max(1.0, burst), rate, updated=monotonic())
        self._monotonic = monotonic

    def delay(self) -> float:
        """Take a token: 0 if one was there, else how long to wait for it (the token is reserved)."""
        return self._bucket.reserve(self._monotonic())

    async def wait(self) -> None:
        delay = self.delay()
        if delay:
            await asyncio.sleep(delay)


class Recorder:
    def __init__(
        self,
        kube: client.Client,
        *,
        node_name: str,
        clock: Callable[[], datetime.datetime],
        concurrency: int = 8,
        qps: float = 50.0,
        burst: int = 100,
        backlog: int = 20000,
    ) -> None:
        self.kube = kube
        self.node_name = node_name
        self.clock = clock
        self._concurrency = concurrency
        self._pacer = Pacer(qps, burst)
        self._backlog = backlog
        # Waiting posts are kept as their events (about 1 KB each), not as a task each.
        self._waiting: collections.deque[tuple[_Posted, bool]] = collections.deque()  # (event, patch?)
        self._senders: set[asyncio.Task[None]] = set()
        self.dropped = 0
        self.spam_dropped = 0
        self.fenced = 0  # events not posted because this controller no longer held its node's Lease
        self._known: collections.OrderedDict[tuple[str, ...], _Posted] = collections.OrderedDict()
        self._spam: collections.OrderedDict[tuple[str, str], tokenbucket.TokenBucket] = collections.OrderedDict()
        self.monotonic = time.monotonic
        #: Whether posting is allowed now (the daemon's: it holds its node's Lease). Checked before each
        #: post, so that events queued before a freeze are not posted by a fenced controller after it.
        self.may_post: Callable[[], bool] = lambda: True

    def pod(
        self,
        pod: objects.Pod,
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        container: str = "",
        when: datetime.datetime | None = None,
    ) -> None:
        """Record an event about ``pod`` (in the background)."""
        if len(self._waiting) >= self._backlog:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("%d events dropped: more than %d waiting to be posted", self.dropped, self._backlog)
            return
        meta = pod.metadata
        stamp = (when or self.clock()).astimezone(datetime.UTC)
        if not self._allowed(meta.namespace, meta.uid):
            return
        key = (meta.namespace, meta.uid, type, reason, message, container)
        known = self._known.get(key)
        if known is not None:  # a repeat: the same Event, counted
            self._known.move_to_end(key)
            known.count += 1
            known.last = stamp
            if known.sending and not known.patch_waiting:  # else the waiting create or patch carries it
                known.patch_waiting = True
                self._enqueue(known, patch=True)
            return
        name = f"{meta.name}.{secrets.token_hex(8)}"
        posted = _Posted(meta.namespace, name, meta.name, meta.uid, container, reason, message, type, stamp, stamp)
        self._known[key] = posted
        if len(self._known) > MAX_EVENTS:
            self._known.popitem(last=False)
        self._enqueue(posted)

    def _allowed(self, namespace: str, uid: str) -> bool:
        """client-go's spam filter: a burst per pod, then one event per ``SPAM_PERIOD``."""
        bucket = self._spam.get((namespace, uid))
        if bucket is None:
            bucket = self._spam[(namespace, uid)] = tokenbucket.TokenBucket(SPAM_BURST, 1 / SPAM_PERIOD)
            if len(self._spam) > MAX_EVENTS:
                self._spam.popitem(last=False)
        else:
            self._spam.move_to_end((namespace, uid))
        if bucket.take(self.monotonic()):
            return True
        self.spam_dropped += 1
        return False

    def _enqueue(self, posted: _Posted, *, patch: bool = False) -> None:
        self._waiting.append((posted, patch))
        if len(self._senders) < min(self._concurrency, len(self._waiting)):
            task = asyncio.create_task(self._send())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    def post(self, pod: objects.Pod, event: Event) -> None:
        """Record ``event`` about ``pod`` (in the background)."""
        self.pod(pod, event.reason, event.message, type=event.type, container=event.container, when=event.when)

    async def _send(self) -> None:
        """Post waiting events, paced, until none is left (then the sender ends; the next event starts one)."""
        while self._waiting:
            await self._pacer.wait()
            if not self._waiting:
                return
            posted, patch = self._waiting.popleft()
            if not self.may_post():
                self.fenced += 1
                posted.created()
                continue
            try:
                if patch:
                    await posted.after_create()  # its create, by another sender, comes first
                    posted.patch_waiting = False  # a repeat from now on needs a patch of its own
                    change = {"count": posted.count, "lastTimestamp": _stamp(posted.last)}
                    await api.patch_event(self.kube, posted.namespace, posted.name, change)
                else:
                    posted.sending = True
                    await api.create_event(self.kube, posted.namespace, posted.body(self.node_name))
            except errors.ApiError as exc:
                log.debug("event %s not recorded: %s", posted.reason, exc)
            finally:
                posted.created()

    async def drain(self) -> None:
        """Wait for the events already recorded to be posted."""
        while self._senders:
            await asyncio.gather(*list(self._senders), return_exceptions=True)


@dataclasses.dataclass(slots=True)
class _Posted:
    """One Event, as first posted, with its repeats counted.

    Kept as its fields, its body built only as it is sent: thousands wait for their pace in a burst,
    and a body's four dicts and two formatted times were about 1 KB each (3,000 pods' events were
    17 MiB of a node's memory at its peak). The wait for its create is made only when a patch needs
    it: an asyncio.Event each (with its deque, about 700 bytes) was 3.5 MB more."""

    namespace: str
    name: str  # the Event's own name
    pod: str
    uid: str
    container: str
    reason: str
    message: str
    type: str
    first: datetime.datetime
    last: datetime.datetime
    count: int = 1
    sending: bool = False  # its create has left: a repeat now needs a patch
    patch_waiting: bool = False  # a patch is queued: later repeats ride on it
    _done: bool = False  # its create is done (or given up)
    _waiting: asyncio.Event | None = None  # a patch waiting for the create

    def body(self, node_name: str) -> dict[str, Any]:
        """The Event to create, as it stands now."""
        involved: dict[str, Any] = {
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": self.namespace,
            "name": self.pod,
            "uid": self.uid,
        }
        if self.container:
            involved["fieldPath"] = f"spec.containers{{{self.container}}}"
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "involvedObject": involved,
            "reason": self.reason,
            "message": self.message,
            "type": self.type,
            "source": {"component": "vnode", "host": node_name},
            "reportingComponent": "vnode",
            "reportingInstance": node_name,
            "firstTimestamp": _stamp(self.first),
            "lastTimestamp": _stamp(self.last),
            "count": self.count,
        }

    def created(self) -> None:
        self._done = True
        if self._waiting is not None:
            self._waiting.set()

    async def after_create(self) -> None:
        if not self._done:
            if self._waiting is None:
                self._waiting = asyncio.Event()
            await self._waiting.wait()


def _stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
