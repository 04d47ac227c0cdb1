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


def test_take_or_throttle_raises_throttled_with_the_time_to_the_next_token() -> None:
    bucket = tokenbucket.TokenBucket(2, 4.0)
    bucket.take_or_throttle("ECI CreateContainerGroup", now=0.0)
    bucket.take_or_throttle("ECI CreateContainerGroup", now=0.0)
    with pytest.raises(errors.Throttled) as caught:
        bucket.take_or_throttle("ECI CreateContainerGroup", now=0.0)
    assert caught.value.code == "Throttling.Client"
    assert caught.value.retry_after == pytest.approx(0.25)
    assert str(caught.value) == "ECI CreateContainerGroup: client-side rate limit"
    bucket.take_or_throttle("ECI CreateContainerGroup", now=0.25)


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
