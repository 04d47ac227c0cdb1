"""A public IP with a DNS name label through the official SDK: the address and fqdn shown, the
label unique per region while its group lives, and ACI's refusals of an ipAddress."""

from __future__ import annotations

import ipaddress

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import models as aci_models

from tests.cloudsim.aci_fixtures import RESOURCE_GROUP, SimThread, group
from tests.cloudsim.test_aci import aci_sim, tls_dir

__all__ = ["aci_sim", "tls_dir"]  # the fixtures, imported to be used here


def _public(
    label: str | None = "web-demo", *ports: aci_models.Port, location: str = "westeurope"
) -> aci_models.ContainerGroup:
    body = group(location=location)
    body.ip_address = aci_models.IpAddress(
        type="Public", dns_name_label=label, ports=list(ports) or [aci_models.Port(port=80, protocol="TCP")]
    )
    return body


def _refused(sim: SimThread, name: str, body: aci_models.ContainerGroup, status: int = 400) -> str:
    with sim.client() as client, pytest.raises(HttpResponseError) as info:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, name, body, polling=False)
    assert info.value.status_code == status, info.value.message
    return str(info.value.error.code)


def test_a_public_group_shows_its_public_address_and_fqdn(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "web", _public(), polling=False)
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "other", _public("web-other"), polling=False)
        got = client.container_groups.get(RESOURCE_GROUP, "web")
        other = client.container_groups.get(RESOURCE_GROUP, "other")
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "inner", group(), polling=False)
        inner = client.container_groups.get(RESOURCE_GROUP, "inner")
    address = got.ip_address
    assert (address.type, address.dns_name_label) == ("Public", "web-demo")
    assert address.fqdn == "web-demo.westeurope.azurecontainer.io"
    assert [(p.port, p.protocol) for p in address.ports] == [(80, "TCP")]
    public_range = ipaddress.ip_network("20.64.0.0/10")
    assert ipaddress.ip_address(address.ip) in public_range
    assert ipaddress.ip_address(other.ip_address.ip) in public_range
    assert other.ip_address.ip != address.ip  # one address per group
    assert ipaddress.ip_address(inner.ip_address.ip) not in public_range  # a private group keeps its vSwitch's
    assert inner.ip_address.fqdn is None


def test_a_label_is_unique_in_its_region_until_its_group_is_deleted(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "first", _public(), polling=False)
        assert _refused(aci_sim, "second", _public(), status=409) == "DnsNameLabelAlreadyTaken"
        # The same group PUT again keeps its label; another region has labels of its own.
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "first", _public(), polling=False)
        client.container_groups.begin_create_or_update(
            RESOURCE_GROUP, "east", _public(location="eastus"), polling=False
        )
        assert client.container_groups.get(RESOURCE_GROUP, "east").ip_address.fqdn == (
            "web-demo.eastus.azurecontainer.io"
        )
        client.container_groups.begin_delete(RESOURCE_GROUP, "first", polling=False)
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "second", _public(), polling=False)
        assert client.container_groups.get(RESOURCE_GROUP, "second").ip_address.dns_name_label == "web-demo"


@pytest.mark.parametrize("label", ["Web-demo", "9lives", "web-", "web", "web_demo", "w" * 64])
def test_a_label_aci_refuses_is_refused(aci_sim: SimThread, label: str) -> None:
    assert _refused(aci_sim, "bad", _public(label)) == "InvalidDnsNameLabel"


def test_the_public_ports_must_be_the_containers_and_there_must_be_one(aci_sim: SimThread) -> None:
    assert _refused(aci_sim, "p1", _public("web-demo", aci_models.Port(port=8080))) == "InvalidIpAddressPorts"
    udp = aci_models.Port(port=80, protocol="UDP")  # the container's port 80 is TCP
    assert _refused(aci_sim, "p2", _public("web-demo", udp)) == "InvalidIpAddressPorts"
    empty = _public()
    assert empty.ip_address is not None
    empty.ip_address.ports = []
    assert _refused(aci_sim, "p3", empty) == "MissingIpAddressPorts"
    odd = group()
    odd.ip_address = aci_models.IpAddress(type="Elastic", ports=[aci_models.Port(port=80)])
    assert _refused(aci_sim, "p4", odd) == "InvalidIpAddressType"
    assert aci_sim.call(lambda c: len(c.live)) == 0


def test_a_spot_group_with_a_label_is_refused_and_takes_no_label(aci_sim: SimThread) -> None:
    spot = _public()
    spot.priority = "Spot"
    assert _refused(aci_sim, "spot", spot) == "SpotPriorityContainerGroupNotSupportedForInboundConnectivity"
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "regular", _public(), polling=False)
