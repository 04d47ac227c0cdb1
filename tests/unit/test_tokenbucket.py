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
    assert turns.take("a", "ECI CreateContainerGroup", now=0.0) == 0.0
    assert turns.take("b", "ECI CreateContainerGroup", now=0.0) == 0.0
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
    assert turns.take("first", "delete", now=0.0) == 0.0
    for key in ("a", "b", "c"):
        with pytest.raises(errors.ClientThrottled):
            turns.take(key, "delete", now=0.0)
    with pytest.raises(errors.ClientThrottled) as early:
        turns.take("b", "delete", now=0.1)
    assert early.value.retry_after == pytest.approx(0.1), "too early: still its own turn, not a new one"
    assert turns.take("b", "delete", now=0.2) == 0.0
    assert turns.take("a", "delete", now=0.2) == 0.0, "late: its turn waited for it"
    assert turns.take("c", "delete", patience=0.1, now=0.25) == pytest.approx(0.05)
    assert not turns.due
    with pytest.raises(errors.ClientThrottled) as newcomer:
        turns.take("d", "delete", now=0.3)
    assert newcomer.value.retry_after == pytest.approx(0.1), "behind the turns handed out before"


def test_a_turn_nobody_comes_for_is_given_back() -> None:
    turns = tokenbucket.Turns(tokenbucket.TokenBucket(1, 1.0), hold=1.0)
    assert turns.take("a", "delete", now=0.0) == 0.0
    for key in ("gone", "x", "y"):  # turns at 1, 2 and 3; the pod of "gone" is deleted and never comes back
        with pytest.raises(errors.ClientThrottled):
            turns.take(key, "delete", now=0.0)
    with pytest.raises(errors.ClientThrottled) as caught:
        turns.take("z", "delete", now=2.5)
    assert "gone" not in turns.due
    assert caught.value.retry_after == pytest.approx(0.5), "the unused turn's token went to the next newcomer"


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
