"""ECI spot instances in the simulator, through the official SDK: price, bill, bid, notice, release."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, create_request
from vnode.cloudsim import catalog, spot


def _group(sim: Sim, group_id: str) -> Any:
    request = m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=f'["{group_id}"]')
    return sim.client().describe_container_groups(request).body.container_groups[0]


def _spot_prices(sim: Sim, cpu: float, memory: float) -> dict[str, float]:
    request = m.DescribeContainerGroupPriceRequest(
        region_id=sim.region, cpu=cpu, memory=memory, spot_strategy="SpotAsPriceGo"
    )
    prices = sim.client().describe_container_group_price(request).body.price_info.spot_prices.spot_price
    return {p.zone_id: p.spot_price for p in prices}


def _events(group: Any) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in group.events]


def test_a_spot_instance_is_billed_at_the_price_the_price_api_gives(sim: Sim) -> None:
    prices = _spot_prices(sim, 2.0, 4.0)
    on_demand = catalog.Spec(2, 4).usd_per_second() * 3600
    assert prices
    assert all(0.1 * on_demand < p < 0.5 * on_demand for p in prices.values())
    request = create_request(sim, "cheap", cpu=2.0, memory=4.0, spot_strategy="SpotAsPriceGo")
    group_id = sim.client().create_container_group(request).body.container_group_id
    sim.advance(3600)
    record = sim.admin("GET", f"instances/{group_id}")[1]
    assert record["status"] == "Running"
    assert record["spot_hourly"] == pytest.approx(prices[record["zone"]])
    assert record["cost_usd"] == pytest.approx(prices[record["zone"]] / 3600 * record["billable_seconds"], rel=1e-9)
    totals = sim.totals()["spot"]
    assert totals["live"] == 1
    assert totals["cost_usd"] == pytest.approx(record["cost_usd"], rel=1e-9)
    assert totals["saved_usd"] == pytest.approx(on_demand / 3600 * record["billable_seconds"] - record["cost_usd"])
    with urllib.request.urlopen(sim.info["console_url"] + "console/api/summary", timeout=30) as response:
        shown = json.loads(response.read())
    assert shown["cost_usd"] == pytest.approx(record["cost_usd"], rel=1e-9)  # the console shows the spot bill


def test_a_reclamation_is_announced_then_carried_out_and_billing_stops(sim: Sim) -> None:
    request = create_request(sim, "spot", spot_strategy="SpotAsPriceGo")
    group_id = sim.client().create_container_group(request).body.container_group_id
    sim.advance(10)
    status, body = sim.admin("POST", f"instances/{group_id}/reclaim", {})
    assert status == 200, body
    group = _group(sim, group_id)
    assert group.status == "Running"
    assert ("Warning", "SpotToBeReleased", "Spot ECI will be released in 3 minutes") in _events(group)
    sim.advance(179)
    assert _group(sim, group_id).status == "Running"
    sim.advance(1)
    assert _group(sim, group_id).status == "Expired"
    cost = sim.admin("GET", f"instances/{group_id}")[1]["cost_usd"]
    sim.advance(600)
    assert sim.admin("GET", f"instances/{group_id}")[1]["cost_usd"] == cost
    assert sim.admin("POST", f"instances/{group_id}/reclaim", {})[0] == 409  # only a running instance


def test_a_price_limit_below_the_market_stays_pending_and_bids_every_5_minutes(sim: Sim) -> None:
    request = create_request(sim, "low", spot_strategy="SpotWithPriceLimit", spot_price_limit=0.0001)
    group_id = sim.client().create_container_group(request).body.container_group_id
    sim.advance(601)
    group = _group(sim, group_id)
    assert group.status in ("Scheduling", "Pending")
    outbid = [e for e in group.events if e.reason == "SpotPriceTooLow"]
    assert len(outbid) == 1
    assert outbid[0].count == 3  # at 0, 300 and 600 seconds
    assert outbid[0].message == spot.OUTBID


def test_an_outbid_instance_is_reclaimed_only_after_its_protection_period(sim: Sim) -> None:
    # A limit inside the market's range: bought when the market is below it, reclaimed when above.
    limit = round(catalog.Spec(2, 4).usd_per_second() * 3600 * 0.3, 6)
    request = create_request(sim, "limited", spot_strategy="SpotWithPriceLimit", spot_price_limit=limit)
    group_id = sim.client().create_container_group(request).body.container_group_id
    bought = noticed = None
    for step in range(1, 12 * 12 + 1):  # the market wave is 6 hours: within 12 both happen
        sim.advance(300)
        group = _group(sim, group_id)
        if bought is None and group.status == "Running":
            bought = step * 300
        if any(e.reason == "SpotToBeReleased" for e in group.events):
            noticed = step * 300
            break
    assert bought is not None, "the market never went below the limit"
    assert noticed is not None, "the market never passed the limit"
    assert noticed - bought >= 3600 - 300  # not within the protection hour
    sim.advance(180)
    assert _group(sim, group_id).status == "Expired"


def test_a_price_limit_is_required_with_spot_with_price_limit(sim: Sim) -> None:
    with pytest.raises(tea_exceptions.ClientException) as caught:
        sim.client().create_container_group(create_request(sim, "x", spot_strategy="SpotWithPriceLimit"))
    assert caught.value.code == "MissingParameter"
    with pytest.raises(tea_exceptions.ClientException) as caught:
        sim.client().create_container_group(create_request(sim, "x", spot_strategy="Cheap"))
    assert caught.value.code == "InvalidParameter"


def test_a_zone_out_of_stock_reclaims_its_spot_instances_after_their_protection(sim: Sim) -> None:
    unprotected = create_request(sim, "bare", spot_strategy="SpotAsPriceGo", spot_duration=0)
    bare_id = sim.client().create_container_group(unprotected).body.container_group_id
    protected_id = (
        sim.client()
        .create_container_group(create_request(sim, "kept", spot_strategy="SpotAsPriceGo"))
        .body.container_group_id
    )
    regular_id = sim.client().create_container_group(create_request(sim, "regular")).body.container_group_id
    sim.advance(10)
    zone = sim.admin("GET", f"instances/{bare_id}")[1]["zone"]
    assert {sim.admin("GET", f"instances/{i}")[1]["zone"] for i in (protected_id, regular_id)} == {zone}
    status, body = sim.admin("POST", "stock", {"zone": zone, "available": 0})
    assert status == 200, body
    sim.advance(300)  # the first check of an instance without protection
    assert ("Warning", "SpotToBeReleased", "Spot ECI will be released in 3 minutes") in _events(_group(sim, bare_id))
    sim.advance(180)
    assert _group(sim, bare_id).status == "Expired"
    assert _group(sim, protected_id).status == "Running"  # its hour of protection holds
    sim.advance(3600)
    assert _group(sim, protected_id).status == "Expired"
    assert _group(sim, regular_id).status == "Running"  # pay-as-you-go is never reclaimed


def test_no_spot_stock_refuses_spot_buys_keeps_pay_as_you_go_and_reclaims_running_spot(sim: Sim) -> None:
    running = (
        sim.client()
        .create_container_group(create_request(sim, "before", spot_strategy="SpotAsPriceGo", spot_duration=0))
        .body.container_group_id
    )
    sim.advance(10)
    for zone in {v["zone"] for v in sim.vswitches}:
        status, body = sim.admin("POST", "stock", {"zone": zone, "available": 0, "spot": True})
        assert status == 200, body
        assert body[zone]["spot_out"] == ["*"]
    with pytest.raises(tea_exceptions.ClientException) as caught:
        sim.client().create_container_group(create_request(sim, "spot", spot_strategy="SpotAsPriceGo"))
    assert "NoStock" in caught.value.code
    regular = sim.client().create_container_group(create_request(sim, "regular")).body.container_group_id
    sim.advance(300 + 180)  # the running spot instance's first check, then its notice
    assert _group(sim, running).status == "Expired"
    assert _group(sim, regular).status == "Running"
    zone = sim.vswitches[0]["zone"]
    assert sim.admin("POST", "stock", {"zone": zone, "available": 2, "spot": True})[0] == 400
    assert sim.admin("POST", "stock", {"zone": zone, "available": None, "spot": True})[0] == 200
    sim.client().create_container_group(create_request(sim, "again", spot_strategy="SpotAsPriceGo"))
