"""The reference cache: one read per object in flight, fresh for its TTL, absence cached, failures not."""

from __future__ import annotations

import asyncio

import pytest

from vnode.node import events, references


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """What ``fetch`` answers, with a gate that holds every read until the test opens it."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str, str], dict[str, bytes] | None] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def fetch(self, namespace: str, kind: str, name: str) -> dict[str, bytes] | None:
        self.calls.append((namespace, kind, name))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.data.get((namespace, kind, name))


async def test_concurrent_readers_of_one_object_share_one_read() -> None:
    source = Source()
    source.data["ns", "configmaps", "kube-root-ca.crt"] = {"ca.crt": b"pem"}
    source.gate.clear()
    cache = references.Cache(source.fetch, ttl=2.0, monotonic=Clock())
    readers = [asyncio.create_task(cache.get("ns", "configmaps", "kube-root-ca.crt")) for _ in range(64)]
    other = asyncio.create_task(cache.get("ns", "secrets", "s"))
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*readers) == [{"ca.crt": b"pem"}] * 64
    assert await other is None
    assert sorted(source.calls) == [("ns", "configmaps", "kube-root-ca.crt"), ("ns", "secrets", "s")]


async def test_an_entry_is_reused_for_its_ttl_then_read_again() -> None:
    source, clock = Source(), Clock()
    source.data["ns", "secrets", "s"] = {"k": b"1"}
    cache = references.Cache(source.fetch, ttl=2.0, monotonic=clock)
    assert await cache.get("ns", "secrets", "s") == {"k": b"1"}
    source.data["ns", "secrets", "s"] = {"k": b"2"}
    clock.now += 1.9
    assert await cache.get("ns", "secrets", "s") == {"k": b"1"}
    clock.now += 0.2
    assert await cache.get("ns", "secrets", "s") == {"k": b"2"}
    assert len(source.calls) == 2


async def test_a_missing_object_is_seen_once_it_exists_after_the_ttl() -> None:
    source, clock = Source(), Clock()
    cache = references.Cache(source.fetch, ttl=2.0, monotonic=clock)
    assert await cache.get("ns", "secrets", "late") is None
    source.data["ns", "secrets", "late"] = {"k": b"v"}
    assert await cache.get("ns", "secrets", "late") is None  # absence is cached too, for the TTL
    clock.now += 2.0
    assert await cache.get("ns", "secrets", "late") == {"k": b"v"}


async def test_a_failed_read_reaches_every_waiter_and_is_not_cached() -> None:
    source = Source()
    source.fail = RuntimeError("apiserver down")
    source.gate.clear()
    cache = references.Cache(source.fetch, ttl=2.0, monotonic=Clock())
    readers = [asyncio.create_task(cache.get("ns", "configmaps", "c")) for _ in range(3)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    source.fail = None
    source.data["ns", "configmaps", "c"] = {}
    assert await cache.get("ns", "configmaps", "c") == {}
    assert len(source.calls) == 2


async def test_a_cancelled_reader_does_not_cancel_the_read_for_the_others() -> None:
    source = Source()
    source.data["ns", "configmaps", "c"] = {"a": b"b"}
    source.gate.clear()
    cache = references.Cache(source.fetch, ttl=2.0, monotonic=Clock())
    first = asyncio.create_task(cache.get("ns", "configmaps", "c"))
    second = asyncio.create_task(cache.get("ns", "configmaps", "c"))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    source.gate.set()
    assert await second == {"a": b"b"}
    assert len(source.calls) == 1


def test_the_event_pacer_lets_a_burst_through_then_spaces_tokens_at_its_rate() -> None:
    clock = Clock()
    pacer = events.Pacer(rate=50.0, burst=100, monotonic=clock)
    assert [pacer.delay() for _ in range(100)] == [0.0] * 100
    assert pacer.delay() == pytest.approx(0.02)
    assert pacer.delay() == pytest.approx(0.04)  # the one before it is reserved
    clock.now += 1.0  # 50 tokens back, two of them owed
    assert [pacer.delay() for _ in range(48)] == [0.0] * 48
    assert pacer.delay() == pytest.approx(0.02)
    assert events.Pacer(rate=0.0, burst=1, monotonic=clock).delay() == 0.0
