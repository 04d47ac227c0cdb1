"""The node's wait for the API server to catch up with new pods (``catchup.Gate``): nothing while it
keeps up; in a burst about one TokenRequest per pod, and a wait of about the lag, where asking for
each pod on its own cost one refused request or more per pod."""

from __future__ import annotations

import heapq
import json
import random
from typing import Any

import pytest

from tests.unit.test_tokens import GRAPH_NOT_YET, NO_ACCOUNT, POD_NOT_YET, Clock, Kube, Refusing, pod
from vnode import errors
from vnode.kube import client
from vnode.node import catchup, queue, spec, tokens

REFUSED = errors.NotFound('pod "web" not found', kind="pod")


def test_while_the_api_server_keeps_up_every_pod_asks_at_once_and_nothing_is_remembered() -> None:
    clock = Clock()
    gate = catchup.Gate(monotonic=clock)
    for n in range(100):
        assert gate.enter(f"uid-{n}") == clock.now
        gate.answered(f"uid-{n}")
    assert gate.lag == 0
    assert gate.footprint == 0


def test_after_a_refusal_new_pods_wait_the_estimate_and_once_answers_come_ask_at_once_again() -> None:
    clock = Clock()
    gate = catchup.Gate(monotonic=clock)
    sent = gate.enter("a")
    held = gate.refused("a", sent, REFUSED)
    assert held.code == catchup.NOT_YET_KNOWN
    assert held.retry_after == pytest.approx(catchup.FIRST)
    assert "not found" in held.message  # the API server's own words
    with pytest.raises(errors.Unavailable) as raised:
        gate.enter("b")  # a new pod: held for the estimate, not refused by the API server
    assert raised.value.retry_after == pytest.approx(catchup.FIRST)
    clock.now += catchup.FIRST
    for uid in ("a", "b"):
        gate.enter(uid)
        gate.answered(uid)
    answers = 0
    while gate.lag > 0:  # each answer lowers the estimate: the gate opens again
        with pytest.raises(errors.Unavailable):
            gate.enter(f"c{answers}")
        clock.now += gate.lag
        gate.enter(f"c{answers}")
        gate.answered(f"c{answers}")
        answers += 1
    assert answers < 120  # from FIRST to FLOOR: log(3) / -log(SHRINK) answers
    assert gate.enter("d") == clock.now
    assert gate.footprint == 0


def test_the_requests_in_flight_when_the_lag_grew_raise_the_estimate_once() -> None:
    clock = Clock()
    gate = catchup.Gate(monotonic=clock)
    sent = [gate.enter(f"p{n}") for n in range(20)]
    clock.now += 0.01
    for n, at in enumerate(sent):
        gate.refused(f"p{n}", at, REFUSED)
    assert gate.lag == pytest.approx(catchup.FIRST)  # not FIRST * GROW**19
    clock.now += catchup.FIRST
    again = gate.enter("p0")  # sent after the raise: its refusal raises the estimate again
    gate.refused("p0", again, REFUSED)
    assert gate.lag == pytest.approx(catchup.FIRST * catchup.START_GROW)  # faster until an answer comes
    clock.now += gate.lag
    gate.enter("p1")
    gate.answered("p1")
    clock.now += gate.lag
    again = gate.enter("p0")
    gate.refused("p0", again, REFUSED)
    assert gate.lag == pytest.approx(catchup.FIRST * catchup.START_GROW * catchup.SHRINK * catchup.GROW)


def test_a_held_pod_looks_again_against_the_estimate_then() -> None:
    clock = Clock()
    gate = catchup.Gate(monotonic=clock)
    gate.lag = 1.0
    with pytest.raises(errors.Unavailable):
        gate.enter("new")
    gate.lag = 3.0  # raised by another pod's refusal meanwhile
    clock.now += 1.0
    with pytest.raises(errors.Unavailable) as raised:
        gate.enter("new")
    assert raised.value.retry_after == pytest.approx(2.0)
    clock.now += 2.0
    gate.enter("new")


def test_a_pod_that_fails_otherwise_or_is_never_answered_is_forgotten() -> None:
    clock = Clock()
    gate = catchup.Gate(monotonic=clock)
    gate.lag = 5.0
    for n in range(catchup.PRUNE_EVERY - 1):
        with pytest.raises(errors.Unavailable):
            gate.enter(f"gone-{n}")  # held, then deleted: never asks again
    gate.left("gone-0")
    assert gate.footprint == catchup.PRUNE_EVERY - 2
    clock.now += 3 * catchup.MAX_LAG
    with pytest.raises(errors.Unavailable):
        gate.enter("new")
    assert gate.footprint == 1


class Lagging(Kube):
    """An API server whose own watch learns of each pod ``lag`` seconds after the daemon's does."""

    def __init__(self, clock: Clock, lag: float, arrivals: dict[str, float], answer: dict[str, Any]) -> None:
        super().__init__(clock, 3607)
        self.lag, self.arrivals, self.answer = lag, arrivals, answer
        self.asked = 0

    async def create(self, path: str, body: Any) -> bytes:
        self.asked += 1
        uid = body["spec"]["boundObjectRef"]["uid"]
        if self.clock.now < self.arrivals[uid] + self.lag:
            status = self.answer["code"]
            raise client._error(status, json.dumps(self.answer).encode(), {}, f"POST {path}")
        return await super().create(path, body)


async def burst(
    gated: bool, answer: dict[str, Any], pods: int = 1000, rate: float = 50.0, lag: float = 2.0
) -> tuple[float, float, catchup.Gate | None]:
    """``pods`` new pods at ``rate`` a second, each asking for its token as the pod queue's worker
    would (a hold is a turn, any other retryable error a backoff): requests per pod, and the mean wait
    beyond the lag."""
    clock = Clock()
    start = clock.now
    arrivals = {f"uid-{n}": start + n / rate for n in range(pods)}
    kube = Lagging(clock, lag, arrivals, answer)
    gate = catchup.Gate(monotonic=clock) if gated else None
    backoff = queue.Backoff(rng=random.Random(7))
    rng = random.Random(7)
    due = [(at, uid) for uid, at in arrivals.items()]
    failures: dict[str, int] = {}
    waited = 0.0
    while due:
        clock.now, uid = heapq.heappop(due)
        try:
            await tokens.request(kube, pod(uid=uid), "", 3607, gate=gate, monotonic=clock)  # type: ignore[arg-type]
        except errors.Unavailable as exc:
            failures[uid] = failures.get(uid, 0) + 1
            if exc.code == catchup.NOT_YET_KNOWN and exc.retry_after:
                delay = exc.retry_after * (1.0 + rng.random() / 10)  # queue.turn
            else:
                delay = backoff.delay(failures[uid], exc.retry_after)  # queue.retry
            heapq.heappush(due, (clock.now + delay, uid))
            continue
        waited += clock.now - (arrivals[uid] + lag)
    return kube.asked / pods, waited / pods, gate


@pytest.mark.parametrize("answer", [POD_NOT_YET, GRAPH_NOT_YET], ids=["pod-not-found", "no-relationship"])
async def test_in_a_burst_each_pod_costs_about_one_request_and_waits_about_the_lag(answer: dict[str, Any]) -> None:
    alone, alone_waited, _ = await burst(False, answer)
    gated, gated_waited, gate = await burst(True, answer)
    assert alone > 1.9  # every pod refused at least once, most several times
    assert gated < 1.1
    assert gated_waited < min(alone_waited, 1.0)  # seconds beyond the lag, on average
    assert gate is not None
    assert gate.footprint == 0


async def test_without_the_node_gate_a_refusal_for_the_lag_is_retryable_not_a_missing_account() -> None:
    clock = Clock()
    kube = Lagging(clock, 1.0, {"uid-1": clock.now}, POD_NOT_YET)
    with pytest.raises(errors.Unavailable) as raised:
        await tokens.request(kube, pod(), "", 600)  # type: ignore[arg-type]
    assert raised.value.code == catchup.NOT_YET_KNOWN


async def test_a_missing_account_is_still_missing_with_the_gate_and_leaves_nothing_in_it() -> None:
    gate = catchup.Gate(monotonic=Clock())
    gate.lag = 0.0
    with pytest.raises(spec.Missing):
        await tokens.request(Refusing(404, NO_ACCOUNT), pod(), "", 600, gate=gate)  # type: ignore[arg-type]
    assert gate.footprint == 0
    assert gate.lag == 0
