"""Pod size: sum of limits else requests, init containers, the eci-use-specs annotation, rounding to ECI sizes."""

from __future__ import annotations

import pytest

from vnode import errors
from vnode.kube import objects
from vnode.node import resources
from vnode.provider.eci import profile as eci_profile

ANNOTATION = eci_profile.PROFILE.specs_annotation


def container(limits: dict[str, str] | None = None, requests: dict[str, str] | None = None) -> objects.Container:
    return objects.Container(name="c", resources=objects.Resources(limits=limits or {}, requests=requests or {}))


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("1Gi", 2**30), ("512Mi", 2**29), ("1G", 1e9), ("1e3", 1000.0)],
)
def test_quantities(text: str, value: float) -> None:
    assert float(resources.quantity(text)) == value


def test_invalid_quantity_is_an_invalid_spec() -> None:
    with pytest.raises(errors.InvalidSpec):
        resources.quantity("lots")


@pytest.mark.parametrize(
    ("want", "size"),
    [
        ((7, 13), (8, 16)),
        ((0.1, 0.1), (0.25, 0.5)),
        ((2, 4), (2, 4)),
        ((3, 1), (4, 2)),
        ((12, 30), (12, 48)),
        ((50, 100), (52, 192)),
        ((64, 512), (64, 512)),
    ],
)
def test_rounding_up_to_the_smallest_covering_eci_size(want: tuple[float, float], size: tuple[float, float]) -> None:
    assert resources.round_up(resources.Size(*want), eci_profile.SIZES) == resources.Size(*size)


def test_65_vcpu_can_never_run() -> None:
    with pytest.raises(errors.InvalidSpec, match="65 vCPU"):
        resources.round_up(resources.Size(65, 64), eci_profile.SIZES)


def test_pod_size_sums_limits_else_requests_and_covers_init_containers() -> None:
    spec = objects.PodSpec(
        containers=[container({"cpu": "1", "memory": "2Gi"}), container(requests={"cpu": "500m", "memory": "1Gi"})],
        init_containers=[container({"cpu": "3", "memory": "1Gi"})],
    )
    assert resources.pod_request(spec, {}) == (resources.Size(3, 3), "")


def test_pod_size_defaults_and_annotation() -> None:
    spec = objects.PodSpec(containers=[container()])
    assert resources.pod_request(spec, {}) == (resources.Size(2, 4), "")
    assert resources.pod_request(spec, {ANNOTATION: "4-8Gi"}, specs_annotation=ANNOTATION) == (resources.Size(4, 8), "")
    assert resources.pod_request(spec, {ANNOTATION: "ecs.c5.large,ecs.g5.large"}, specs_annotation=ANNOTATION) == (
        resources.Size(0, 0),
        "ecs.c5.large",
    )


@pytest.mark.parametrize("text", ["1.2.3", ".", "1..5Gi", "9" * 5000, "1e30", "-1e30", "99999999999Ei"])
def test_a_quantity_no_api_server_would_keep_is_invalid_spec(text: str) -> None:
    """Found by tests/fuzz/test_pod_translation.py: "1.2.3" raised decimal.InvalidOperation, and a
    5000-digit GPU count a ValueError when its refusal was formatted (int's 4300-digit limit)."""
    with pytest.raises(errors.InvalidSpec, match="quantity"):
        resources.quantity(text)


def test_the_largest_quantity_kubernetes_keeps_is_a_quantity() -> None:
    assert resources.quantity(str(2**63 - 1)) == 2**63 - 1
    assert resources.quantity("7Ei") == 7 * 2**60
