"""A deleted process instance leaves its logs, its records and its runner's own log behind, for debugging."""

from __future__ import annotations

import pathlib

from vnode.provider.process import records


def test_retire_keeps_what_explains_the_instances_end(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "state" / "i-1"
    (directory / "logs").mkdir(parents=True)
    (directory / "logs" / "web.log").write_text("served\n")
    (directory / "state.json").write_text("{}")
    (directory / "status.json").write_text("{}")
    (directory / "runner.log").write_text("back-off 0.5s restarting failed container web\n")
    (directory / "root").mkdir()

    records.retire(directory)

    kept = tmp_path / "state-logs" / "i-1"
    assert not directory.exists()
    assert sorted(p.name for p in kept.iterdir()) == ["logs", "runner.log", "state.json", "status.json"]
    assert "back-off" in (kept / "runner.log").read_text()
