"""The ECI provider under the cloud's throttling, 5xx storms, an unreachable endpoint and refused keys."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.cloudsim.conftest import Sim
from tests.provider.eci_fixtures import NODE_TAGS, eci_settings, spec
from tests.waiting import until
from vnode import errors, models, tokenbucket
from vnode.provider import base
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


async def test_creates_beyond_the_client_side_burst_are_told_their_turns_and_none_is_refused(sim: Sim) -> None:
    """Forty creates at once through a bucket of 5 and 50/s. A pod worker's create does not wait in
    place: the 35 beyond the burst are each told a later turn (1/50 s apart), and each, tried again at
    its turn, goes through; the cloud refuses none. A drain's creates and deletes (within
    ``waiting_for_turns``) wait in place instead. The bucket used to answer all 35 "next token in 20
    ms" at once, and the pod keys backed off alone, for minutes at the soak's scale."""
    provider = eci.EciProvider(eci_settings(sim), create_limit=(5, 50.0))
    try:
        refused = sim.totals()["refused_by_limits"].get("create", 0)
        loop = asyncio.get_running_loop()
        told: dict[int, float] = {}  # call -> the moment its turn falls (told when + told in how long)

        async def create(i: int) -> models.InstanceState:
            try:
                return await provider.create(spec(f"turn-{i}"))
            except errors.Throttled as exc:
                told[i] = loop.time() + (exc.retry_after or 0)
                raise

        first = loop.time()
        answers = await asyncio.gather(*(create(i) for i in range(40)), return_exceptions=True)
        turns = sorted(told.values())
        # 35 beyond the burst; a few fewer on a loaded machine, where tokens refill while the 40 calls start
        assert 30 <= len(turns) <= 35
        assert all(isinstance(a, errors.Throttled) and a.retry_after for i, a in enumerate(answers) if i in told)
        # The calls may be told at moments far apart on a loaded machine; the turns they are told are not.
        assert turns[-1] - first <= 35 / 50 + 0.05, "the n-th turn about n/50 s on"
        assert all(0.01 < b - a <= 0.03 for a, b in itertools.pairwise(turns)), "each a later turn, 1/50 s apart"
        later = [i for i, a in enumerate(answers) if isinstance(a, errors.Throttled)]
        started = asyncio.get_running_loop().time()

        again = 0  # told a second turn: a call that found a token in the first round took a promised one

        async def at_its_turn(i: int, turn: float) -> models.InstanceState:
            nonlocal again
            await asyncio.sleep(max(0.0, started + turn - asyncio.get_running_loop().time()))
            try:
                return await provider.create(spec(f"turn-{i}"))
            except errors.Throttled as exc:
                again += 1
                await asyncio.sleep(exc.retry_after or 0)
                return await provider.create(spec(f"turn-{i}"))

        await asyncio.gather(*(at_its_turn(i, answers[i].retry_after or 0) for i in later))  # type: ignore[union-attr]
        assert again <= 35 - len(turns), "only as many second turns as tokens taken out of turn"
        with tokenbucket.waiting_for_turns():
            await asyncio.gather(*(provider.create(spec(f"drained-{i}")) for i in range(20)))
        assert sim.totals()["live"] == 60
        assert sim.totals()["refused_by_limits"].get("create", 0) == refused
    finally:
        await provider.close()


async def test_the_calls_waiting_in_line_for_a_turn_are_told_to_the_metrics(sim: Sim) -> None:
    """``turns_waiting`` (``vnode_cloud_turns_waiting``): the pod workers refused a token wait in the
    bucket's line under their keys until their turn; the line empties as they are served."""
    provider = eci.EciProvider(eci_settings(sim), create_limit=(2, 20.0))
    woken: list[str] = []
    try:
        assert isinstance(provider, base.SupportsPacing)
        assert provider.turns_waiting() == {"create": 0, "delete": 0}

        async def create(i: int) -> bool:
            with tokenbucket.turns_for(f"ns/pod-{i}", woken.append):
                try:
                    await provider.create(spec(f"line-{i}"))
                except errors.Throttled:
                    return False
                return True

        served = sum(await asyncio.gather(*(create(i) for i in range(10))))
        assert served < 5, "the burst of two (and what refilled as the calls started)"
        assert provider.turns_waiting() == {"create": 10 - served - len(woken), "delete": 0}
        assert provider.turns_waiting()["create"] > 0
        await until(lambda: len(woken) == 10 - served, within=10, what="every caller in line woken at its turn")
        assert provider.turns_waiting()["create"] == 0
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
            await provider.create(spec("d"))
        assert caught.value.code == "Throttling.Client", "the bucket was emptied: no call spent"
        assert caught.value.retry_after == pytest.approx(0.1, abs=0.02), "its turn: a tenth of a second on"
        with pytest.raises(errors.Throttled) as caught, tokenbucket.waiting_for_turns():
            await provider.create(spec("e"))  # a caller that waits in place: its turn comes, the cloud refuses
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
