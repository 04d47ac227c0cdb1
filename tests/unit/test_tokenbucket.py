"""The one token bucket (vnode/tokenbucket.py): the simulated cloud's throttle, a client's limit, the event pacer."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from vnode import errors, tokenbucket
from vnode.node import queue


def test_token_bucket_bursts_then_refills_at_its_rate() -> None:
    bucket = tokenbucket.TokenBucket(burst=100, rate=20)
    assert sum(bucket.take(0.0) for _ in range(150)) == 100
    assert sum(bucket.take(1.0) for _ in range(50)) == 20
    assert sum(bucket.take(100.0) for _ in range(200)) == 100  # never more than the burst


def test_a_clock_going_back_neither_refills_nor_moves_the_count_back() -> None:
    bucket = tokenbucket.TokenBucket(burst=2, rate=1)
    assert bucket.take(10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


async def test_acquire_waits_its_turn_first_come_first_served() -> None:
    """300 callers at once against a bucket of 10 and 2,000/s: none is refused, each waits in the line
    for its token, in the order asked. The bucket used to answer "throttled, next token in 50 ms" to
    every one of them, and each pod's key backed off alone, up to 60 s (the soak's ramp: a create
    waited 4 minutes while tokens went unused). In the daemon only drains and orphan collection wait."""
    bucket = tokenbucket.TokenBucket(burst=10, rate=2000.0)
    order: list[int] = []

    async def caller(n: int) -> float:
        waited = await bucket.acquire("ECI CreateContainerGroup")
        order.append(n)
        return waited

    waits = await asyncio.wait_for(asyncio.gather(*(caller(n) for n in range(300))), timeout=30)
    assert waits[:10] == [0.0] * 10
    assert order == list(range(300)), "first come, first served"
    assert not bucket.line
    assert not bucket.tickets


async def test_a_wait_in_line_follows_the_rate_as_it_climbs_back() -> None:
    """A drain's delete that began to wait while the bucket was at its floor is served at the rate it
    climbs back to, not at the wait reckoned then (the floor's rate: 50 deletes ahead, 50 s)."""
    bucket = tokenbucket.TokenBucket(burst=1, rate=1.0, updated=time.monotonic(), tokens=0.0)
    waiting = [asyncio.ensure_future(bucket.acquire("ECI DeleteContainerGroup")) for _ in range(50)]
    await asyncio.sleep(0)
    assert len(bucket.line) == 50
    bucket.rate = 1000.0  # climbed back
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=10)


async def test_acquire_refuses_a_turn_beyond_max_wait_and_takes_nothing() -> None:
    bucket = tokenbucket.TokenBucket(burst=1, rate=0.5, updated=time.monotonic())
    assert await bucket.acquire("ECI CreateContainerGroup") == 0.0
    with pytest.raises(errors.Throttled) as caught:
        await bucket.acquire("ECI CreateContainerGroup", max_wait=1.0)
    assert caught.value.code == "Throttling.Client"
    assert caught.value.retry_after == pytest.approx(2.0, abs=0.1)
    assert str(caught.value) == "ECI CreateContainerGroup: client-side rate limit"
    assert bucket.tokens == pytest.approx(0.0, abs=0.1), "the refused turn took no token"
    never = tokenbucket.TokenBucket(burst=1, rate=0.0)
    assert await never.acquire("ACI PUT containerGroups") == 0.0
    with pytest.raises(errors.Throttled):
        await never.acquire("ACI PUT containerGroups", max_wait=5.0)
    assert never.tokens == 0.0


async def test_a_caller_cancelled_while_waiting_leaves_the_line_and_takes_nothing() -> None:
    bucket = tokenbucket.TokenBucket(burst=1, rate=0.05, updated=time.monotonic())
    await bucket.acquire("ECI DeleteContainerGroup")
    waiting = asyncio.ensure_future(bucket.acquire("ECI DeleteContainerGroup"))
    await asyncio.sleep(0)
    assert len(bucket.line) == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not bucket.line
    assert not bucket.tickets
    assert bucket.tokens == pytest.approx(0.0, abs=0.01)


def test_reserve_takes_on_credit_and_says_how_long_to_wait() -> None:
    bucket = tokenbucket.TokenBucket(burst=2, rate=10.0)
    assert [bucket.reserve(0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.reserve(0.0) == pytest.approx(0.1)
    assert bucket.reserve(0.0) == pytest.approx(0.2)  # the one before it is reserved
    assert tokenbucket.TokenBucket(burst=1, rate=0.0).reserve(0.0) == 0.0  # rate 0: unpaced


def test_an_adaptive_bucket_halves_its_rate_when_the_server_throttles_and_climbs_back_on_success() -> None:
    bucket = tokenbucket.TokenBucket(burst=100, rate=20.0, ceiling=20.0)
    assert sum(bucket.take(0.0) for _ in range(10)) == 10
    bucket.slow_down(0.0)
    assert bucket.rate == 10.0
    assert not bucket.take(0.0), "emptied: the replicas sharing the account pause together"
    for n in range(10):
        bucket.slow_down(1.0 + n)
    assert bucket.rate == 1.0, "never below a twentieth of the ceiling"
    bucket.speed_up(11.0)  # the last halving was at 10.0
    assert bucket.rate == 1.0 + 20.0 * tokenbucket.CLIMB, "a twentieth of the ceiling per second since"
    bucket.speed_up(11.0)
    assert bucket.rate == 1.0 + 20.0 * tokenbucket.CLIMB, "calls alone do not climb: time does"
    bucket.speed_up(100.0)
    assert bucket.rate == 20.0, "never above the ceiling"


def test_the_calls_refused_together_halve_the_rate_once() -> None:
    """32 calls in flight, all refused when the server begins to throttle: one halving, not 32 (the soak:
    the rate fell to its floor at once, and the drain's deletes were told their turn was minutes away)."""
    bucket = tokenbucket.TokenBucket(burst=100, rate=20.0, ceiling=20.0)
    for n in range(32):
        bucket.slow_down(5.0 + n / 100)
    assert bucket.rate == 10.0
    bucket.slow_down(6.0)
    assert bucket.rate == 5.0, "a second later, the server still refusing: halved again"


def test_a_plain_bucket_ignores_slow_down() -> None:
    bucket = tokenbucket.TokenBucket(burst=2, rate=4.0)
    bucket.slow_down(0.0)
    bucket.speed_up(5.0)
    assert (bucket.rate, bucket.tokens) == (4.0, 2.0)


def _share(seconds: float, demands: tuple[float, ...]) -> list[int]:
    """Replicas sharing one account (20 calls/s): each sends as fast as its own adaptive bucket lets
    it, up to its demand (calls/s); the account refuses what its bucket cannot take. The first
    replica always asks first when a token appears (its pacing in step with the account's refill,
    as a replica that took the account's whole rate is). Calls that went through, per replica."""
    account = tokenbucket.TokenBucket(burst=100, rate=20.0, tokens=0.0, updated=0.0)
    clients = [tokenbucket.TokenBucket(burst=100, rate=20.0, ceiling=20.0, updated=0.0) for _ in demands]
    owed = [0.0 for _ in demands]
    through = [0 for _ in demands]
    step, now = 0.01, 0.0
    while now < seconds:
        now += step
        for n, (client, demand) in enumerate(zip(clients, demands, strict=True)):
            owed[n] += demand * step
            while owed[n] >= 1 and client.take(now):
                owed[n] -= 1
                if account.take(now):
                    through[n] += 1
                    client.speed_up(now)
                else:
                    client.slow_down(now)
    return through


def test_a_replica_in_step_with_the_account_does_not_starve_another() -> None:
    """The soak: one replica served the whole workload while another drained its node, both with more
    deletes than the account allows; the first's rate stayed at the account's, the draining one's
    sat at its floor (1/s) for ten minutes. The climb back after a refusal is by time, not by calls
    that went through (which the winner of every race had more of), so both get a fair part."""
    first, second = _share(120.0, (200.0, 200.0))  # both with far more deletes than the account allows
    assert first + second >= 0.8 * 20 * 120, "the account is used"
    assert second >= 0.3 * (first + second), f"the second replica got {second} of {first + second}"


def test_take_or_queue_tells_each_caller_a_later_turn_and_they_come_back_in_time() -> None:
    """1,000 callers at once on a bucket of 100 and 20/s: 100 go through, the 900 others are told
    turns 1/20 s apart; coming back at their turns, each finds a token. Nothing waits in place, so a
    pod worker is free meanwhile (the soak: workers sleeping on creates left 3,805 pods Pending long
    after their instances ran)."""
    bucket = tokenbucket.TokenBucket(burst=100, rate=20.0, updated=0.0)
    turns, codes = [], set()
    for _ in range(1000):
        try:
            bucket.take_or_queue("ECI CreateContainerGroup", now=0.0)
        except errors.Throttled as refused:
            codes.add(refused.code)
            turns.append(refused.retry_after)
    assert codes == {tokenbucket.CLIENT_THROTTLED}
    assert len(turns) == 900
    assert turns == sorted(turns)
    assert turns[0] == pytest.approx(1 / 20)
    assert turns[-1] == pytest.approx(900 / 20)
    late = 0
    for turn in turns:
        try:
            bucket.take_or_queue("ECI CreateContainerGroup", now=float(turn) + 0.001)
        except errors.Throttled:
            late += 1
    assert late == 0, "every caller that came back at its turn found its token"


def test_a_turn_is_no_failure_for_the_queue() -> None:
    async def run() -> None:
        work = queue.WorkQueue(queue.Backoff(rng=random.Random(1)))
        delay = work.turn("ns/a", 2.0)
        assert 2.0 <= delay <= 2.2
        assert work.failures("ns/a") == 0, "no backoff grows from a wait for the account's rate"
        work.close()

    asyncio.run(run())


def _refuse(bucket: tokenbucket.TokenBucket, key: str, woken: list[str], now: float) -> float | None:
    """``key`` asks for a token as a pod worker does; the fallback hint if it was put in the line."""
    with tokenbucket.turns_for(key, woken.append):
        try:
            bucket.take_or_queue("ECI DeleteContainerGroup", now=now)
        except errors.Throttled as refused:
            code, hint = refused.code, refused.retry_after
        else:
            return None
    assert code == tokenbucket.CLIENT_THROTTLED
    return hint


def test_callers_refused_at_the_floor_are_served_at_the_rate_the_bucket_climbs_back_to() -> None:
    """The soak's teardown: the replicas' buckets had just halved to their floor (1/s of 20) on the cloud's
    throttling when 1,000 pods were deleted at once. Each refused caller was told its turn at the floor's
    rate (up to 900 s), kept it while the rate climbed back to 20/s in 19 s, and the tokens went unused:
    551 pods stuck Terminating, 30 instances leaked. In the line, each is woken when a token is there at
    the rate of that moment: the last of them within a minute (about 54 s: 199 tokens during the climb,
    then 20/s)."""
    bucket = tokenbucket.TokenBucket(burst=100, rate=20.0, ceiling=20.0, updated=0.0)
    for second in range(6):
        bucket.slow_down(now=float(second) + 0.5)
    assert bucket.rate == 1.0, "at the floor"
    woken: list[str] = []
    now = 6.0
    hints = [_refuse(bucket, f"soak-a/web-{i}", woken, now) for i in range(1000)]
    assert all(hint is not None for hint in hints), "the bucket was emptied: every one waits in line"
    served_at: dict[str, float] = {}
    while len(served_at) < 1000 and now < 1000:
        now += 0.5
        before = len(woken)
        bucket.dispense(now)
        for key in woken[before:]:
            served_at[key] = now
            assert _refuse(bucket, key, woken, now) is None, "a woken caller finds its token set aside"
            bucket.speed_up(now)  # the cloud accepted its call
    assert len(served_at) == 1000
    assert max(served_at.values()) - 6.0 <= 60.0, f"the last one waited {max(served_at.values()) - 6.0:.0f}s"
    assert list(served_at) == [f"soak-a/web-{i}" for i in range(1000)], "first come, first served"


def test_a_newcomer_queues_behind_the_line_and_a_caller_keeps_its_place() -> None:
    bucket = tokenbucket.TokenBucket(burst=1, rate=1.0, updated=0.0)
    woken: list[str] = []
    assert _refuse(bucket, "a", woken, 0.0) is None
    assert _refuse(bucket, "b", woken, 0.0) is not None
    assert _refuse(bucket, "c", woken, 0.1) is not None
    assert _refuse(bucket, "b", woken, 0.2) is not None, "b looked again early: still in line, in its place"
    assert list(bucket.line) == ["b", "c"]
    assert _refuse(bucket, "d", woken, 1.5) is not None, "a token is there, but b and c were first"
    bucket.dispense(1.5)
    assert woken == ["b"]
    with pytest.raises(errors.Throttled):
        bucket.take_or_queue("ECI DeleteContainerGroup", now=1.6)  # an anonymous caller does not jump the line
    assert _refuse(bucket, "b", woken, 1.6) is None


def test_a_token_set_aside_for_a_caller_that_never_comes_is_given_up() -> None:
    bucket = tokenbucket.TokenBucket(burst=1, rate=1.0, updated=0.0)
    woken: list[str] = []
    _refuse(bucket, "a", woken, 0.0)
    _refuse(bucket, "gone", woken, 0.0)
    bucket.dispense(1.0)
    assert woken == ["gone"]
    assert "gone" in bucket.tickets
    bucket.dispense(1.0 + tokenbucket.TICKET_SECONDS)
    assert not bucket.tickets, "its pod went away meanwhile: the ticket does not stay forever"


async def test_the_line_is_served_by_itself_on_the_event_loop() -> None:
    """No caller drives it: the bucket's own dispenser wakes each one in line as its token comes."""
    bucket = tokenbucket.TokenBucket(burst=1, rate=50.0)
    woken: list[str] = []
    all_woken = asyncio.Event()

    def wake(key: str) -> None:
        woken.append(key)
        if len(woken) == 5:
            all_woken.set()

    refused = 0
    for i in range(6):
        with tokenbucket.turns_for(f"k{i}", wake):
            try:
                bucket.take_or_queue("ACI PUT containerGroups")
            except errors.Throttled:
                refused += 1
    assert refused == 5
    await asyncio.wait_for(all_woken.wait(), timeout=10)
    assert woken == [f"k{i}" for i in range(1, 6)]
    assert not bucket.line
