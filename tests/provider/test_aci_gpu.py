"""The ACI provider's GPUs against the simulator's ARM dialect: a GPU pod's group is read back with
its SKU and count, and a Spot GPU pod is refused by ACI with its own code, as ``InvalidSpec``."""

from __future__ import annotations

import dataclasses

import pytest

from tests.cloudsim.conftest import Sim
from tests.provider.test_aci import NODE_TAGS, aci_sim, provider, sim, spec
from vnode import errors, models
from vnode.provider.aci import mapping
from vnode.provider.aci import provider as aci

__all__ = ["aci_sim", "provider", "sim"]  # the fixtures, imported to be used here


def gpu_spec(name: str, gpus: int, annotations: dict[str, str]) -> models.InstanceSpec:
    given = spec(name, annotations=annotations)
    return dataclasses.replace(given, containers=tuple(dataclasses.replace(c, gpus=gpus) for c in given.containers))


async def test_a_gpu_group_is_read_back_and_a_spot_one_refused_by_aci(sim: Sim, provider: aci.AciProvider) -> None:
    created = await provider.create(gpu_spec("train", 2, {mapping.GPU_TYPE: "p100"}))
    assert (created.instance_type, created.gpus) == ("P100", 2)
    with pytest.raises(errors.InvalidSpec, match="SpotPriorityContainerGroupWithGPUResourcesNotSupported"):
        await provider.create(gpu_spec("cheap", 1, {mapping.GPU_TYPE: "V100", mapping.PRIORITY: "Spot"}))
    assert [s.id for s in await provider.list(NODE_TAGS)] == ["train"]
