"""ACI's GPUs through the official SDK: a container's ``resources.requests.gpu`` is accepted, shown
on GET and billed per GPU; a wrong SKU or count, sizes above the SKU's maxima, Windows, a subnet,
and a Spot group with GPUs are refused (the last with ACI's own code)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import models as aci_models

from tests.cloudsim.aci_fixtures import RESOURCE_GROUP, SUBSCRIPTION, SimThread, group
from tests.cloudsim.test_aci import aci_sim, tls_dir
from vnode.cloudsim import aci_arm, catalog, cloud, spot

__all__ = ["aci_sim", "tls_dir"]  # the fixtures, imported to be used here

RG = RESOURCE_GROUP


def _gpu_group(
    sku: str = "V100", count: int = 1, *, cpu: float = 1.0, memory: float = 2.0
) -> aci_models.ContainerGroup:
    body = group(cpu=cpu, memory=memory)
    body.containers[0].resources.requests.gpu = aci_models.GpuResource(count=count, sku=sku)
    return body


def _refused(sim: SimThread, name: str, body: aci_models.ContainerGroup) -> tuple[str, str]:
    with sim.client() as client, pytest.raises(HttpResponseError) as info:
        client.container_groups.begin_create_or_update(RG, name, body, polling=False)
    assert info.value.status_code == 400
    return str(info.value.error.code), str(info.value.error.message)


def _per_second(sim: SimThread, name: str) -> float:
    key = aci_arm.arm_id(SUBSCRIPTION, RG, name).lower()

    def price(c: cloud.Cloud) -> float:
        return spot.usd_per_second(next(i for i in c.live.values() if i.tag(aci_arm.TAG_ID) == key))

    return sim.call(price)


def test_a_gpu_group_is_accepted_shown_and_billed_per_gpu(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "train", _gpu_group("V100", 2), polling=False)
        client.container_groups.begin_create_or_update(RG, "plain", group(), polling=False)
        got = client.container_groups.get(RG, "train")
        plain = client.container_groups.get(RG, "plain")
    gpu = got.containers[0].resources.requests.gpu
    assert (gpu.count, gpu.sku) == (2, "V100")
    assert plain.containers[0].resources.requests.gpu is None
    extra = _per_second(aci_sim, "train") - _per_second(aci_sim, "plain")
    assert extra == pytest.approx(2 * catalog.ACI_USD_PER_GPU_SECOND["V100"])


def test_the_largest_group_a_sku_allows_is_accepted(aci_sim: SimThread) -> None:
    body = _gpu_group("K80", 4, cpu=24, memory=224)
    body.containers[0].resources.limits = aci_models.ResourceLimits(
        cpu=24, memory_in_gb=224, gpu=aci_models.GpuResource(count=4, sku="K80")
    )
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "big", body, polling=False)
        gpu = client.container_groups.get(RG, "big").containers[0].resources.requests.gpu
    assert (gpu.count, gpu.sku) == (4, "K80")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_gpu_group("A100"), "GPU SKU 'A100'"),
        (_gpu_group("V100", 3), "GPU count 3"),
        (_gpu_group("K80", 1, cpu=7), "at most 6 CPU and 56 GB with 1"),
        (_gpu_group("K80", 2, memory=113), "at most 12 CPU and 112 GB with 2"),
        (_gpu_group("P100", 4, memory=449), "at most 24 CPU and 448 GB with 4"),
    ],
)
def test_a_wrong_gpu_request_is_refused(aci_sim: SimThread, body: aci_models.ContainerGroup, words: str) -> None:
    code, message = _refused(aci_sim, "bad", body)
    assert code == "InvalidGpuResourceRequest"
    assert words in message
    assert aci_sim.call(lambda c: len(c.live)) == 0


def test_gpus_are_refused_on_windows_in_a_subnet_under_a_wrong_limit_and_across_skus(aci_sim: SimThread) -> None:
    windows = _gpu_group()
    windows.os_type = "Windows"
    assert "only for Linux" in _refused(aci_sim, "win", windows)[1]
    subnet = _gpu_group()
    vsw = aci_sim.call(lambda c: next(iter(c.vswitches)))
    subnet.subnet_ids = [aci_models.ContainerGroupSubnetId(id=f"/subscriptions/s/x/subnets/{vsw}")]
    subnet.ip_address.type = "Private"
    assert "virtual network" in _refused(aci_sim, "vnet", subnet)[1]
    limited = _gpu_group()
    limited.containers[0].resources.limits = aci_models.ResourceLimits(gpu=aci_models.GpuResource(count=5, sku="V100"))
    assert "GPU count 5 of container 'main' (limits)" in _refused(aci_sim, "limits", limited)[1]
    mixed = group(containers=2)
    mixed.containers[0].resources.requests.gpu = aci_models.GpuResource(count=1, sku="V100")
    mixed.containers[1].resources.requests.gpu = aci_models.GpuResource(count=1, sku="K80")
    assert "one GPU SKU, not K80, V100" in _refused(aci_sim, "mixed", mixed)[1]
    assert aci_sim.call(lambda c: len(c.live)) == 0


def test_a_spot_group_with_gpus_is_refused_with_acis_code(aci_sim: SimThread) -> None:
    body = _gpu_group()
    body.priority = "Spot"
    code, message = _refused(aci_sim, "spotgpu", body)
    assert code == "SpotPriorityContainerGroupWithGPUResourcesNotSupported"
    assert "GPU resources are not supported" in message
    assert aci_sim.call(lambda c: len(c.live)) == 0


def test_a_gpu_sku_has_its_own_stock_and_its_stock_out_is_acis_409(aci_sim: SimThread) -> None:
    """The region's V100s run out apart from its CPUs: ARM answers 409 ServiceUnavailable, naming the SKU,
    while a group without GPUs is still placed."""
    sku_type = catalog.aci_gpu_type("V100")

    def no_v100(c: cloud.Cloud) -> None:
        for zone in c.stock:
            c.set_stock(zone, sku_type, 0)

    aci_sim.call(no_v100)
    with aci_sim.client() as client, pytest.raises(HttpResponseError) as info:
        client.container_groups.begin_create_or_update(RG, "train", _gpu_group("V100", 1), polling=False)
    assert (info.value.status_code, info.value.error.code) == (409, "ServiceUnavailable")
    assert sku_type in str(info.value.error.message)
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "k80", _gpu_group("K80", 1), polling=False)
        client.container_groups.begin_create_or_update(RG, "plain", group(), polling=False)
    assert aci_sim.call(lambda c: len(c.live)) == 2
