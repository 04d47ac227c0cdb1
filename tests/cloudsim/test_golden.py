"""Golden lifecycle traces: a set of instances plus a profile and a seed give an exact trace.

Regenerate after an intended change with ``VNODE_GOLDEN_UPDATE=1 pytest tests/cloudsim/test_golden.py``
and review the diff of ``tests/cloudsim/golden/``.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from vnode.cloudsim import clock, cloud, lifecycle, model, store, timefmt

GOLDEN = pathlib.Path(__file__).parent / "golden"
UPDATE = os.environ.get("VNODE_GOLDEN_UPDATE") == "1"
STEP, HORIZON = 0.5, 240.0


def spec(name: str, image: str, *command: str, policy: str = "Always", **tags: str) -> model.InstanceSpec:
    return model.InstanceSpec(
        name=name,
        containers=(model.ContainerSpec(name="main", image=image, command=command),),
        vswitch_ids=(),
        security_group_id="",
        restart_policy=policy,
        tags=tuple(model.Tag(k, v) for k, v in tags.items()),
    )


SCENARIOS = [
    spec("web", "nginx:1.27"),
    spec("pi", "perl:5.34", "perl", "-Mbignum=bpi", "-wle", "print bpi(2000)", policy="Never"),
    spec("sleep-30", "busybox", "sleep", "30", policy="OnFailure"),
    spec("crash", "busybox", "sh", "-c", "exit 3", policy="Always"),
    spec("exit-3-never", "busybox", "sh", "-c", "exit 3", policy="Never"),
    spec("no-image", "example.com/nope:1", policy="Never"),
    spec("delayed", "nginx", **{lifecycle.TAG_DELAY: "50"}),
    spec("forced-fail", "nginx", policy="Never", **{lifecycle.TAG_FAIL: "start"}),
    spec("not-scheduled", "nginx", **{lifecycle.TAG_FAIL: "schedule"}),
]


def trace(profile: str, tmp_path: pathlib.Path) -> str:
    sim = cloud.Cloud(
        store=store.Store(tmp_path / f"{profile}.db"),
        clock=clock.Clock.manual(),
        profile=lifecycle.PROFILES[profile],
        seed=42,
    )
    vswitches = tuple(v[0] for v in sim.world.vswitches)
    group = sim.world.security_groups[0][0]
    start = sim.now()
    names: dict[str, str] = {}
    for scenario in SCENARIOS:
        inst = sim.create(
            model.InstanceSpec(**{**_fields(scenario), "vswitch_ids": vswitches, "security_group_id": group})
        )
        names[inst.id] = scenario.name
    lines: list[str] = []
    last: dict[str, tuple[str, str, int]] = {}
    t = 0.0
    while t <= HORIZON:
        for inst in list(sim.live.values()):
            containers = " ".join(
                f"{c.name}:{c.current.state}"
                + (f"({c.current.exit_code})" if c.current.state == "Terminated" else "")
                + f"/r{c.restart_count}"
                for c in inst.containers
            )
            seen = last.get(inst.id, ("", "", 0))
            if (inst.status, containers) != seen[:2] or len(inst.events) != seen[2]:
                new_events = ", ".join(f"{e.type[0]}:{e.reason}" for e in inst.events[seen[2] :])
                cost = sim.cost(inst)
                line = f"+{t:6.1f}s {names[inst.id]:<14} {inst.status:<15} {containers:<28} ${cost:.7f}  {new_events}"
                lines.append(line.rstrip())
                last[inst.id] = (inst.status, containers, len(inst.events))
        t += STEP
        sim.advance(STEP)
    header = f"# profile={profile} seed=42 step={STEP}s horizon={HORIZON}s (start {timefmt.rfc3339(start)})\n"
    return header + "\n".join(lines) + "\n"


def _fields(scenario: model.InstanceSpec) -> dict[str, object]:
    return {f: getattr(scenario, f) for f in scenario.__struct_fields__}


@pytest.mark.parametrize("profile", sorted(lifecycle.PROFILES))
def test_lifecycle_trace_matches_golden(profile: str, tmp_path: pathlib.Path) -> None:
    got = trace(profile, tmp_path)
    golden = GOLDEN / f"{profile}.txt"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(got)
    assert golden.exists(), f"no {golden}: run with VNODE_GOLDEN_UPDATE=1"
    assert got == golden.read_text()


def test_the_trace_does_not_depend_on_how_often_time_is_sampled(tmp_path: pathlib.Path) -> None:
    """One 240 s jump and 480 half-second steps reach the same state: steps carry their own times."""
    a = cloud.Cloud(
        store=store.Store(tmp_path / "a.db"), clock=clock.Clock.manual(), profile=lifecycle.PROFILES["chaos"], seed=9
    )
    b = cloud.Cloud(
        store=store.Store(tmp_path / "b.db"), clock=clock.Clock.manual(), profile=lifecycle.PROFILES["chaos"], seed=9
    )
    for sim in (a, b):
        vswitches = tuple(v[0] for v in sim.world.vswitches)
        for scenario in SCENARIOS:
            fields = {
                **_fields(scenario),
                "vswitch_ids": vswitches,
                "security_group_id": sim.world.security_groups[0][0],
            }
            sim.create(model.InstanceSpec(**fields))  # type: ignore[arg-type]
    a.advance(HORIZON)
    for _ in range(int(HORIZON / STEP)):
        b.advance(STEP)
    assert [(i.status, i.events) for i in a.live.values()] == [(i.status, i.events) for i in b.live.values()]
