"""ECI's spot annotations into CreateContainerGroup's Spot* parameters, and the refusals that name the annotation."""

from __future__ import annotations

import pytest

from vnode import errors
from vnode.provider.eci import profile as eci_profile
from vnode.provider.eci import spot

S, L, D, F, R = spot.STRATEGY, spot.PRICE_LIMIT, spot.DURATION, spot.FALLBACK, spot.RELEASE_STRATEGY


@pytest.mark.parametrize(
    ("annotations", "params"),
    [
        ({}, {}),
        ({S: "SpotAsPriceGo"}, {"SpotStrategy": "SpotAsPriceGo"}),
        ({S: "SpotAsPriceGo", R: "api-evict"}, {"SpotStrategy": "SpotAsPriceGo"}),  # vnode's, not the cloud's
        ({S: "SpotAsPriceGo", D: "0"}, {"SpotStrategy": "SpotAsPriceGo", "SpotDuration": "0"}),
        (
            {S: "SpotWithPriceLimit", L: "0.125", F: "true"},
            {"SpotStrategy": "SpotWithPriceLimit", "SpotPriceLimit": "0.125"},
        ),
    ],
)
def test_annotations_map_to_the_sdk_parameters(annotations: dict[str, str], params: dict[str, str]) -> None:
    assert spot.params(annotations) == params


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        ({S: "Cheap"}, S),
        ({S: "SpotWithPriceLimit"}, L),
        ({S: "SpotWithPriceLimit", L: "0.1234"}, L),
        ({S: "SpotAsPriceGo", L: "0.1"}, L),
        ({S: "SpotAsPriceGo", D: "one"}, D),
        ({S: "SpotAsPriceGo", F: "yes"}, F),
        ({D: "1"}, D),
        ({S: "SpotAsPriceGo", R: "evict"}, R),
        ({R: "api-evict"}, R),
    ],
)
def test_a_bad_value_is_refused_naming_the_annotation(annotations: dict[str, str], named: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=named):
        spot.params(annotations)


def test_fallback_is_off_by_default() -> None:
    assert not spot.wants_fallback({S: "SpotAsPriceGo"})
    assert spot.wants_fallback({S: "SpotAsPriceGo", F: "true"})


def test_the_profile_evicts_the_pods_that_ask_with_the_release_strategy() -> None:
    assert eci_profile.PROFILE.reclaim_eviction == (R, "api-evict")
