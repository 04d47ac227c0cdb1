"""The simulator's any-image setting (``vnode cloudsim --any-image``), for conformance runs.

virtual-kubelet's e2e suite runs pods whose images are named ``foo``, ``bar``, ``baz``: with the
setting, every image pulls and one outside the catalog runs until stopped, as virtual-kubelet's
mock provider runs any image; without it (the default), they fail to pull as a registry would.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from alibabacloud_eci20180808.client import Client

from tests.cloudsim.conftest import Sim, container, create_request
from tests.cloudsim.test_eci_sdk import describe_one
from vnode.cloudsim import lifecycle


@pytest.fixture(scope="module")
def any_image_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    state = tmp_path_factory.mktemp("cloudsim-any-image")
    profile = state / "profile.json"
    profile.write_text(lifecycle.PROFILES["fast"].model_copy(update={"any_image": True}).model_dump_json())
    sim = Sim(state / "sim", profile=str(profile))
    try:
        yield sim.start()
    finally:
        sim.stop()


def _run(sim: Sim, eci: Client, name: str) -> str:
    request = create_request(sim, name, container("foo", "foo"), container("bar", "bar"), restart_policy="Never")
    group_id = str(eci.create_container_group(request).body.container_group_id)
    sim.advance(5)
    return group_id


def test_any_image_runs_images_outside_the_catalog(any_image_sim: Sim) -> None:
    eci = any_image_sim.client()
    group = describe_one(eci, any_image_sim, _run(any_image_sim, eci, "conformance"))
    assert group.status == "Running"
    assert [c.current_state.state for c in group.containers] == ["Running", "Running"]


def test_by_default_those_images_fail_to_pull(sim: Sim, eci: Client) -> None:
    group = describe_one(eci, sim, _run(sim, eci, "strict"))
    assert group.status == "Pending"  # ECI pulls again until its maximum pending time
    assert group.containers[0].current_state.reason in ("ErrImagePull", "ImagePullBackOff")


def test_the_profile_setting_is_off_unless_asked(tmp_path: pathlib.Path) -> None:
    assert not any(p.any_image for p in lifecycle.PROFILES.values())
    assert lifecycle.Profile(name="x").any_image is False
