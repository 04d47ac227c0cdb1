"""ACI's GPUs: each container's ``resources.requests.gpu`` checked as ACI does, kept as the group's type.

A container's ``{count, sku}`` (and the same under ``limits``, if given) is checked: ACI attaches
K80, P100 or V100 GPUs, 1, 2 or 4 to a container, to Linux groups outside a virtual network, and
a group with GPUs may ask at most the vCPU and GB its SKU allows for that many
(``catalog.ACI_GPU_SKUS``, ACI's published maxima). A Spot group with GPUs is refused with ACI's
own code, ``SpotPriorityContainerGroupWithGPUResourcesNotSupported``. The other refusals are
``InvalidGpuResourceRequest``, a name of the simulator's (ACI's documentation gives none); so are
two of its readings: a group's containers share one SKU, and the caps apply to the group's GPUs
together (the smallest count of the table covering them).

The group's SKU is kept as its ``instance_type`` (``catalog.aci_gpu_type``), which the placement
leaves sized by the containers and the bill prices per GPU (an estimate, see the catalog).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from vnode.cloudsim import aci_arm, catalog

__all__ = ["CODE", "SPOT_CODE", "Gpu", "check", "resource"]

CODE = "InvalidGpuResourceRequest"  # the simulator's name
SPOT_CODE = "SpotPriorityContainerGroupWithGPUResourcesNotSupported"  # ACI's


class Gpu(msgspec.Struct):
    """GpuResource: how many GPUs of which SKU."""

    count: int
    sku: str


def _checked(where: str, gpu: Gpu) -> None:
    sizes = catalog.ACI_GPU_SKUS.get(gpu.sku)
    if sizes is None:
        raise aci_arm.ArmError(
            400, CODE, f"The GPU SKU '{gpu.sku}' of {where} is not supported: one of {', '.join(catalog.ACI_GPU_SKUS)}."
        )
    if gpu.count not in sizes:
        counts = ", ".join(map(str, sorted(sizes)))
        raise aci_arm.ArmError(400, CODE, f"The GPU count {gpu.count} of {where} is not supported: one of {counts}.")


def check(
    containers: Sequence[tuple[str, Gpu | None, Gpu | None, float, float]],
    *,
    os_type: str,
    priority: str | None,
    subnets: bool,
) -> str:
    """The group's GPU type (``catalog.aci_gpu_type``; "" without GPUs), from each container's
    (name, requests.gpu, limits.gpu, cpu, GB); ``ArmError`` for what ACI refuses."""
    asked: list[tuple[str, Gpu]] = []
    for name, request, limit, _, _ in containers:
        for part, gpu in (("requests", request), ("limits", limit)):
            if gpu is not None:
                _checked(f"container '{name}' ({part})", gpu)
        if request is not None:
            asked.append((name, request))
    if not asked:
        return ""
    if priority == "Spot":
        raise aci_arm.ArmError(
            400,
            SPOT_CODE,
            "Spot Priority Container Groups that include containers requesting GPU resources are not supported.",
        )
    if os_type != "Linux":
        raise aci_arm.ArmError(
            400, CODE, f"GPU resources are supported only for Linux container groups, not {os_type}."
        )
    if subnets:
        raise aci_arm.ArmError(400, CODE, "GPU resources are not supported for container groups in a virtual network.")
    skus = sorted({gpu.sku for _, gpu in asked})
    if len(skus) > 1:
        raise aci_arm.ArmError(400, CODE, f"The containers of a group must use one GPU SKU, not {', '.join(skus)}.")
    return _within(skus[0], sum(gpu.count for _, gpu in asked), containers)


def _within(sku: str, total: int, containers: Sequence[tuple[str, Gpu | None, Gpu | None, float, float]]) -> str:
    sizes = catalog.ACI_GPU_SKUS[sku]
    count = next((n for n in sorted(sizes) if n >= total), None)
    if count is None:
        raise aci_arm.ArmError(400, CODE, f"The group asks for {total} {sku} GPUs, more than {max(sizes)}.")
    cpu, memory = sum(c[3] for c in containers), sum(c[4] for c in containers)
    most_cpu, most_memory = sizes[count]
    if cpu > most_cpu + 1e-9 or memory > most_memory + 1e-9:
        raise aci_arm.ArmError(
            400,
            CODE,
            f"The group asks for {cpu:g} CPU and {memory:g} GB with {total} {sku} GPUs: "
            f"at most {most_cpu:g} CPU and {most_memory:g} GB with {count}.",
        )
    return catalog.aci_gpu_type(sku)


def resource(instance_type: str, count: int) -> dict[str, object] | None:
    """A container's ``gpu`` as GET shows it (None: the container has none)."""
    sku = catalog.aci_gpu_sku(instance_type)
    return {"count": count, "sku": sku} if count and sku else None
