"""ACI's Spot priority from the pod's annotation: the PUT body's properties.priority, and the refusals."""

from __future__ import annotations

import pytest

from vnode import errors, models
from vnode.provider.aci import mapping

SUBNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnode/subnets/sn-1"


def _spec(annotations: dict[str, str]) -> models.InstanceSpec:
    return models.InstanceSpec(
        name="batch",
        client_token="uid-batch",
        containers=(models.ContainerSpec(name="app", image="busybox"),),
        cpu=1,
        memory_gib=2,
        annotations=annotations,
    )


@pytest.mark.parametrize(
    ("value", "sent"), [(None, None), ("Spot", "Spot"), ("spot", "Spot"), (" Regular ", "Regular"), ("", None)]
)
def test_the_annotation_is_the_groups_priority(value: str | None, sent: str | None) -> None:
    annotations = {} if value is None else {mapping.PRIORITY: value}
    body = mapping.group_body(_spec(annotations), location="westeurope")
    assert body["properties"].get("priority") == sent
    assert body["properties"]["sku"] == "Standard"  # the only SKU ACI runs Spot groups in
    assert "ipAddress" not in body["properties"]  # nor with a public IP


def test_an_unknown_priority_is_refused_naming_the_annotation() -> None:
    with pytest.raises(errors.InvalidSpec, match=f"{mapping.PRIORITY}: 'Cheap' is not one of Regular, Spot"):
        mapping.group_body(_spec({mapping.PRIORITY: "Cheap"}), location="westeurope")


def test_a_spot_group_in_a_subnet_is_refused_and_a_regular_one_is_not() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"outside a virtual network.*subnet sn-1"):
        mapping.group_body(_spec({mapping.PRIORITY: "Spot"}), location="westeurope", subnet=SUBNET)
    body = mapping.group_body(_spec({mapping.PRIORITY: "Regular"}), location="westeurope", subnet=SUBNET)
    assert body["properties"]["priority"] == "Regular"
    assert body["properties"]["subnetIds"] == [{"id": SUBNET}]
