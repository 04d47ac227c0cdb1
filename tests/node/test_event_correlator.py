"""Events as client-go's correlator records the kubelet's, against the real API server: a repeat
patches the first Event's count, whether it comes before or after that Event was posted; past a
burst of 25 per pod, the spam filter drops events (one more per 5 minutes)."""

from __future__ import annotations

import asyncio
import datetime
import secrets
from typing import Any

import pytest
from kubernetes import client as k8s

from vnode.kube import client, objects
from vnode.node import events

pytestmark = pytest.mark.cluster


def _pod(namespace: str, name: str) -> objects.Pod:
    return objects.Pod(metadata=objects.ObjectMeta(name=name, namespace=namespace, uid=secrets.token_hex(8)))


async def _listed(core: k8s.CoreV1Api, namespace: str, name: str) -> list[Any]:
    found = await asyncio.to_thread(core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={name}")
    return list(found.items)


async def test_repeats_are_one_event_with_a_count_and_the_spam_filter_drops_past_the_burst(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str
) -> None:
    now = datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)
    recorder = events.Recorder(kube, node_name="vn-events", clock=lambda: now, qps=0)
    recorder.monotonic = lambda: 1000.0  # no refill of the spam filter's bucket during the test
    pulled = _pod(namespace, "pulls")
    for _ in range(5):  # before the first is posted: it carries the count
        recorder.pod(pulled, "BackOff", 'Back-off pulling image "nope"', type="Warning")
    await recorder.drain()
    for _ in range(3):  # after it was posted: patched
        recorder.pod(pulled, "BackOff", 'Back-off pulling image "nope"', type="Warning")
    recorder.pod(pulled, "Failed", 'Failed to pull image "nope"', type="Warning")  # another message: its own
    await recorder.drain()
    listed = {e.reason: e for e in await _listed(core, namespace, "pulls")}
    assert set(listed) == {"BackOff", "Failed"}
    assert (listed["BackOff"].count, listed["Failed"].count) == (8, 1)

    chatty = _pod(namespace, "chatty")
    for n in range(40):
        recorder.pod(chatty, f"Reason{n}", "distinct")
    await recorder.drain()
    assert len(await _listed(core, namespace, "chatty")) == events.SPAM_BURST
    assert recorder.spam_dropped == 40 - events.SPAM_BURST


async def test_a_fenced_recorder_posts_nothing_not_even_what_it_queued_before(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str
) -> None:
    """The soak: a daemon frozen past its Lease, resumed, posted the Events it had queued before the
    freeze. The recorder asks before each post whether its controller still holds the Lease."""
    now = datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)
    holds = [True]
    recorder = events.Recorder(kube, node_name="vn-fenced", clock=lambda: now, qps=0.5, burst=1)
    recorder.may_post = lambda: holds[0]
    pod = _pod(namespace, "fenced")
    for n in range(3):  # one goes at once, the others wait for the pacer
        recorder.pod(pod, f"Reason{n}", "queued")
    await asyncio.sleep(0.1)
    holds[0] = False  # the Lease is lost while they wait
    await recorder.drain()
    assert [e.reason for e in await _listed(core, namespace, "fenced")] == ["Reason0"]
    assert recorder.fenced == 2
