"""From a pod's resource requests to a size: quantities and the pod's total.

A pod's size is the sum of its containers' limits (a container without limits counts its
requests), at least the largest init container, the provider's default size when nothing is
asked, or whatever the provider's specs annotation says. The provider's profile then rounds
it to a size its cloud sells (``profile.Profile.round``); a pod larger than the largest size
can never run and fails fast instead of waiting forever.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping

from vnode import errors
from vnode.kube import objects
from vnode.provider import profile

__all__ = ["GPU", "Size", "container_gpus", "cpu", "memory_bytes", "pod_request", "round_up"]

#: The extended resource a container asks GPUs by.
GPU = "nvidia.com/gpu"

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
_MAX_QUANTITY = 2**63 - 1  # what the API server caps a quantity at
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def quantity(text: str) -> decimal.Decimal:
    """A Kubernetes quantity (``500m``, ``1.5Gi``, ``2e3``) as a number of base units."""
    match = _QUANTITY.match(text.strip())
    if not match or match.group(2) not in ("", *_SUFFIX):
        raise errors.InvalidSpec(f"invalid quantity {text!r}")
    try:
        number = decimal.Decimal(match.group(1))
        if match.group(2):
            number *= decimal.Decimal(_SUFFIX[match.group(2)])
    except decimal.DecimalException:  # "1.2.3" or "." pass the pattern; Decimal refuses them
        raise errors.InvalidSpec(f"invalid quantity {text!r}") from None
    if abs(number) > _MAX_QUANTITY:  # or the error naming it cannot even print it (over 4300 digits)
        raise errors.InvalidSpec(f"quantity {text[:40]!r} is larger than Kubernetes allows (2^63-1)")
    return number


def cpu(text: str) -> float:
    return float(quantity(text))


def memory_bytes(text: str) -> float:
    return float(quantity(text))


Size = profile.Size
DEFAULT = Size(2, 4)


def round_up(want: Size, sizes: tuple[Size, ...]) -> Size:
    """The smallest of ``sizes`` covering ``want``; ``InvalidSpec`` if none does."""
    return profile.round_to_table(want, sizes)


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


def container_gpus(container: objects.Container) -> int:
    """The ``nvidia.com/gpu`` a container asks for (its limit, else its request): a whole number."""
    res = container.resources
    text = res.limits.get(GPU) or res.requests.get(GPU)
    if not text:
        return 0
    count = quantity(text)
    if count < 0 or count != count.to_integral_value():
        raise errors.InvalidSpec(f"container {container.name}: {GPU} {text!r} is not a whole number of GPUs")
    return int(count)


def pod_request(
    spec: objects.PodSpec, annotations: Mapping[str, str], default: Size = DEFAULT, specs_annotation: str = ""
) -> tuple[Size, str]:
    """What the pod asks for, before rounding, and an explicit instance type if the annotation names one.

    Sum over containers of limits (else requests); at least every init container's; ``default``
    if nothing is asked at all. ``specs_annotation`` (the provider's, if it has one) names
    explicit specs: ``4-8Gi`` (a size) or instance types, the first of which is taken.
    """
    specs = annotations.get(specs_annotation, "").strip() if specs_annotation else ""
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
