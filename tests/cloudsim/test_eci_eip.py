"""EIPs through the official ECI SDK: AutoCreateEip/EipBandwidth/EipInstanceId, InternetIp, billing, release."""

from __future__ import annotations

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, create_request
from tests.cloudsim.test_eci_sdk import describe_one
from vnode.cloudsim import catalog, eip


def _delete(sim: Sim, group_id: str) -> None:
    request = m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id)
    sim.client().delete_container_group(request)


def test_a_new_eip_gives_a_public_address_is_billed_and_goes_with_the_instance(sim: Sim) -> None:
    eci = sim.client()
    request = create_request(sim, "public", cpu=2.0, memory=4.0, auto_create_eip=True, eip_bandwidth=10)
    group_id = eci.create_container_group(request).body.container_group_id
    plain = eci.create_container_group(create_request(sim, "private", cpu=2.0, memory=4.0)).body.container_group_id
    group = describe_one(eci, sim, group_id)
    assert group.internet_ip
    assert group.internet_ip != group.intranet_ip
    assert describe_one(eci, sim, plain).internet_ip == ""
    sim.advance(60)
    seconds = sim.admin("GET", f"instances/{group_id}")[1]["billable_seconds"]
    _delete(sim, group_id)
    _delete(sim, plain)
    sim.advance(100)
    record = sim.admin("GET", f"instances/{group_id}")[1]
    compute = catalog.Spec(2, 4).usd_per_second() * record["billable_seconds"]
    assert record["billable_seconds"] >= seconds > 0
    assert record["cost_usd"] == pytest.approx(compute + 10 * eip.USD_PER_MBPS_SECOND * record["billable_seconds"])


def test_a_named_eip_is_bound_to_one_instance_at_a_time_and_kept(sim: Sim) -> None:
    eci = sim.client()
    named = "eip-named0001"
    first = eci.create_container_group(create_request(sim, "one", eip_instance_id=named)).body.container_group_id
    assert describe_one(eci, sim, first).internet_ip == eip.address(named)
    with pytest.raises(tea_exceptions.ClientException, match="already bound"):
        eci.create_container_group(create_request(sim, "two", eip_instance_id=named))
    _delete(sim, first)
    sim.advance(100)  # gone: the EIP is unbound, not released, and binds again
    again = eci.create_container_group(create_request(sim, "three", eip_instance_id=named)).body.container_group_id
    assert describe_one(eci, sim, again).internet_ip == eip.address(named)
    _delete(sim, again)


def test_a_bad_bandwidth_or_eip_id_is_refused_naming_the_parameter(sim: Sim) -> None:
    eci = sim.client()
    with pytest.raises(tea_exceptions.ClientException, match="EipBandwidth"):
        eci.create_container_group(create_request(sim, "wide", auto_create_eip=True, eip_bandwidth=100000))
    with pytest.raises(tea_exceptions.ClientException, match="EipInstanceId"):
        eci.create_container_group(create_request(sim, "odd", eip_instance_id="not-an-eip"))
