"""From a pod's resource requests to a size the cloud sells: quantities, the pod's total, rounding.

ECI sizes a pod as the sum of its containers' limits (a container without limits counts its
requests), at least the largest init container, 2 vCPU / 4 GiB when nothing is asked, or
whatever the ``k8s.aliyun.com/eci-use-specs`` annotation says; then rounds up to the
smallest size it sells that covers the request (7 vCPU / 13 GiB → 8 / 16) and bills that.
A pod larger than the largest size can never run: it fails fast instead of waiting forever.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import re
from collections.abc import Iterable, Mapping

from vnode import errors
from vnode.kube import objects

__all__ = ["ECI_SIZES", "SPECS_ANNOTATION", "Size", "cpu", "memory_bytes", "pod_request", "round_up"]

SPECS_ANNOTATION = "k8s.aliyun.com/eci-use-specs"
GIB = 2**30

_SUFFIX: dict[str, decimal.Decimal | int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def quantity(text: str) -> decimal.Decimal:
    """A Kubernetes quantity (``500m``, ``1.5Gi``, ``2e3``) as a number of base units."""
    match = _QUANTITY.match(text.strip())
    if not match or match.group(2) not in ("", *_SUFFIX):
        raise errors.InvalidSpec(f"invalid quantity {text!r}")
    number = decimal.Decimal(match.group(1))
    return number * decimal.Decimal(_SUFFIX[match.group(2)]) if match.group(2) else number


def cpu(text: str) -> float:
    return float(quantity(text))


def memory_bytes(text: str) -> float:
    return float(quantity(text))


@dataclasses.dataclass(frozen=True, order=True)
class Size:
    cpu: float
    memory_gib: float

    def __str__(self) -> str:
        return f"{self.cpu:g} vCPU / {self.memory_gib:g} GiB"


def _sizes() -> tuple[Size, ...]:
    table: dict[float, Iterable[float]] = {
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
    return tuple(sorted(Size(c, m) for c, mems in table.items() for m in mems))


#: Every vCPU/GiB combination ECI sells, smallest first.
ECI_SIZES = _sizes()
DEFAULT = Size(2, 4)


def round_up(want: Size, sizes: tuple[Size, ...] = ECI_SIZES) -> Size:
    """The smallest size covering ``want`` (fewest vCPU, then least memory); ``InvalidSpec`` if none does."""
    for size in sizes:
        if size.cpu >= want.cpu - 1e-9 and size.memory_gib >= want.memory_gib - 1e-9:
            return size
    largest = max(sizes)
    raise errors.InvalidSpec(f"the pod asks for {want}, more than the largest instance ({largest})")


def _container_request(container: objects.Container) -> Size:
    res = container.resources

    def pick(name: str) -> float:
        text = res.limits.get(name) or res.requests.get(name)
        if not text:
            return 0.0
        return cpu(text) if name == "cpu" else memory_bytes(text) / GIB

    return Size(pick("cpu"), pick("memory"))


def container_size(container: objects.Container) -> Size:
    return _container_request(container)


def pod_request(spec: objects.PodSpec, annotations: Mapping[str, str], default: Size = DEFAULT) -> tuple[Size, str]:
    """What the pod asks for, before rounding, and an explicit instance type if the annotation names one.

    Sum over containers of limits (else requests); at least every init container's; ``default``
    if nothing is asked at all.
    """
    specs = annotations.get(SPECS_ANNOTATION, "").strip()
    if specs:
        first = specs.split(",")[0].strip()
        match = re.fullmatch(r"([0-9.]+)-([0-9.]+)(Gi)?", first)
        if match:
            return Size(float(match.group(1)), float(match.group(2))), ""
        return Size(0, 0), first
    app = [_container_request(c) for c in spec.containers]
    init = [_container_request(c) for c in spec.init_containers]
    total_cpu = sum(s.cpu for s in app)
    total_mem = sum(s.memory_gib for s in app)
    total_cpu = max([total_cpu, *(s.cpu for s in init)])
    total_mem = max([total_mem, *(s.memory_gib for s in init)])
    if total_cpu == 0 and total_mem == 0:
        return default, ""
    if total_cpu == 0:
        total_cpu = 0.25
    if total_mem == 0:
        total_mem = 0.5
    return Size(total_cpu, total_mem), ""


def ceil_div(value: float, divisor: float) -> int:
    return math.ceil(value / divisor - 1e-12)
