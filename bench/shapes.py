"""Shapes of scale a burst of pods does not show: a daemon killed under load, one node alone, fifty nodes.

``bench.scale`` measures pods to Running on a few nodes. This measures what its users meet next:

- **restart** (``bench/restart.py``; ``bench.scale`` measures it in its 10,000-pod vnode run, so
  this section is not run by default): ``--pods`` pods over ``--nodes`` vnode nodes, all Running;
  one daemon killed and started again as its StatefulSet would; the time until it serves again,
  and what adopting its pods cost.
- **single**: ``--single-pods`` pods on one node, KWOK's and vnode's, each on a fresh control
  plane: the throughput of one node, and the daemon's peak RSS.
- **fleet**: ``--fleet`` vnode nodes on one control plane, with no pods: the time until all are
  Ready, then half a minute idle: CPU and RSS per daemon, Lease and status writes per node per minute.
  (In a cluster this is ``kubectl scale statefulset`` to 50; here there is no container runtime,
  so the fifty daemons are processes, started as the StatefulSet's pods would be: all at once.)

    python -m bench.shapes [--sections single,fleet,restart] [--pods 10000] [--nodes 4] [--fleet 50]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import functools
import pathlib
import statistics
import sys
import time
import traceback
from collections.abc import Callable

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from bench import report, scale, scale_pods, scale_report, scale_targets
from bench import restart as restart_
from vnode.cluster import launcher, procs

IDLE_SECONDS = 30.0


@dataclasses.dataclass
class Fleet:
    nodes: int
    ready_seconds: float = float("nan")
    idle_cpu_share: list[float] = dataclasses.field(default_factory=list)  # of one core, per daemon
    rss_mb: list[float] = dataclasses.field(default_factory=list)
    private_mb: list[float] = dataclasses.field(default_factory=list)  # RssAnon
    calls: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)  # all nodes, the minute
    ready_after: list[float] = dataclasses.field(default_factory=list)  # seconds from the start, per node


def _ready_after(info: launcher.Info, names: list[str], started: float) -> list[float]:
    """Seconds from ``started`` (Unix time) until each node became Ready, from its Ready condition (whole
    seconds, as the API stores them)."""
    api = k8s_config.new_client_from_config(config_file=str(info.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        nodes = {n.metadata.name: n for n in k8s.CoreV1Api(api).list_node().items}
    finally:
        api.close()
    return sorted(
        max(0.0, c.last_transition_time.timestamp() - started)
        for name in names
        if name in nodes
        for c in nodes[name].status.conditions or []
        if c.type == "Ready" and c.status == "True"
    )


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    """``VmRSS`` (all resident pages) or ``RssAnon`` (the process's own: not the shared libraries' code,
    which every daemon on a machine shares) of ``pid``, in MB."""
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115 (a /proc file, read at once)
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def restart(info: launcher.Info, pods: int, nodes: int, within: float) -> restart_.Restart:
    supervisor = procs.Supervisor(info.state_dir / "bench-restart.json", info.state_dir / "logs", attach=True)
    api = scale_pods.Api(info)
    target = scale_targets.Vnode()
    try:
        run = await _all_running(api, info, supervisor, target, pods, nodes, within)
        return await restart_.kill_and_adopt(info, supervisor, target, run, within)
    finally:
        supervisor.stop()
        await api.close()


async def _all_running(
    api: scale_pods.Api,
    info: launcher.Info,
    supervisor: procs.Supervisor,
    target: scale_pods.Target,
    pods: int,
    nodes: int,
    within: float,
) -> scale_pods.Run:
    await api.request("POST", "/api/v1/namespaces", {"metadata": {"name": scale_pods.NAMESPACE}}, expect=(201, 409))
    await scale_pods.wait_for_default_sa(api)
    await target.start(info, supervisor, nodes)
    run = scale_pods.Run(target.name, pods, nodes)
    listing = await api.request("GET", f"/api/v1/namespaces/{scale_pods.NAMESPACE}/pods?limit=1")
    run.started_at = time.monotonic()
    recorder = asyncio.create_task(
        scale_pods.record_running(api, run, listing["metadata"]["resourceVersion"], run.started_at + within)
    )
    try:
        await scale_pods.create_pods(api, run, target.node_names(nodes))
        await recorder
    finally:
        recorder.cancel()
    if len(run.running) < pods:
        raise RuntimeError(f"{target.name}: {len(run.running)} of {pods} pods Running after {within:.0f}s")
    scale_pods.say(f"{target.name}: {pods} pods Running over {nodes} nodes")
    return run


async def fleet(info: launcher.Info, nodes: int) -> Fleet:
    supervisor = procs.Supervisor(info.state_dir / "bench-fleet.json", info.state_dir / "logs", attach=True)
    target = scale_targets.Vnode()
    result = Fleet(nodes)
    try:
        started, started_wall = time.monotonic(), time.time()
        pids = await target.start(info, supervisor, nodes)
        result.ready_seconds = time.monotonic() - started
        result.ready_after = await asyncio.to_thread(_ready_after, info, target.node_names(nodes), started_wall)
        scale_pods.say(f"fleet: {nodes} nodes Ready in {result.ready_seconds:.1f}s; idle for {IDLE_SECONDS:.0f}s")
        audit = info.state_dir / "audit.log"
        _, offset = scale_pods.audit_counts(audit, 0)
        before = [scale.cpu_seconds([pid]) for pid in pids]
        window = time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        elapsed = time.monotonic() - window
        result.idle_cpu_share = [(scale.cpu_seconds([pid]) - b) / elapsed for pid, b in zip(pids, before, strict=True)]
        result.rss_mb = [_rss_mb(pid) for pid in pids]
        result.private_mb = [_rss_mb(pid, "RssAnon") for pid in pids]
        counts, _ = scale_pods.audit_counts(audit, offset)
        for client, calls in counts.items():
            if client.startswith("kube-system:vnode-bench-"):
                result.calls.update({what: n * 60 / elapsed for what, n in calls.items()})
    finally:
        supervisor.stop()
    return result


def plot_fleet(f: Fleet, path: pathlib.Path) -> None:
    """Nodes Ready over time after the start; then each daemon's RSS and private memory, idle."""
    with report.figure(path, panels=2, size=(10, 3.8)) as (ready, memory):
        times = sorted(f.ready_after)
        ready.step([0.0, *times], range(len(times) + 1), where="post")
        report.label(ready, "seconds since the daemons were started", "nodes Ready", f"{f.nodes} nodes started at once",
                     legend=False)  # fmt: skip
        daemons = range(1, len(f.rss_mb) + 1)
        memory.plot(daemons, sorted(f.rss_mb), label="RSS")
        memory.plot(daemons, sorted(f.private_mb), label="private (RssAnon)")
        memory.axhline(60, color="black", ls="--", label="aim: 60 MB RSS")
        memory.set_ylim(bottom=0)
        report.label(memory, "daemons, by memory", "MB, idle", "Each daemon's memory, idle")


def render_fleet(f: Fleet) -> str:
    cpu = statistics.median(f.idle_cpu_share) if f.idle_cpu_share else float("nan")
    rss = statistics.median(f.rss_mb) if f.rss_mb else float("nan")
    private = statistics.median(f.private_mb) if f.private_mb else float("nan")
    how = (
        "each reads its service account as in its pod (a mount namespace of its own)"
        if scale_targets.can_run_in_a_pod()
        else "each reads a kubeconfig (not root here: no mount namespace for a service account), which holds "
        "some 10 MB more than the service account a daemon in a pod reads"
    )
    per_node = {what: n / f.nodes for what, n in f.calls.items()}
    writes = ", ".join(f"{what} {n:.1f}" for what, n in sorted(per_node.items(), key=lambda kv: -kv[1]) if n >= 0.05)
    return "\n".join(
        [
            f"## Fleet: {f.nodes} virtual nodes on one control plane",
            "",
            report.machine(),
            "",
            f"{f.nodes} vnode daemons started at once (one simulated cloud), no pods; then {IDLE_SECONDS:.0f} s idle; "
            f"{how}. Private memory is the process's own (RssAnon); the rest of its RSS is the code of Python "
            "and its libraries, mapped from files that every daemon on a machine shares.",
            "",
            "| figure | measured | aim | |",
            "| --- | --- | --- | --- |",
            f"| all {f.nodes} nodes Ready | {f.ready_seconds:.1f} s after the start | | |",
            f"| idle CPU per daemon (median; max) | {cpu:.2%} of a core; {max(f.idle_cpu_share, default=0):.2%} "
            f"| ≤ 1% | {'met' if cpu <= 0.01 else 'missed'} |",
            f"| RSS per daemon (median; max) | {rss:.0f} MB; {max(f.rss_mb, default=0):.0f} MB | ≤ 60 MB "
            f"| {'met' if rss <= 60 else 'missed'} |",
            f"| private memory per daemon (median; max) | {private:.0f} MB; "
            f"{max(f.private_mb, default=0):.0f} MB | | |",
            "",
            f"Requests per node per minute while idle: {writes or 'none'}.",
            "",
            "![Nodes Ready over time; each daemon's memory](bench-fleet.png)",
        ]
    )


def render_single(runs: list[scale_pods.Run]) -> str:
    kwok = next((r for r in runs if r.target == "kwok"), None)
    vnode = next((r for r in runs if r.target == "vnode"), None)
    lines = [
        "## One node alone",
        "",
        report.machine(),
        "",
        "The same burst on a single node, KWOK's and vnode's, each on a fresh control plane.",
        "",
        "| target | pods Running | throughput | vs KWOK | peak RSS of the process |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        ratio = f"{run.throughput / kwok.throughput:.2f}x" if kwok and kwok.throughput else "-"
        lines.append(
            f"| {run.target} | {len(run.running)}/{run.pods} | {run.throughput:.0f} pods/s | {ratio} "
            f"| {run.peak_rss_mb:.0f} MB |"
        )
    if vnode is not None:
        met = "met" if vnode.peak_rss_mb <= 300 else "missed"
        shown = met if vnode.pods >= 10000 else "not shown at this size"
        lines += [
            "",
            f"Aim: the daemon's peak RSS ≤ 300 MB at 10,000 pods: {vnode.peak_rss_mb:.0f} MB at {vnode.pods}, {shown}.",
        ]
    lines += ["", "![Running pods over time, one node](bench-single.png)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="single,fleet")  # bench.scale measures the restart
    parser.add_argument("--pods", type=int, default=10000, help="restart: pods over --nodes nodes")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--single-pods", type=int, default=10000)
    parser.add_argument("--fleet", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-write", action="store_true", help="print the sections instead of writing docs/")
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    failed = []
    for name in ("restart", "single", "fleet"):
        if name not in sections:
            continue
        try:  # each section is written as it ends: one that fails loses no other
            body, draw = _measure(name, args)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        if args.no_write:
            print(body + "\n")
        else:
            report.write_section(name, body)
            draw(report.DOC.parent / f"bench-{name}.png")
    if failed:
        print(f"bench.shapes: failed: {', '.join(failed)} (the other sections are written)", file=sys.stderr)
    return 1 if failed else 0


def _measure(name: str, args: argparse.Namespace) -> tuple[str, Callable[[pathlib.Path], None]]:
    """One section measured: its text, and what draws its plot."""
    if name == "restart":
        with scale.bench_cluster() as info:
            result = asyncio.run(restart(info, args.pods, args.nodes, args.timeout))
        return restart_.render_restart(result), functools.partial(restart_.plot_restart, result)
    if name == "single":
        runs = []
        for target_name in ("kwok", "vnode"):
            with scale.bench_cluster() as info:
                # clean=False: its control plane goes next (deleting 10,000 pods through vnode took 2 minutes)
                target = scale.targets()[target_name]()
                runs.append(asyncio.run(scale.measure(info, target, args.single_pods, 1, args.timeout, clean=False)))
        return render_single(runs), functools.partial(scale_report.plot, runs)
    with scale.bench_cluster() as info:
        measured = asyncio.run(fleet(info, args.fleet))
    return render_fleet(measured), functools.partial(plot_fleet, measured)


if __name__ == "__main__":
    sys.exit(main())
