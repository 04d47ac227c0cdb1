"""A benchmark whose node never comes Ready says why: each such node's process, alive or ended, and the
end of its log (a fleet run lost one node of fifty, and with it the section, saying only its name);
and the ports its processes listen on are not ones the kernel also gives outgoing connections."""

from __future__ import annotations

import pathlib
import sys

from bench import scale_targets
from vnode.cluster import procs


def test_a_node_not_ready_is_reported_with_its_process_and_the_end_of_its_log(tmp_path: pathlib.Path) -> None:
    supervisor = procs.Supervisor(tmp_path / "record.json", tmp_path / "logs")
    try:
        ended = supervisor.spawn("n-0", [sys.executable, "-c", "print('cannot reach the cloud'); raise SystemExit(3)"])
        ended.wait(timeout=30)
        running = supervisor.spawn(
            "n-1", [sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(60)"]
        )
        exc = scale_targets.NotReady("nodes not Ready after 60s: ['n-0', 'n-1']", ["n-0", "n-1"])
        told = str(scale_targets._tell_why(exc, supervisor, {"n-0": ended.pid, "n-1": running.pid}))
    finally:
        supervisor.stop()
    assert told.startswith("nodes not Ready after 60s")
    assert f"--- n-0 (pid {ended.pid}, ended)" in told
    assert "cannot reach the cloud" in told
    assert f"--- n-1 (pid {running.pid}, running)" in told


def test_the_ports_handed_to_the_benchmarks_processes_are_below_the_ephemeral_range_and_never_twice() -> None:
    """Outgoing connections get ports from the ephemeral range: a daemon's listening port must not be one."""
    low, _ = scale_targets._ephemeral_range()
    ports = [scale_targets._free_port() for _ in range(200)]
    assert all(1024 <= p < low for p in ports)
    assert len(set(ports)) == len(ports)
