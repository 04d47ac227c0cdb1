"""The kubelet API's review cache is bounded: a flood of distinct tokens cannot grow the daemon's memory."""

from __future__ import annotations

import datetime

from vnode.kubelet import auth


class Clock:
    def __init__(self) -> None:
        self.at = 0.0

    def monotonic(self) -> float:
        return self.at

    def now(self) -> datetime.datetime:
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_the_cache_never_holds_more_than_its_bound_and_entries_expire() -> None:
    clock = Clock()
    cache = auth._Cache(clock)  # type: ignore[arg-type]
    for n in range(25_000):
        cache.put(("token", n), n, ttl=120)
        assert len(cache._items) <= 10_001
    assert cache.get(("token", 24_999)) == (True, 24_999)
    clock.at = 121
    assert cache.get(("token", 24_999)) == (False, None), "expired: asked again"
