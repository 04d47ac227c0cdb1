"""The one token bucket (vnode/tokenbucket.py): the simulated cloud's throttle, a client's limit, the event pacer."""

from __future__ import annotations

import pytest

from vnode import errors, tokenbucket


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


def test_turns_go_ahead_while_there_are_tokens_then_hand_out_turns_in_order() -> None:
    turns = tokenbucket.Turns(tokenbucket.TokenBucket(2, 4.0))
    turns.take("a", "ECI CreateContainerGroup", now=0.0)
    turns.take("b", "ECI CreateContainerGroup", now=0.0)
    waits = []
    for key in "cdef":
        with pytest.raises(errors.ClientThrottled) as caught:
            turns.take(key, "ECI CreateContainerGroup", now=0.0)
        assert caught.value.code == "Throttling.Client"
        assert str(caught.value).startswith("ECI CreateContainerGroup: client-side rate limit")
        waits.append(caught.value.retry_after)
    assert waits == pytest.approx([0.25, 0.5, 0.75, 1.0]), "first come, first served, one token apart"


def test_a_caller_back_at_its_turn_goes_ahead_without_another_token() -> None:
    """Found by the soak: 5,000 deletes at once, each retried into an empty bucket with a backoff growing
    with its bad luck; a pod deleted first waited 3.5 minutes behind pods deleted after it."""
    turns = tokenbucket.Turns(tokenbucket.TokenBucket(1, 10.0))
    turns.take("first", "delete", now=0.0)
    for key in ("a", "b", "c"):
        with pytest.raises(errors.ClientThrottled):
            turns.take(key, "delete", now=0.0)
    with pytest.raises(errors.ClientThrottled) as early:
        turns.take("b", "delete", now=0.1)
    assert early.value.retry_after == pytest.approx(0.1), "too early: still its own turn, not a new one"
    turns.take("b", "delete", now=0.2)
    turns.take("a", "delete", now=0.2)  # late: its turn waited for it
    turns.take("c", "delete", now=0.3)
    assert not turns.waiting
    with pytest.raises(errors.ClientThrottled) as newcomer:
        turns.take("d", "delete", now=0.3)
    assert newcomer.value.retry_after == pytest.approx(0.1), "behind the turns handed out before"


def test_waiting_turns_come_sooner_when_an_adaptive_bucket_climbs_back() -> None:
    """Found by the soak's second run: turns fixed at the rate of a slow-down (1/s) kept a dead replica's
    1,800 pods waiting for minutes after the rate was back at 20/s."""
    turns = tokenbucket.Turns(tokenbucket.TokenBucket(1, 20.0, ceiling=20.0))
    turns.take("a", "delete", now=0.0)
    for _ in range(5):
        turns.slow_down(now=0.0)
    assert turns.bucket.rate == 1.0
    waits = []
    for n in range(40):
        with pytest.raises(errors.ClientThrottled) as slow:
            turns.take(f"k{n}", "delete", now=0.0)
        waits.append(slow.value.retry_after)
    assert waits[-1] == pytest.approx(40.0), "40 tickets at 1/s"
    for _ in range(500):
        turns.speed_up()
    assert turns.bucket.rate == 20.0
    with pytest.raises(errors.ClientThrottled) as fast:
        turns.take("k39", "delete", now=0.5)
    assert fast.value.retry_after == pytest.approx((40 - 0.5 * 20) / 20), "its turn, at the rate now"
    turns.take("k39", "delete", now=2.0)


def test_no_more_than_the_burst_is_in_hand_and_forgotten_tickets_are_dropped() -> None:
    turns = tokenbucket.Turns(tokenbucket.TokenBucket(2, 1.0), forget_after=60.0)
    turns.take("a", "delete", now=0.0)
    turns.take("b", "delete", now=0.0)
    turns.take("c", "delete", now=1000.0)
    turns.take("d", "delete", now=1000.0)
    with pytest.raises(errors.ClientThrottled):
        turns.take("e", "delete", now=1000.0)  # two tokens in hand after a long calm, not a thousand
    assert "e" in turns.waiting
    turns.take("f", "delete", now=1100.0)
    assert "e" not in turns.waiting, "nobody came back for it in 60 s"


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
    for _ in range(10):
        bucket.slow_down(0.0)
    assert bucket.rate == 1.0, "never below a twentieth of the ceiling"
    for _ in range(500):
        bucket.speed_up()
    assert bucket.rate == 20.0, "never above the ceiling"


def test_a_plain_bucket_ignores_slow_down() -> None:
    bucket = tokenbucket.TokenBucket(burst=2, rate=4.0)
    bucket.slow_down(0.0)
    bucket.speed_up()
    assert (bucket.rate, bucket.tokens) == (4.0, 2.0)
