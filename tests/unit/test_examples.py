"""The README's example manifests say what vnode reads: each annotation the provider accepts."""

from __future__ import annotations

import pathlib

import yaml

from vnode.provider.eci import profile as eci_profile
from vnode.provider.eci import spot

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_the_spot_example_asks_for_spot_and_api_evict_with_a_budget_over_its_pods() -> None:
    deployment, budget = yaml.safe_load_all((EXAMPLES / "spot-deployment.yaml").read_text())
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert spot.params(annotations)["SpotStrategy"] == "SpotAsPriceGo"  # refused values would raise
    key, value = eci_profile.PROFILE.reclaim_eviction
    assert annotations[key] == value
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    (toleration,) = template["spec"]["tolerations"]
    assert toleration["value"] == eci_profile.PROFILE.taint
