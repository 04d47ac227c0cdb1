"""ACI's Spot priority through the official SDK: accepted and echoed, and ACI's refusals for a Spot group."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import models as aci_models

from tests.cloudsim.aci_fixtures import RESOURCE_GROUP, SimThread, group
from tests.cloudsim.test_aci import aci_sim, tls_dir

__all__ = ["aci_sim", "tls_dir"]  # the fixtures, imported to be used here


def _refused(sim: SimThread, name: str, body: aci_models.ContainerGroup) -> str:
    with sim.client() as client, pytest.raises(HttpResponseError) as info:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, name, body, polling=False)
    assert info.value.status_code == 400
    return str(info.value.error.code)


def test_a_spot_group_is_accepted_and_shows_its_priority(aci_sim: SimThread) -> None:
    body = group()
    body.priority = "Spot"
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "spot", body, polling=False)
        got = client.container_groups.get(RESOURCE_GROUP, "spot")
    assert got.priority == "Spot"


def test_a_spot_group_may_have_no_public_ip_no_virtual_network_no_zone_and_only_the_standard_sku(
    aci_sim: SimThread,
) -> None:
    public = group()
    public.priority = "Spot"
    public.ip_address = aci_models.IpAddress(type="Public", ports=[aci_models.Port(port=80)])
    assert _refused(aci_sim, "public", public) == "SpotPriorityContainerGroupNotSupportedForInboundConnectivity"
    confidential = group()
    confidential.priority, confidential.sku = "Spot", "Confidential"
    assert _refused(aci_sim, "confidential", confidential) == "SpotPriorityContainerGroupNotSupportedInSku"
    vnet = group()
    vnet.priority = "Spot"
    vsw = aci_sim.call(lambda c: next(iter(c.vswitches)))
    vnet.subnet_ids = [aci_models.ContainerGroupSubnetId(id=f"/subscriptions/s/x/subnets/{vsw}")]
    assert _refused(aci_sim, "vnet", vnet) == "SpotPriorityContainerGroupNotSupportedWithVirtualNetwork"
    zoned = group()
    zoned.priority, zoned.zones = "Spot", ["1"]
    assert _refused(aci_sim, "zoned", zoned) == "SpotPriorityContainerGroupNotSupportedWithZones"
    odd = group()
    odd.priority = "Cheap"
    assert _refused(aci_sim, "odd", odd) == "PriorityNotSpecified"
    assert aci_sim.call(lambda c: len(c.live)) == 0
