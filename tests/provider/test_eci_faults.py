"""The ECI provider under the cloud's throttling, 5xx storms, an unreachable endpoint and refused keys."""

from __future__ import annotations

import asyncio

import pytest

from tests.cloudsim.conftest import Sim
from tests.provider.eci_fixtures import NODE_TAGS, eci_settings, spec
from vnode import errors
from vnode.provider.eci import provider as eci


async def test_cloud_throttling_is_throttled_with_a_retry_hint(sim: Sim) -> None:
    provider = eci.EciProvider(eci_settings(sim), create_limit=None)
    try:
        status, body = sim.admin("PUT", "rate-limits/create", {"burst": 1, "rate": 0})
        assert status == 200, body
        await provider.create(spec("a"))
        with pytest.raises(errors.Throttled) as caught:
            await provider.create(spec("b"))
        assert caught.value.code == "Throttling.User"
        assert caught.value.retry_after
    finally:
        await provider.close()


async def test_creates_beyond_the_client_side_burst_wait_their_turn_and_none_is_refused(sim: Sim) -> None:
    """Forty creates at once through a bucket of 5 and 50/s: each waits for its token, none raises and
    the cloud refuses none. The bucket used to answer the 35 beyond the burst "throttled, next token in
    20 ms" at once, and the pod keys backed off alone, for minutes at the soak's scale."""
    provider = eci.EciProvider(eci_settings(sim), create_limit=(5, 50.0))
    try:
        refused = sim.totals()["refused_by_limits"].get("create", 0)
        states = await asyncio.gather(*(provider.create(spec(f"turn-{i}")) for i in range(40)))
        assert len({s.id for s in states}) == 40
        assert sim.totals()["live"] == 40
        assert sim.totals()["refused_by_limits"].get("create", 0) == refused
    finally:
        await provider.close()


async def test_replicas_sharing_the_account_slow_down_when_the_cloud_throttles_them(sim: Sim) -> None:
    """Each replica's bucket allows the account's whole rate; the cloud's Throttling answers halve it
    (found by the soak: three replicas' deletes at 3x the account's rate, 41 % refused)."""
    provider = eci.EciProvider(eci_settings(sim), create_limit=(100, 20.0))
    try:
        status, body = sim.admin("PUT", "rate-limits/create", {"burst": 2, "rate": 0})
        assert status == 200, body
        bucket = provider._buckets["create"]
        refused = sim.totals()["refused_by_limits"].get("create", 0)
        await provider.create(spec("a"))
        await provider.create(spec("b"))
        assert bucket.rate == 20.0
        with pytest.raises(errors.Throttled) as caught:
            await provider.create(spec("c"))
        assert caught.value.code == "Throttling.User"
        assert bucket.rate == 10.0
        assert bucket.tokens <= 0, "emptied: the replicas sharing the account pause together"
        with pytest.raises(errors.Throttled) as caught:
            await provider.create(spec("d"))  # its turn comes a tenth of a second later
        assert caught.value.code == "Throttling.User"
        assert bucket.rate == 10.0, "refused within the second: the rate halves once a second at most"
        assert sim.totals()["refused_by_limits"]["create"] == refused + 2
    finally:
        await provider.close()


async def test_a_5xx_storm_is_unavailable_and_the_retry_makes_no_duplicate(sim: Sim, provider: eci.EciProvider) -> None:
    status, body = sim.admin("PUT", "faults/create", {"error_rate": 1.0, "error_status": 503})
    assert status == 200, body
    for _ in range(3):
        with pytest.raises(errors.Unavailable):
            await provider.create(spec("storm"))
    for operation in ("status", "describe"):
        status, body = sim.admin("PUT", f"faults/{operation}", {"error_rate": 1.0, "error_status": 500})
        assert status == 200, body
        with pytest.raises(errors.Unavailable):
            await provider.list(NODE_TAGS)
        if operation == "status":  # the status feed answers again; describing the new instance fails
            sim.admin("DELETE", "faults/status")
            sim.admin("DELETE", "faults/create")
            await provider.create(spec("early", token="uid-early"))
    sim.admin("DELETE", "faults")
    first = await provider.create(spec("storm"))
    second = await provider.create(spec("storm"))
    assert first.id == second.id
    assert len(await provider.list(NODE_TAGS)) == 2  # storm and early, once each
    assert sim.totals()["live"] == 2


async def test_an_unreachable_cloud_is_unavailable(sim: Sim) -> None:
    provider = eci.EciProvider(eci_settings(sim, endpoint="127.0.0.1:9"))
    try:
        with pytest.raises(errors.Unavailable):
            await provider.list(NODE_TAGS)
    finally:
        await provider.close()
