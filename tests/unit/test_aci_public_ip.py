"""ACI's public IP with a DNS name label from azure-aci's pod annotation: the PUT body's ipAddress,
the refusals naming the annotation, and the address and name written back to the pod."""

from __future__ import annotations

import pytest

from vnode import errors, models
from vnode.provider.aci import mapping, profile, states

SUBNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnode/subnets/sn-1"


def _spec(annotations: dict[str, str], *containers: models.ContainerSpec) -> models.InstanceSpec:
    web = models.ContainerSpec(
        name="web",
        image="nginx",
        ports=(models.Port(container_port=80), models.Port(container_port=53, protocol="UDP")),
    )
    return models.InstanceSpec(
        name="web",
        client_token="uid-web",
        containers=containers or (web,),
        cpu=1,
        memory_gib=2,
        annotations=annotations,
    )


def test_the_annotation_gives_the_group_a_public_ip_with_the_label_and_the_containers_ports() -> None:
    sidecar = models.ContainerSpec(
        name="side", image="busybox", ports=(models.Port(container_port=80), models.Port(9000))
    )
    web = _spec({}).containers[0]
    body = mapping.group_body(_spec({mapping.DNS_NAME_LABEL: "web-demo"}, web, sidecar), location="westeurope")
    assert body["properties"]["ipAddress"] == {
        "type": "Public",
        "dnsNameLabel": "web-demo",
        "ports": [
            {"port": 80, "protocol": "TCP"},
            {"port": 53, "protocol": "UDP"},
            {"port": 9000, "protocol": "TCP"},  # port 80 twice is opened once
        ],
    }


@pytest.mark.parametrize("annotations", [{}, {mapping.DNS_NAME_LABEL: ""}, {"other.io/dnsnamelabel": "web-demo"}])
def test_without_the_annotation_the_group_has_no_public_ip(annotations: dict[str, str]) -> None:
    assert "ipAddress" not in mapping.group_body(_spec(annotations), location="westeurope")["properties"]


@pytest.mark.parametrize("label", ["Web-demo", "9lives", "web-", "web_demo", "web", "w" * 64, "web.demo"])
def test_a_label_aci_refuses_is_refused_naming_the_annotation(label: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=f"annotation {mapping.DNS_NAME_LABEL}=.*not a DNS name label"):
        mapping.group_body(_spec({mapping.DNS_NAME_LABEL: label}), location="westeurope")


def test_a_pod_without_a_container_port_is_refused_naming_the_annotation() -> None:
    bare = models.ContainerSpec(name="app", image="busybox")
    with pytest.raises(errors.InvalidSpec, match=f"{mapping.DNS_NAME_LABEL}.*no container.*containerPort"):
        mapping.group_body(_spec({mapping.DNS_NAME_LABEL: "web-demo"}, bare), location="westeurope")


def test_an_sctp_port_is_refused_naming_it() -> None:
    sctp = models.ContainerSpec(name="app", image="busybox", ports=(models.Port(container_port=7, protocol="SCTP"),))
    with pytest.raises(errors.InvalidSpec, match="port 7/SCTP: ACI opens only TCP and UDP"):
        mapping.group_body(_spec({mapping.DNS_NAME_LABEL: "web-demo"}, sctp), location="westeurope")


def test_a_pod_in_a_subnet_or_on_spot_is_refused_naming_both() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"outside a virtual network.*subnet sn-1"):
        mapping.group_body(_spec({mapping.DNS_NAME_LABEL: "web-demo"}), location="westeurope", subnet=SUBNET)
    spot = {mapping.DNS_NAME_LABEL: "web-demo", mapping.PRIORITY: "Spot"}
    with pytest.raises(errors.InvalidSpec, match="SpotPriorityContainerGroupNotSupportedForInboundConnectivity"):
        mapping.group_body(_spec(spot), location="westeurope")


def test_the_profile_passes_the_annotations_to_the_provider() -> None:
    given = {mapping.DNS_NAME_LABEL: "web-demo", mapping.PRIORITY: "Spot", "example.com/other": "x"}
    assert profile.PROFILE.read_annotations(given) == {mapping.DNS_NAME_LABEL: "web-demo", mapping.PRIORITY: "Spot"}


def _group(address: dict[str, object]) -> dict[str, object]:
    return {"name": "web", "properties": {"provisioningState": "Succeeded", "ipAddress": address}}


def test_the_public_address_and_its_name_are_written_back_once_both_are_known() -> None:
    public = {"type": "Public", "ip": "20.64.0.1", "dnsNameLabel": "web-demo"}
    fqdn = "web-demo.westeurope.azurecontainer.io"
    assert states.state_of(_group({**public, "fqdn": fqdn})).annotations == {
        mapping.PUBLIC_IP: "20.64.0.1",
        mapping.FQDN: fqdn,
    }
    assert states.state_of(_group(public)).annotations == {}  # the name not known yet: wait for both
    assert states.state_of(_group({"type": "Public", "dnsNameLabel": "web-demo", "fqdn": fqdn})).annotations == {}
    assert states.state_of(_group({"type": "Private", "ip": "10.1.0.5"})).annotations == {}
