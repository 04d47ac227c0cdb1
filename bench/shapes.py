"""Shapes of scale a burst of pods does not show: a daemon killed under load, one node alone, fifty nodes.

``bench.scale`` measures pods to Running on a few nodes. This measures what its users meet next:

- **restart**: ``--pods`` pods over ``--nodes`` vnode nodes, all Running; one daemon is killed
  (SIGKILL, a crash or an OOM kill) and started again as its StatefulSet would start it (same
  pod name and UID, so it takes its own Lease back at once). The time until it serves again
  (``/readyz``: its pod cache synced, the cloud listed, every instance adopted), and what the
  adoption cost: its requests to the API server (writes per pod, LISTs by resource, from the
  audit log) and its calls to the cloud, until a minute after it was killed.
- **single**: ``--single-pods`` pods on one node, KWOK's and vnode's, each on a fresh control
  plane: the throughput of one node, and the daemon's peak RSS.
- **fleet**: ``--fleet`` vnode nodes on one control plane, with no pods: the time until all are
  Ready, then a minute idle: CPU and RSS per daemon, Lease and status writes per node per minute.
  (In a cluster this is ``kubectl scale statefulset`` to 50; here there is no container runtime,
  so the fifty daemons are processes, started as the StatefulSet's pods would be: all at once.)

    python -m bench.shapes [--sections restart,single,fleet] [--pods 10000] [--nodes 4] [--fleet 50]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import os
import signal
import statistics
import sys
import time
import urllib.request

from bench import report, scale, scale_pods, scale_targets
from vnode import procinfo
from vnode.cluster import launcher, procs

IDLE_SECONDS = 60.0
AFTER_KILL_SECONDS = 60.0  # the restart's window for counting what the adoption cost


@dataclasses.dataclass
class Restart:
    pods: int
    nodes: int
    pods_on_node: int = 0
    adopted_seconds: float = float("nan")
    calls: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    cloud_calls: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Fleet:
    nodes: int
    ready_seconds: float = float("nan")
    idle_cpu_share: list[float] = dataclasses.field(default_factory=list)  # of one core, per daemon
    rss_mb: list[float] = dataclasses.field(default_factory=list)
    calls: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)  # all nodes, the minute


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115 (a /proc file, read at once)
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cloud_calls(admin_url: str) -> dict[str, int]:
    with urllib.request.urlopen(admin_url + "totals", timeout=5) as resp:
        calls: dict[str, int] = json.loads(resp.read())["calls"]
    return calls


async def restart(info: launcher.Info, pods: int, nodes: int, within: float) -> Restart:
    supervisor = procs.Supervisor(info.state_dir / "bench-restart.json", info.state_dir / "logs", attach=True)
    api = scale_pods.Api(info)
    target = scale_targets.Vnode()
    result = Restart(pods, nodes)
    try:
        run = await _all_running(api, info, supervisor, target, pods, nodes, within)
        victim = target.node_names(nodes)[0]
        result.pods_on_node = len([i for i in range(len(run.running)) if i % nodes == 0])  # round robin from 0
        audit = info.state_dir / "audit.log"
        _, offset = scale.audit_counts(audit, 0)
        cloud_before = _cloud_calls(target.admin_url)
        pid = supervisor.live()[victim]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while procinfo.start_time(pid) is not None and time.monotonic() < killed + 10:
            supervisor.stop([])  # reaps the child
            await asyncio.sleep(0.02)
        cmd, env = target.commands[victim]
        supervisor.spawn(victim, cmd, env=env)
        scale_pods.say(f"restart: {victim} killed and started again; waiting for it to serve")
        while not await asyncio.to_thread(_ready, target.http_ports[victim]):
            if time.monotonic() > killed + within:
                raise RuntimeError(f"{victim} did not serve again within {within:.0f}s")
            await asyncio.sleep(0.1)
        result.adopted_seconds = time.monotonic() - killed
        await asyncio.sleep(max(0.0, killed + AFTER_KILL_SECONDS - time.monotonic()))
        counts, _ = scale.audit_counts(audit, offset)
        result.calls = counts.get(f"kube-system:{victim}", collections.Counter())
        after = _cloud_calls(target.admin_url)
        result.cloud_calls = {k: n - cloud_before.get(k, 0) for k, n in after.items() if n - cloud_before.get(k, 0)}
    finally:
        supervisor.stop()
        await api.close()
    return result


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
        started = time.monotonic()
        pids = await target.start(info, supervisor, nodes)
        result.ready_seconds = time.monotonic() - started
        scale_pods.say(f"fleet: {nodes} nodes Ready in {result.ready_seconds:.1f}s; idle for {IDLE_SECONDS:.0f}s")
        audit = info.state_dir / "audit.log"
        _, offset = scale.audit_counts(audit, 0)
        before = [scale.cpu_seconds([pid]) for pid in pids]
        window = time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        elapsed = time.monotonic() - window
        result.idle_cpu_share = [(scale.cpu_seconds([pid]) - b) / elapsed for pid, b in zip(pids, before, strict=True)]
        result.rss_mb = [_rss_mb(pid) for pid in pids]
        counts, _ = scale.audit_counts(audit, offset)
        for client, calls in counts.items():
            if client.startswith("kube-system:vnode-bench-"):
                result.calls.update({what: n * 60 / elapsed for what, n in calls.items()})
    finally:
        supervisor.stop()
    return result


def render_restart(r: Restart) -> str:
    writes = sum(n for what, n in r.calls.items() if not what.startswith(("get ", "list ", "watch ")))
    lists = {what: n for what, n in r.calls.items() if what.startswith("list ")}
    status = r.calls.get("patch pods/status", 0)
    rows = [
        f"| serving again (`/readyz`) after the kill | **{r.adopted_seconds:.1f} s** | ≤ 20 s "
        f"| {'met' if r.adopted_seconds <= 20 else 'missed'} |",
        f"| pod status writes per pod of the node | {status / max(r.pods_on_node, 1):.4f} ({status}) | ≤ 0.01 "
        f"| {'met' if status <= 0.01 * r.pods_on_node else 'missed'} |",
        f"| LISTs per resource | {', '.join(f'{w} {n}' for w, n in sorted(lists.items())) or 'none'} | one each "
        f"| {'met' if all(n <= 1 for n in lists.values()) else 'missed'} |",
    ]
    calls = ", ".join(f"{what} {n}" for what, n in r.calls.most_common())
    cloud = ", ".join(f"{action} {n}" for action, n in sorted(r.cloud_calls.items())) or "none"
    return "\n".join(
        [
            "## Restart: a daemon killed under load",
            "",
            report.machine(),
            "",
            f"{r.pods} pods Running over {r.nodes} vnode nodes; the daemon of one node ({r.pods_on_node} pods) "
            "killed with SIGKILL and started again as its StatefulSet would (same pod name and UID: it takes its "
            f"Lease back at once). Its requests are counted from the kill to {AFTER_KILL_SECONDS:.0f} s after it.",
            "",
            "| figure | measured | aim | |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            f"Its requests to the API server in that minute: {calls} ({writes} writes in all). "
            f"Its calls to the simulated cloud: {cloud}.",
        ]
    )


def render_fleet(f: Fleet) -> str:
    cpu = statistics.median(f.idle_cpu_share) if f.idle_cpu_share else float("nan")
    rss = statistics.median(f.rss_mb) if f.rss_mb else float("nan")
    per_node = {what: n / f.nodes for what, n in f.calls.items()}
    writes = ", ".join(f"{what} {n:.1f}" for what, n in sorted(per_node.items(), key=lambda kv: -kv[1]) if n >= 0.05)
    return "\n".join(
        [
            f"## Fleet: {f.nodes} virtual nodes on one control plane",
            "",
            report.machine(),
            "",
            f"{f.nodes} vnode daemons started at once (one simulated cloud), no pods; then {IDLE_SECONDS:.0f} s idle.",
            "",
            "| figure | measured | aim | |",
            "| --- | --- | --- | --- |",
            f"| all {f.nodes} nodes Ready | {f.ready_seconds:.1f} s after the start | | |",
            f"| idle CPU per daemon (median; max) | {cpu:.2%} of a core; {max(f.idle_cpu_share, default=0):.2%} "
            f"| ≤ 1% | {'met' if cpu <= 0.01 else 'missed'} |",
            f"| RSS per daemon (median; max) | {rss:.0f} MB; {max(f.rss_mb, default=0):.0f} MB | ≤ 60 MB "
            f"| {'met' if rss <= 60 else 'missed'} |",
            "",
            f"Requests per node per minute while idle: {writes or 'none'}.",
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="restart,single,fleet")
    parser.add_argument("--pods", type=int, default=10000, help="restart: pods over --nodes nodes")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--single-pods", type=int, default=10000)
    parser.add_argument("--fleet", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-write", action="store_true", help="print the sections instead of writing docs/")
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    written: dict[str, str] = {}
    if "restart" in sections:
        with scale.bench_cluster() as info:
            result = asyncio.run(restart(info, args.pods, args.nodes, args.timeout))
        written["restart"] = render_restart(result)
    if "single" in sections:
        runs = []
        for name in ("kwok", "vnode"):
            with scale.bench_cluster() as info:
                runs.append(
                    asyncio.run(scale.measure(info, scale.targets()[name](), args.single_pods, 1, args.timeout))
                )
        written["single"] = render_single(runs)
    if "fleet" in sections:
        with scale.bench_cluster() as info:
            written["fleet"] = render_fleet(asyncio.run(fleet(info, args.fleet)))
    for name, body in written.items():
        if args.no_write:
            print(body + "\n")
        else:
            report.write_section(name, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
