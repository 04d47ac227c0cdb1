"""Every section of ``make bench`` draws its plot (issue #14): the restart's requests per second after
the kill, the fleet's nodes Ready over time with each daemon's memory, the scale runs' pods over time;
each section links its image."""

from __future__ import annotations

import pathlib

from bench import restart, scale_report, shapes
from bench.scale_pods import Run

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_restart_section_draws_the_daemons_requests_after_the_kill(tmp_path: pathlib.Path) -> None:
    r = restart.Restart(pods=100, nodes=4, pods_on_node=25, adopted_seconds=1.7)
    r.timeline = [(0.5, "list"), (0.6, "watch"), (1.8, "patch"), (61.0, "patch"), (-1.0, "get")]  # two outside
    r.calls.update({"list pods": 1, "watch pods": 1, "patch leases": 1})
    restart.plot_restart(r, tmp_path / "restart.png")
    assert (tmp_path / "restart.png").read_bytes().startswith(PNG)
    text = restart.render_restart(r)
    assert "(bench-restart.png)" in text
    assert "(1 writes in all)" in text


def test_the_fleet_section_draws_nodes_ready_over_time_and_each_daemons_memory(tmp_path: pathlib.Path) -> None:
    f = shapes.Fleet(nodes=3, ready_seconds=9.0, idle_cpu_share=[0.001] * 3, rss_mb=[55, 56, 54])
    f.private_mb, f.ready_after = [36, 37, 36], [4.0, 7.0, 9.0]
    shapes.plot_fleet(f, tmp_path / "fleet.png")
    assert (tmp_path / "fleet.png").read_bytes().startswith(PNG)
    assert "(bench-fleet.png)" in shapes.render_fleet(f)


def test_the_scale_sections_draw_pods_created_and_running_over_time(tmp_path: pathlib.Path) -> None:
    runs = []
    for target, rate in (("kwok", 200.0), ("vnode", 150.0)):
        run = Run(target, 100, 4, started_at=10.0)
        run.created = {f"p{i}": 10.0 + i / 500 for i in range(100)}
        run.running = {f"p{i}": 10.5 + i / rate for i in range(100)}
        runs.append(run)
    scale_report.plot(runs, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").read_bytes().startswith(PNG)
