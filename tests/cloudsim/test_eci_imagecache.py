"""ECI's image caches through the official SDK: create, describe, phases, expiry, delete, and their use."""

from __future__ import annotations

import datetime

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, container, create_request
from tests.cloudsim.test_eci_sdk import describe_one


def create_cache(eci: Client, sim: Sim, name: str, *images: str, **fields: object) -> str:
    request = m.CreateImageCacheRequest(
        region_id=sim.region,
        image_cache_name=name,
        image=list(images),
        security_group_id=sim.info["security_group_id"],
        v_switch_id=sim.vswitches[0]["id"],
        **fields,
    )
    body = eci.create_image_cache(request).body
    assert body.container_group_id
    return str(body.image_cache_id)


def describe(eci: Client, sim: Sim, **filters: object) -> list[m.DescribeImageCachesResponseBodyImageCaches]:
    request = m.DescribeImageCachesRequest(region_id=sim.region, **filters)
    return list(eci.describe_image_caches(request).body.image_caches or [])


def test_a_cache_is_created_described_and_deleted(sim: Sim, eci: Client) -> None:
    cache_id = create_cache(eci, sim, "web", "nginx:1.27", "busybox", retention_days=2, client_token="t-1")
    assert cache_id.startswith("imc-")
    assert create_cache(eci, sim, "web", "nginx:1.27", "busybox", retention_days=2, client_token="t-1") == cache_id
    sim.advance(1)
    (cache,) = describe(eci, sim, image_cache_id=cache_id)
    assert (cache.image_cache_name, cache.status, cache.progress) == ("web", "Ready", "100%")
    assert cache.images == ["nginx:1.27", "busybox"]
    assert cache.snapshot_id.startswith("s-")
    created = datetime.datetime.fromisoformat(cache.creation_time)
    assert datetime.datetime.fromisoformat(cache.expire_date_time) - created == datetime.timedelta(days=2)
    assert [c.image_cache_id for c in describe(eci, sim, image="busybox")] == [cache_id]
    assert describe(eci, sim, image="redis") == []

    eci.delete_image_cache(m.DeleteImageCacheRequest(region_id=sim.region, image_cache_id=cache_id))
    assert describe(eci, sim, image_cache_id=cache_id) == []
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.delete_image_cache(m.DeleteImageCacheRequest(region_id=sim.region, image_cache_id=cache_id))
    assert caught.value.code == "InvalidImageCacheId.NotFound"


def test_a_cache_expires_after_its_retention(sim: Sim, eci: Client) -> None:
    kept = create_cache(eci, sim, "kept", "redis")
    short = create_cache(eci, sim, "short", "nginx", retention_days=1)
    sim.advance(86_400 - 10)
    assert {c.image_cache_id for c in describe(eci, sim)} == {kept, short}
    sim.advance(20)
    assert [c.image_cache_id for c in describe(eci, sim)] == [kept]


def test_a_pull_takes_time_by_size_and_seconds_from_a_cache(realistic_sim: Sim) -> None:
    sim, eci = realistic_sim, realistic_sim.client()
    cache_id = create_cache(eci, sim, "flink", "flink:1.17")
    try:
        (cache,) = describe(eci, sim, image_cache_id=cache_id)
        assert cache.status == "Preparing"
        with pytest.raises(tea_exceptions.ClientException, match="not Ready"):  # a named cache must be Ready
            eci.create_container_group(
                create_request(sim, "early", container("f", "flink"), image_snapshot_id=cache_id)
            )
        sim.advance(10)
        assert describe(eci, sim, image_cache_id=cache_id)[0].status == "Creating"
        sim.advance(60)
        assert describe(eci, sim, image_cache_id=cache_id)[0].status == "Ready"

        plain = create_request(sim, "plain", container("f", "flink:1.17"))
        cached = create_request(sim, "cached", container("f", "flink:1.17"), auto_match_image_cache=True)
        ids = [eci.create_container_group(r).body.container_group_id for r in (plain, cached)]
        sim.advance(120)
        pulls = {}
        for group_id in ids:
            group = describe_one(eci, sim, group_id)
            by_reason = {e.reason: e for e in group.events}
            start = datetime.datetime.fromisoformat(by_reason["Pulling"].first_timestamp)
            end = datetime.datetime.fromisoformat(by_reason["Pulled"].first_timestamp)
            pulls[group.container_group_name] = ((end - start).total_seconds(), set(by_reason))
        assert 45 <= pulls["plain"][0] <= 55  # ECI publishes 50 s for this 386 MB image
        assert pulls["cached"][0] <= 5
        assert "SuccessfulHitImageCache" in pulls["cached"][1]
        assert "SuccessfulHitImageCache" not in pulls["plain"][1]
        for group_id in ids:
            eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id))
    finally:
        eci.delete_image_cache(m.DeleteImageCacheRequest(region_id=sim.region, image_cache_id=cache_id))
