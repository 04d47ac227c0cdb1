"""GPU instances through the official ECI SDK: a GPU InstanceType with Container.N.Gpu, its size, price, refusals."""

from __future__ import annotations

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, container, create_request
from tests.cloudsim.test_eci_sdk import describe_one
from vnode.cloudsim import catalog

T4 = "ecs.gn6i-c4g1.xlarge"


def test_a_gpu_type_runs_at_its_size_and_is_billed_with_its_gpus(sim: Sim) -> None:
    eci = sim.client()
    request = create_request(sim, "train", container(gpu=1), instance_type=T4)
    group_id = eci.create_container_group(request).body.container_group_id
    group = describe_one(eci, sim, group_id)
    assert (group.instance_type, group.cpu, group.memory) == (T4, 4.0, 15.0)
    assert group.containers[0].gpu == 1
    sim.advance(60)
    eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id))
    sim.advance(100)
    record = sim.admin("GET", f"instances/{group_id}")[1]
    per_second = catalog.Spec(4, 15).usd_per_second() + catalog.USD_PER_GPU_SECOND["T4"]
    assert record["billable_seconds"] > 0
    assert record["cost_usd"] == pytest.approx(per_second * record["billable_seconds"])


@pytest.mark.parametrize(
    ("containers", "fields", "named"),
    [
        ([container(gpu=2)], {"instance_type": T4}, "Container.1.Gpu"),  # T4 type has one
        ([container(gpu=1)], {}, "Container.1.Gpu"),  # GPUs without a GPU type
        ([container()], {"instance_type": T4}, "Container.N.Gpu"),  # a GPU type no container uses
        ([container(gpu=1)], {"instance_type": "ecs.gn99-nope"}, "InstanceType"),
        ([container(gpu=1)], {"instance_type": catalog.aci_gpu_type("V100")}, "InstanceType"),  # ACI's record
    ],
)
def test_a_gpu_request_no_type_can_serve_is_refused_naming_the_parameter(
    sim: Sim, containers: list[object], fields: dict[str, str], named: str
) -> None:
    with pytest.raises(tea_exceptions.ClientException, match=named):
        sim.client().create_container_group(create_request(sim, "gpu", *containers, **fields))


def test_a_gpu_type_has_its_own_stock_per_zone(sim: Sim) -> None:
    """A zone's few GPUs run out apart from its CPUs: a T4 type out of stock in one zone lands in the next,
    then is refused when no zone has one, while the same size without GPUs is still sold."""
    a, b = sim.vswitches[0], sim.vswitches[1]
    both = f"{a['id']},{b['id']}"
    eci = sim.client()
    status, body = sim.admin("POST", "stock", {"zone": a["zone"], "spec": T4, "available": 0})
    assert status == 200, body
    request = create_request(sim, "train", container(gpu=1), instance_type=T4, v_switch_id=both)
    group = describe_one(eci, sim, eci.create_container_group(request).body.container_group_id)
    assert group.zone_id == b["zone"]
    assert any(e.reason == "NoStock" and T4 in e.message for e in group.events)
    sim.admin("POST", "stock", {"zone": b["zone"], "spec": T4, "available": 0})
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.create_container_group(create_request(sim, "more", container(gpu=1), instance_type=T4, v_switch_id=both))
    assert caught.value.code == "OperationDenied.NoStock"
    assert T4 in caught.value.message
    plain = eci.create_container_group(create_request(sim, "cpu", container(cpu=4, memory=15), v_switch_id=a["id"]))
    assert plain.body.container_group_id, "the same size without GPUs is not out of stock"


def test_stock_is_set_only_for_sizes_and_gpu_types_the_cloud_sells(sim: Sim) -> None:
    zone = sim.vswitches[0]["zone"]
    assert sim.admin("POST", "stock", {"zone": zone, "spec": catalog.aci_gpu_type("V100"), "available": 1})[0] == 200
    status, body = sim.admin("POST", "stock", {"zone": zone, "spec": "ecs.gn99-nope", "available": 0})
    assert status == 400
    assert "GPU type" in str(body)
