"""The ECI provider's change feed: what a steady node asks the cloud for, and a lost create answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import pytest

from tests.cloudsim.conftest import Sim
from tests.provider.eci_fixtures import NODE_TAGS, eci_settings, spec
from tests.waiting import wait_for
from vnode import errors, models
from vnode.node import instances
from vnode.provider import base
from vnode.provider.eci import client as eci_client
from vnode.provider.eci import provider as eci


class Node:
    """The node's side of the change feed: its cache of states (``vnode.node.instances``) and cursor."""

    def __init__(self, provider: eci.EciProvider) -> None:
        self.provider = provider
        self.instances = instances.Instances(NODE_TAGS[models.TAG_CLUSTER], NODE_TAGS[models.TAG_NODE])
        self.last = base.Changes(changed=[])

    async def step(self) -> dict[str, models.InstanceState]:
        """One step of the feed; the node's instances by id after it."""
        self.last = await self.provider.changes(NODE_TAGS, self.instances.cursor)
        self.instances.apply(self.last)
        return {state.id: state for state in self.instances.states()}


async def test_a_steady_listing_describes_only_what_changed(sim: Sim) -> None:
    calls: list[str] = []

    class Counting(eci_client.EciClient):
        async def call_raw(self, action: str, params: Mapping[str, str]) -> bytes:
            calls.append(action)
            return await super().call_raw(action, params)

    config = eci_settings(sim)
    client = Counting(config.endpoint, config.access_key, config.secret_key)
    provider = eci.EciProvider(config, client=client)
    node = Node(provider)
    try:
        for n in range(25):
            await provider.create(spec(f"s-{n}", tags={"cloudsim/delay": "10"} if n == 0 else None))
        sim.advance(1)
        calls.clear()
        assert len(await node.step()) == 25
        assert node.last.complete
        assert calls.count("DescribeContainerGroups") == 2  # 25 new instances, 20 per call
        calls.clear()
        assert len(await node.step()) == 25
        assert calls == ["DescribeContainerGroupStatus"]
        assert (node.last.changed, node.last.gone, node.last.complete) == ([], [], False)
        sim.advance(10)  # s-0 finishes pulling and starts
        calls.clear()
        states = await node.step()
        assert calls == ["DescribeContainerGroupStatus", "DescribeContainerGroups"]
        assert len(node.last.changed) == 1
        assert all(s.status is models.InstanceStatus.RUNNING for s in states.values())
    finally:
        await provider.close()


async def test_between_full_listings_a_node_asks_only_for_changes_and_for_instances_being_deleted(sim: Sim) -> None:
    calls: list[tuple[str, dict[str, str]]] = []

    class Recording(eci_client.EciClient):
        async def call_raw(self, action: str, params: Mapping[str, str]) -> bytes:
            calls.append((action, dict(params)))
            return await super().call_raw(action, params)

    config = eci_settings(sim)
    client = Recording(config.endpoint, config.access_key, config.secret_key)
    provider = eci.EciProvider(config, client=client, full_list_interval=3600)
    node = Node(provider)

    def status_calls() -> list[dict[str, str]]:
        return [params for action, params in calls if action == "DescribeContainerGroupStatus"]

    try:
        steady = await provider.create(spec("steady"))
        sim.advance(1)
        (first,) = (await node.step()).values()  # the first listing is a full one
        assert (first.id, first.status) == (steady.id, models.InstanceStatus.RUNNING)
        assert all("SinceSecond" not in params for params in status_calls())

        calls.clear()
        new = await provider.create(spec("new"))
        states = {i: s.status for i, s in (await node.step()).items()}
        assert states == {steady.id: models.InstanceStatus.RUNNING, new.id: models.InstanceStatus.RUNNING}
        (changes,) = status_calls()
        assert "SinceSecond" in changes
        assert "ContainerGroupIds" not in changes
        described = [
            json.loads(params["ContainerGroupIds"]) for action, params in calls if action == "DescribeContainerGroups"
        ]
        assert described == [[new.id]]  # the steady instance is neither listed nor described again

        calls.clear()
        await provider.delete(new.id, grace_seconds=0)
        sim.advance(60)
        assert list(await node.step()) == [steady.id]  # seen gone by asking for it
        assert node.last.gone == [new.id]
        assert any(json.loads(params.get("ContainerGroupIds", "[]")) == [new.id] for params in status_calls())

        # A change the cloud stamps further back than SinceSecond reaches (here the simulated clock
        # jumps) waits for the next full listing.
        late = await provider.create(spec("late", tags={"cloudsim/delay": "20"}))
        assert (await node.step())[late.id].status is not models.InstanceStatus.RUNNING
        sim.advance(100)
        provider.full_list_interval = 0.0
        assert (await node.step())[late.id].status is models.InstanceStatus.RUNNING
    finally:
        await provider.close()


async def test_a_create_whose_answer_is_lost_is_unavailable_and_its_retry_finds_the_instance(sim: Sim) -> None:
    # The cloud acts after the client gave up (the ambiguous failure): the retry with the same
    # token must return that instance, not make a second one.
    config = eci_settings(sim)
    impatient = eci.EciProvider(
        config, client=eci_client.EciClient(config.endpoint, config.access_key, config.secret_key, timeout=0.3)
    )
    try:
        status, body = sim.admin("PUT", "faults/create", {"latency_ms": 1500})
        assert status == 200, body
        with pytest.raises(errors.Unavailable):
            await impatient.create(spec("lost"))
        await asyncio.to_thread(wait_for, lambda: sim.totals()["live"] == 1, timeout=10, what="the cloud to act")
        sim.admin("DELETE", "faults")
        again = await impatient.create(spec("lost"))
        (listed,) = await impatient.list(NODE_TAGS)
        assert listed.id == again.id
        assert sim.totals()["live"] == 1
    finally:
        await impatient.close()
