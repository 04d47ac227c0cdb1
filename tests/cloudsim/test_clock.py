"""The simulated clock answers a client's durations in the client's seconds.

ECI's ``SinceSecond`` asks for what changed in the last N seconds of the caller's clock. On a
clock running 10x fast (the kubectl matrix, the e2e tests) the simulator once read N as simulated
seconds, so an incremental listing missed an instance made a moment before, and the node lost
it from view until a full listing.
"""

from __future__ import annotations

import pathlib

from vnode.cloudsim import cloud, eci, eci_params, lifecycle
from vnode.cloudsim.clock import Clock
from vnode.cloudsim.store import Store


class Wall:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_ago_is_the_simulated_time_it_was_that_many_wall_seconds_before() -> None:
    wall = Wall()
    clock = Clock(scale=10.0, anchor_sim=5_000.0, anchor_wall=wall.t, wall=wall)
    wall.t += 3
    assert clock.now() == 5_030.0
    assert clock.ago(1) == 5_020.0  # one wall second is ten simulated ones
    clock.set_scale(0.0)  # paused at 5030
    wall.t += 5
    clock.advance(100)  # 5130, at wall 1008
    wall.t += 2
    assert clock.now() == 5_130.0
    assert clock.ago(1) == 5_130.0  # after the jump
    assert clock.ago(4) == 5_030.0  # paused, before the jump
    assert clock.ago(8) == 5_020.0  # still running at 10x then
    assert clock.ago(3_600) <= 5_000.0  # before every anchor: never later than the truth


def test_an_unscaled_clock_answers_as_before() -> None:
    wall = Wall()
    clock = Clock(scale=1.0, anchor_sim=wall.t, anchor_wall=wall.t, wall=wall)
    wall.t += 50
    assert clock.ago(20) == clock.now() - 20


async def _commit() -> None:
    return None


def test_since_second_on_a_fast_clock_lists_what_changed_in_the_callers_last_seconds(tmp_path: pathlib.Path) -> None:
    wall = Wall()
    clock = Clock(scale=10.0, anchor_sim=wall.t, anchor_wall=wall.t, wall=wall)
    sim = cloud.Cloud(store=Store(tmp_path / "c.db"), clock=clock, profile=lifecycle.PROFILES["fast"], seed=3)
    dialect = eci.Eci(sim, commit=_commit)
    region, (vswitch, _, _), (group, _) = sim.world.region, sim.world.vswitches[0], sim.world.security_groups[0]
    made = dialect.create(
        eci_params.Params(
            [
                ("RegionId", region),
                ("ContainerGroupName", "web"),
                ("VSwitchId", vswitch),
                ("SecurityGroupId", group),
                ("Container.1.Name", "app"),
                ("Container.1.Image", "nginx"),
            ]
        )
    )
    wall.t += 2  # 20 simulated seconds later, the caller asks what changed in its last 5 seconds
    answer = dialect.status(eci_params.Params([("RegionId", region), ("SinceSecond", "5")]))
    listed = [item for item in answer["Data"]]
    assert answer["TotalCount"] == 1, listed
    assert made["ContainerGroupId"]
