"""The ECI spec catalog: which vCPU/GiB sizes exist, how a request rounds up, what a second costs.

A request that matches no size is rounded up to the smallest size covering it (fewest vCPUs,
then least memory) and billed at that size, as ECI does (7 vCPU / 13 GiB runs as 8 / 16).
Prices are ECI's published pay-as-you-go figures per second; see ../shared/CONTEXT.md.
"""

from __future__ import annotations

import dataclasses
import functools

USD_PER_VCPU_SECOND = 0.0000077
USD_PER_GIB_SECOND = 0.00000096
# A cloud disk (ESSD PL1, pay-as-you-go), per GiB and second: about USD 0.14 a GiB-month. UNCONFIRMED:
# the published price varies by region and category; this is the order of magnitude.
USD_PER_DISK_GIB_SECOND = 0.000000054
MAX_VCPU = 64.0
DEFAULT_SPEC = (2.0, 4.0)

_MEMORY_BY_VCPU: dict[float, tuple[float, ...]] = {
    0.25: (0.5, 1),
    0.5: (1, 2),
    1: (2, 4, 8),
    2: (1, 2, 4, 8, 16),
    4: (2, 4, 8, 16, 32),
    8: (4, 8, 16, 32, 64),
    12: (12, 24, 48, 96),
    16: (16, 32, 64, 128),
    24: (24, 48, 96, 192),
    32: (32, 64, 128, 256),
    52: (96, 192, 384),
    64: (128, 256, 512),
}


@dataclasses.dataclass(frozen=True, order=True)
class Spec:
    """One size of instance: vCPUs and GiB of memory."""

    cpu: float
    memory: float

    @property
    def key(self) -> str:
        """A short stable name, e.g. ``2-4`` or ``0.25-0.5``, used for stock and totals."""
        return spec_key(self.cpu, self.memory)

    def usd_per_second(self) -> float:
        return self.cpu * USD_PER_VCPU_SECOND + self.memory * USD_PER_GIB_SECOND


SPECS: tuple[Spec, ...] = tuple(
    sorted(Spec(float(cpu), float(mem)) for cpu, mems in _MEMORY_BY_VCPU.items() for mem in mems)
)


class SpecError(ValueError):
    """No instance size covers the request (more than 64 vCPU, or more memory than any size)."""


def round_up(cpu: float, memory: float) -> Spec:
    """The smallest catalog size with at least ``cpu`` vCPUs and ``memory`` GiB."""
    if cpu <= 0 or memory <= 0:
        raise SpecError(f"cpu and memory must be positive, got {_num(cpu)} vCPU / {_num(memory)} GiB")
    if cpu > MAX_VCPU:
        raise SpecError(f"{_num(cpu)} vCPU is more than the largest size ({_num(MAX_VCPU)} vCPU)")
    for spec in SPECS:
        if spec.cpu >= cpu and spec.memory >= memory:
            return spec
    raise SpecError(f"no size covers {_num(cpu)} vCPU / {_num(memory)} GiB")


@functools.lru_cache(maxsize=256)
def spec_key(cpu: float, memory: float) -> str:
    """``Spec(cpu, memory).key``, remembered (the catalog has 50 sizes)."""
    return f"{_num(cpu)}-{_num(memory)}"


def cost(spec: Spec, seconds: float, disk_gib: float = 0.0) -> float:
    """What ``seconds`` of running at ``spec`` costs, in USD, with ``disk_gib`` of cloud disk attached."""
    return (spec.usd_per_second() + disk_gib * USD_PER_DISK_GIB_SECOND) * seconds


@dataclasses.dataclass(frozen=True)
class GpuType:
    """An ECS GPU instance type ECI runs (``InstanceType``): its size and its GPUs."""

    cpu: float
    memory: float
    gpus: int
    gpu_model: str

    def usd_per_second(self) -> float:
        return Spec(self.cpu, self.memory).usd_per_second() + self.gpus * USD_PER_GPU_SECOND[self.gpu_model]


#: Per GPU, on top of the vCPU/GiB price: estimates of the order of Alibaba's list prices (about
#: 0.9, 2.7 and 1.4 USD an hour), not published ECI figures.
USD_PER_GPU_SECOND = {"T4": 0.00025, "V100": 0.00075, "A10": 0.0004}

#: The GPU types the simulated region sells (ECS instance-family tables); others are refused.
GPU_TYPES: dict[str, GpuType] = {
    "ecs.gn6i-c4g1.xlarge": GpuType(4, 15, 1, "T4"),
    "ecs.gn6i-c8g1.2xlarge": GpuType(8, 31, 1, "T4"),
    "ecs.gn6i-c16g1.4xlarge": GpuType(16, 62, 1, "T4"),
    "ecs.gn6i-c24g1.12xlarge": GpuType(48, 186, 2, "T4"),
    "ecs.gn6v-c8g1.2xlarge": GpuType(8, 32, 1, "V100"),
    "ecs.gn6v-c8g1.4xlarge": GpuType(16, 64, 2, "V100"),
    "ecs.gn6v-c8g1.8xlarge": GpuType(32, 128, 4, "V100"),
    "ecs.gn6v-c8g1.16xlarge": GpuType(64, 256, 8, "V100"),
    "ecs.gn7i-c8g1.2xlarge": GpuType(8, 30, 1, "A10"),
}

#: Prefixes of ECS GPU families: such an ``InstanceType`` not in ``GPU_TYPES`` is refused.
GPU_FAMILIES = ("ecs.gn", "ecs.vgn", "ecs.sgn")


#: ACI's GPU SKUs: per GPU count, the most vCPU and GB a container group with that many may ask
#: (ACI's published maxima).
ACI_GPU_SKUS: dict[str, dict[int, tuple[float, float]]] = {
    "K80": {1: (6, 56), 2: (12, 112), 4: (24, 224)},
    "P100": {1: (6, 112), 2: (12, 224), 4: (24, 448)},
    "V100": {1: (6, 112), 2: (12, 224), 4: (24, 448)},
}

#: Per ACI GPU, on top of the vCPU/GiB price: estimates of the order of Azure's NC-series list
#: prices (about 0.9, 2.1 and 3.1 USD an hour), not published ACI figures.
ACI_USD_PER_GPU_SECOND = {"K80": 0.00025, "P100": 0.00058, "V100": 0.00085}

_ACI_GPU_PREFIX = "aci-gpu-"  # the simulator's own instance type of an ACI group with GPUs


def aci_gpu_type(sku: str) -> str:
    """The instance type an ACI container group with GPUs of ``sku`` is recorded with."""
    return _ACI_GPU_PREFIX + sku


def aci_gpu_sku(instance_type: str) -> str:
    """The SKU of an ACI GPU group's instance type ("" for any other type)."""
    sku = instance_type.removeprefix(_ACI_GPU_PREFIX)
    return sku if instance_type.startswith(_ACI_GPU_PREFIX) and sku in ACI_GPU_SKUS else ""


def stock_key(instance_type: str, cpu: float, memory: float) -> str:
    """What a zone's stock of an instance counts: its GPU type (an ECS GPU type, an ACI group's GPU
    SKU as ``aci-gpu-<SKU>``), which a zone has its own few of; else its size (``2-4``)."""
    if instance_type in GPU_TYPES or aci_gpu_sku(instance_type):
        return instance_type
    return spec_key(cpu, memory)


def stock_keys() -> set[str]:
    """Every key a zone's stock may be set for: the catalog's sizes and the GPU types."""
    return {s.key for s in SPECS} | set(GPU_TYPES) | {aci_gpu_type(sku) for sku in ACI_GPU_SKUS}


def usd_per_second(cpu: float, memory: float, instance_type: str = "", gpus: int = 0) -> float:
    """What a second of an instance costs: its GPU type's price, else its size's (plus, for an ACI
    group with ``gpus``, their estimated price)."""
    gpu = GPU_TYPES.get(instance_type)
    if gpu:
        return gpu.usd_per_second()
    sku = aci_gpu_sku(instance_type)
    extra = gpus * ACI_USD_PER_GPU_SECOND[sku] if sku else 0.0
    return Spec(cpu, memory).usd_per_second() + extra


def _num(value: float) -> str:
    return f"{value:g}"
