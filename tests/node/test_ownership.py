"""Two controllers claiming one node: only the holder of the node's Lease acts, the other stands by."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable

import pytest

from vnode import errors
from vnode.kube import client, extra
from vnode.node import ownership

pytestmark = pytest.mark.cluster


@pytest.fixture
async def node(kube: client.Client) -> AsyncIterator[str]:
    """A node name whose Lease is deleted afterwards (no Node object is needed for the lock)."""
    name = f"owner-{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        with contextlib.suppress(errors.NotFound):
            await kube.delete(extra.lease_path(name))


def claimant(kube: client.Client, node: str, identity: str) -> ownership.Ownership:
    return ownership.Ownership(kube, node, identity=identity, lease_duration=3, renew_interval=1, retry_interval=0.2)


@contextlib.asynccontextmanager
async def running(*claims: ownership.Ownership) -> AsyncIterator[dict[str, asyncio.Task[None]]]:
    tasks = {c.identity: asyncio.create_task(c.run()) for c in claims}
    try:
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in claims)), timeout=10)
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def watch_exclusive(claims: tuple[ownership.Ownership, ...], until: Callable[[], bool], within: float) -> None:
    """Sample ``holds()`` of every claimant until ``until()``: never two owners at once."""
    deadline = time.monotonic() + within
    while not until():
        owners = [c.identity for c in claims if c.holds()]
        assert len(owners) <= 1, f"two owners at once: {owners}"
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_one_of_two_claimants_acts_and_the_other_takes_over_when_its_lease_expires(
    kube: client.Client, node: str
) -> None:
    a, b = claimant(kube, node, "pod-a_uid-1"), claimant(kube, node, "pod-b_uid-2")
    async with running(a, b) as tasks:
        await watch_exclusive((a, b), lambda: a.holds() or b.holds(), within=10)
        first, second = (a, b) if a.holds() else (b, a)
        lease = await extra.get_lease(kube, node)
        assert lease.spec.holder_identity == first.identity
        assert second.ready.is_set()
        assert not second.holds(), "the second claimant stands by"

        # The holder dies without a word (kill -9): the other waits out the lease, then takes over.
        tasks[first.identity].cancel()
        died = time.monotonic()
        await watch_exclusive((a, b), second.holds, within=15)
        assert time.monotonic() - died >= 1, "not before the lease could have expired"
        lease = await extra.get_lease(kube, node)
        assert lease.spec.holder_identity == second.identity
        assert lease.spec.lease_transitions == 1


async def test_a_clean_release_hands_over_at_once_and_a_restart_in_the_same_pod_reclaims(
    kube: client.Client, node: str
) -> None:
    a = claimant(kube, node, "pod-a_uid-1")
    assert await a.try_acquire()
    restarted = claimant(kube, node, "pod-a_uid-1")  # the same pod, its container restarted
    assert await restarted.try_acquire(), "its own lease is reclaimed without waiting"

    b = claimant(kube, node, "pod-b_uid-2")
    assert not await b.try_acquire()
    assert b.holder == "pod-a_uid-1"
    before = await extra.get_lease(kube, node)
    await restarted.release()
    assert not restarted.holds()
    # The node lifecycle controller only trusts a lease write that moves renewTime forward.
    after = await extra.get_lease(kube, node)
    renewed_before, renewed_after = ownership._epoch(before.spec.renew_time), ownership._epoch(after.spec.renew_time)
    assert after.spec.holder_identity is None
    assert renewed_before is not None
    assert renewed_after is not None
    assert renewed_after > renewed_before
    assert await b.try_acquire(), "a released lease is free at once"
    assert not await a.try_acquire()
    assert not a.holds(), "the old holder learns it lost the lease"


async def test_the_holder_stops_acting_when_it_cannot_renew(kube: client.Client, node: str) -> None:
    now = [0.0]
    a = ownership.Ownership(kube, node, identity="pod-a_uid-1", lease_duration=3, renew_interval=1,
                            monotonic=lambda: now[0])  # fmt: skip
    assert await a.try_acquire()
    now[0] += 1.5
    assert a.holds()
    now[0] += 1.0  # 2.5 s without a renewal: past the renew deadline (3 - 1)
    assert not a.holds(), "stops acting before anyone else could take over"


async def test_a_renewal_is_one_request_and_a_stale_one_fails_then_reads(kube: client.Client, node: str) -> None:
    """The holder renews with one compare-and-swap on the version of its own last write (a GET before
    each PATCH was half of every idle node's requests); once someone else wrote the Lease, the swap
    fails, the claimant reads, and stands by while the other's lease is valid."""
    a = ownership.Ownership(kube, node, identity="pod-a_uid-1", lease_duration=30, renew_interval=1)
    requests: list[str] = []
    for method in ("get", "patch", "create"):
        real = getattr(kube, method)

        def counted(*args: object, _real: Callable[..., object] = real, _method: str = method, **kw: object) -> object:
            requests.append(_method)
            return _real(*args, **kw)

        setattr(kube, method, counted)
    assert await a.try_acquire()
    assert requests == ["get", "create"]
    requests.clear()
    for _ in range(3):
        assert await a.try_acquire()
    assert requests == ["patch"] * 3, "each renewal: one request"
    lease = await extra.get_lease(kube, node)
    taken = {
        "holderIdentity": "pod-b_uid-2",
        "leaseDurationSeconds": 30,
        "renewTime": ownership._micro_time(time.time()),
    }
    await extra.replace_lease(kube, node, lease.metadata.resource_version or "", taken)
    requests.clear()
    assert not await a.try_acquire(), "the swap on a stale version fails: someone else holds it now"
    assert requests == ["patch", "get"]
    assert not a.holds()
    assert a.holder == "pod-b_uid-2"
