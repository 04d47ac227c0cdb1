"""N pods over K nodes to Running: vnode's virtual nodes against KWOK's fake nodes and virtual-kubelet's
mock provider, same machine, same run.

KWOK only flips pod status, so it shows what the control plane itself allows; virtual-kubelet (Go)
with its mock provider is the virtual kubelet our users would compare us with; vnode's figures
are read as a ratio of KWOK's. Each measured run gets a control plane of its own, started
fresh (a second target on the same one would find the first one's 10,000 deleted pods in etcd
and its API server warmed up), and the run is repeated in rounds that alternate which target
goes first, so that a machine whose other load comes and goes favours neither (one round by
default, to keep ``make bench`` within the hour); the ratio is taken within each round and the
median of the rounds is the result. Pods are created with
``spec.nodeName`` already set, round robin over the nodes, so the scheduler is out of the
measurement and both targets see the same stream of pods. One watch records when each pod is
first seen Running (resumed from its last resourceVersion when the server drops it, listed
again on 410); the API server's audit log counts requests per client (each process under test
has its own ServiceAccount); /proc gives each target's CPU seconds and peak RSS, and the API
server's and etcd's CPU seconds. In round 1, once vnode's pods all run, one of its daemons is killed
and started again (``bench/restart.py``); then KWOK's and vnode's pods are deleted, timed.

Two more targets are KWOK with a process beside it making a kubelet's own calls for its pods
(``bench/kubelet_calls.py``, with vnode's code for them): ``kwok+tokens``, each pod's TokenRequest
as its node, the one call a pod cannot start without (``kwok+tokens-sa``: as its own account, never
refused while the API server lags); ``kwok+kubelet``, that and the pod's four Events, paced as the
kubelet's. What those calls cost the API server and etcd, and the throughput they leave, is the most
to expect here of any node that makes them (``make bench`` runs ``kwok+tokens`` at 2,000 pods).

    python -m bench.scale [--pods 10000] [--nodes 4] [--targets kwok,virtual-kubelet,vnode] [--rounds 1]
    python -m bench.scale --quick      # a 2,000-pod look, one round, in under 3 minutes; prints, writes nothing
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

from bench import report, restart, scale_targets
from bench.scale_pods import (
    NAMESPACE,
    Api,
    Run,
    Target,
    audit_counts,
    create_pods,
    delete_pods,
    record_running,
    say,
    timed_delete,
    wait_for_default_sa,
    warm_up,
)
from bench.scale_report import PEER, percentile, plot, render
from vnode import procinfo
from vnode.cluster import launcher, procs


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def peak_rss_mb(pids: list[int]) -> float:
    peak = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def control_plane_pids(info: launcher.Info) -> dict[str, int]:
    record = json.loads((info.state_dir / "cluster.json").read_text())
    return {name: int(proc["pid"]) for name, proc in record.get("processes", {}).items()}


async def measure(
    info: launcher.Info,
    target: Target,
    pods: int,
    nodes: int,
    limit_seconds: float,
    rate: float = 0.0,
    *,
    costs: bool = False,
    clean: bool = True,
    delete: bool = False,
    then: Callable[[launcher.Info, procs.Supervisor, Target, Run], Awaitable[None]] | None = None,
) -> Run:
    """One target's run. ``costs``: then measure what each kind of call a kubelet makes costs the API server
    (in KWOK's run: vnode's paced Events went on meanwhile and made the figures swing 5-fold);
    ``then``: what else to measure while every pod runs (a daemon's restart), before ``delete`` times
    their deletion; ``clean``: then delete the pods (not needed when the control plane goes next)."""
    supervisor = procs.Supervisor(info.state_dir / f"bench-{target.name}.json", info.state_dir / "logs", attach=True)
    api = Api(info)
    run = Run(target.name, pods, nodes, rate)
    try:
        await api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}}, expect=(201, 409))
        await wait_for_default_sa(api)
        say(f"{target.name}: starting {nodes} nodes")
        pids = await target.start(info, supervisor, nodes)
        if rate:
            await warm_up(api, target.node_names(nodes))
        say(f"{target.name}: nodes Ready; creating {pods} pods")
        audit = info.state_dir / "audit.log"
        _, offset = audit_counts(audit, 0)
        control = control_plane_pids(info)
        control_before = {name: cpu_seconds([pid]) for name, pid in control.items()}
        cpu_before = cpu_seconds(pids)
        helpers_before = {name: cpu_seconds([pid]) for name, pid in target.helpers.items()}
        listing = await api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?limit=1")
        run.started_at = time.monotonic()
        recorder = asyncio.create_task(
            record_running(api, run, listing["metadata"]["resourceVersion"], run.started_at + limit_seconds)
        )
        try:
            await create_pods(api, run, target.node_names(nodes))
            run.create_seconds = time.monotonic() - run.started_at
            say(f"{target.name}: {pods} pods created in {run.create_seconds:.1f}s")
            await _recorded(recorder, run, pids, target.name)
        finally:
            recorder.cancel()
        run.cpu_seconds = cpu_seconds(pids) - cpu_before
        run.peak_rss_mb = peak_rss_mb(pids)
        run.helper_cpu = {name: cpu_seconds([pid]) - helpers_before[name] for name, pid in target.helpers.items()}
        run.control_plane_cpu = {
            name: cpu_seconds([pid]) - control_before[name]
            for name, pid in control.items()
            if name in ("kube-apiserver", "etcd")
        }
        run.requests_by_client, _ = audit_counts(audit, offset)
        if costs and len(run.running) == run.pods and not rate:
            run.call_cost_ms = await call_costs(api, control["kube-apiserver"])
        if then is not None and len(run.running) == run.pods:
            await then(info, supervisor, target, run)
        if delete and len(run.running) == run.pods:
            say(f"{target.name}: deleting the {pods} pods (their grace period, as kubectl delete)")
            run.delete_seconds = await timed_delete(api, target)
            say(f"{target.name}: pods gone in {run.delete_seconds[0]:.1f}s, instances in {run.delete_seconds[1]:.1f}s")
    finally:
        try:
            if clean:
                await delete_pods(api)
        finally:
            supervisor.stop()
            await api.close()
    return run


STALL_SECONDS = 60.0  # no pod Running for this long, or a process of the target gone: it will not finish


async def _recorded(recorder: asyncio.Task[None], run: Run, pids: list[int], name: str) -> None:
    """Wait for ``recorder`` (every pod Running, or its time limit), but not for a target that has
    stopped: one of its processes ended, or no pod came to Running for ``STALL_SECONDS`` (a peer
    stuck at 7,540 of 10,000 pods once held a ``make bench`` for its whole 10-minute limit)."""
    started = {pid: procinfo.start_time(pid) for pid in pids}
    seen, moved = len(run.running), time.monotonic()
    while not recorder.done():
        await asyncio.wait([recorder], timeout=1.0)
        if len(run.running) != seen:
            seen, moved = len(run.running), time.monotonic()
        gone = [pid for pid, began in started.items() if procinfo.start_time(pid) != began]
        if gone or time.monotonic() - moved > STALL_SECONDS:
            why = f"process {', '.join(map(str, gone))} ended" if gone else f"no pod Running for {STALL_SECONDS:.0f}s"
            say(f"{name}: {why}, with {seen} of {run.pods} pods Running: not waiting for the rest")
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            return


async def call_costs(api: Api, apiserver: int, calls: int = 400) -> dict[str, float]:
    """The API server's CPU per call of each kind a virtual kubelet makes per pod, measured by making
    ``calls`` of one kind at a time (32 in flight) against the benchmark's pods, once they are Running."""
    listing = await api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?limit={calls}")
    pods = [(p["metadata"]["name"], p["metadata"]["uid"]) for p in listing["items"]]
    base = f"/api/v1/namespaces/{NAMESPACE}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def token(i: int) -> tuple[str, str, Any]:
        name, uid = pods[i % len(pods)]
        ref = {"kind": "Pod", "apiVersion": "v1", "name": name, "uid": uid}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"boundObjectRef": ref}}
        return "POST", f"{base}/serviceaccounts/default/token", body

    def event(i: int) -> tuple[str, str, Any]:
        name, uid = pods[i % len(pods)]
        body = {
            "metadata": {"name": f"{name}.calibration-{i}"},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": NAMESPACE, "name": name, "uid": uid},
            "reason": "Pulled",
            "message": 'Successfully pulled image "nginx:alpine"',
            "type": "Normal",
            "source": {"component": "bench"},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        return "POST", f"{base}/events", body

    def status(i: int) -> tuple[str, str, Any]:
        name, _ = pods[i % len(pods)]
        condition = {"type": "bench.vnode.io/Calibration", "status": "True", "message": str(i)}
        return "PATCH", f"{base}/pods/{name}/status", {"status": {"conditions": [condition]}}

    costs = {}
    for kind, make in (
        ("create serviceaccounts/token", token),
        ("create events", event),
        ("patch pods/status", status),
    ):
        queue = list(range(calls))
        # What the API server spends meanwhile on others (the daemons' paced events, leases) is
        # measured over a quiet second first and taken off.
        idle_from, idle_cpu = time.monotonic(), cpu_seconds([apiserver])
        await asyncio.sleep(1.0)
        background = (cpu_seconds([apiserver]) - idle_cpu) / (time.monotonic() - idle_from)
        before, began = cpu_seconds([apiserver]), time.monotonic()

        async def worker(make: Callable[[int], tuple[str, str, Any]] = make, queue: list[int] = queue) -> None:
            while queue:
                method, path, body = make(queue.pop())
                headers = {"Content-Type": "application/strategic-merge-patch+json"} if method == "PATCH" else {}
                async with api.session.request(method, api.server + path, json=body, headers=headers) as resp:
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(32)))
        spent = cpu_seconds([apiserver]) - before - background * (time.monotonic() - began)
        costs[kind] = 1000 * max(0.0, spent) / calls
    return costs


def targets() -> dict[str, Callable[[], Target]]:
    """The targets this checkout can run."""
    return {name: cast("Callable[[], Target]", make) for name, make in scale_targets.TARGETS.items()}


@contextlib.contextmanager
def bench_cluster(keep: bool = False) -> Iterator[launcher.Info]:
    """A control plane in a fresh directory, removed afterwards (its audit log of a 10,000-pod run is
    half a gigabyte) unless ``keep``."""
    state = pathlib.Path(tempfile.mkdtemp(prefix="vnode-bench-"))
    options = launcher.default_options(
        state, audit=True, attach=True, client_qps=5000, client_burst=10000, leader_lease_seconds=60
    )
    cluster = launcher.Cluster(options)
    try:
        yield cluster.up()
    finally:
        cluster.down()
        if keep:
            say(f"state, logs and audit log kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


def _paced_and_single(
    args: argparse.Namespace, wanted: list[str], available: dict[str, Callable[[], Target]]
) -> tuple[list[Run], Run | None]:
    """The latency each target adds at a steady rate, and one vnode node alone (its RSS), on one control plane."""
    paced: list[Run] = []
    single = None
    if not args.paced_pods and not args.one_node_pods:
        return paced, single
    with bench_cluster(keep=args.keep_state) as info:
        for name in wanted if args.paced_pods else []:
            say(f"{name}: {args.paced_pods} pods at {args.paced_rate:g}/s")
            run = asyncio.run(
                measure(info, available[name](), args.paced_pods, args.nodes, args.timeout, args.paced_rate)
            )
            say(f"{name}: paced, p50 {percentile(run.latencies, 0.5):.2f}s p99 {percentile(run.latencies, 0.99):.2f}s")
            paced.append(run)
        if args.one_node_pods and "vnode" in wanted:
            say(f"vnode: {args.one_node_pods} pods on one node")
            single = asyncio.run(measure(info, available["vnode"](), args.one_node_pods, 1, args.timeout))
            say(f"vnode: one node, {len(single.running)} Running, peak RSS {single.peak_rss_mb:.0f} MB")
    return paced, single


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--targets", default=f"kwok,{PEER},vnode")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of each target, the order alternating; the median ratio counts"
    )
    parser.add_argument(
        "--delete-targets",
        default="kwok,vnode",
        help="the targets whose deletion of every pod is timed, in round 1 (virtual-kubelet's takes 3x KWOK's)",
    )
    parser.add_argument(
        "--no-restart",
        action="store_true",
        help="skip killing one vnode daemon once its pods all run, in round 1 (bench/restart.py)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/")
    parser.add_argument("--keep-state", action="store_true", help="keep the control plane's directory (logs, audit)")
    parser.add_argument("--paced-pods", type=int, default=500, help="then this many at --paced-rate (0: skip)")
    parser.add_argument(
        "--paced-rate", type=float, default=20, help="pods/s, below both targets' capacity: the latency each adds"
    )
    parser.add_argument(
        "--one-node-pods",
        type=int,
        default=3000,
        help="then this many pods on a single vnode node, for its peak RSS at that size (0: skip)",
    )
    parser.add_argument(
        "--section", default="scale", help="the section of docs/benchmarks.md written (and bench-<section>.png)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a 2,000-pod look: one round, nothing paced or alone; prints, writes nothing",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pods, args.rounds, args.paced_pods, args.one_node_pods, args.no_write = 2000, 1, 0, 0, True
    available = targets()
    wanted = [t for t in args.targets.split(",") if t]
    missing = [t for t in wanted if t not in available]
    if missing:
        print(
            f"bench.scale: no target named {', '.join(missing)} (have: {', '.join(available) or 'none'})",
            file=sys.stderr,
        )
        return 1
    runs = []
    restarted: list[restart.Restart] = []

    async def kill_one(info: launcher.Info, supervisor: procs.Supervisor, target: Target, run: Run) -> None:
        assert isinstance(target, scale_targets.Vnode)
        restarted.append(await restart.kill_and_adopt(info, supervisor, target, run, args.timeout))

    deleted = [t for t in args.delete_targets.split(",") if t]
    for number in range(1, args.rounds + 1):
        for name in wanted if number % 2 else wanted[::-1]:
            say(f"round {number}: {name}: {args.pods} pods over {args.nodes} nodes, on a fresh control plane")
            with bench_cluster(keep=args.keep_state) as info:
                target = available[name]()
                run = asyncio.run(
                    measure(
                        info,
                        target,
                        args.pods,
                        args.nodes,
                        args.timeout,
                        costs=number == 1 and name == "kwok",  # KWOK is idle once its pods run: no one else calls
                        clean=False,
                        delete=number == 1 and name in deleted,
                        then=kill_one
                        if number == 1 and name == "vnode" and args.nodes > 1 and not args.no_restart
                        else None,
                    )
                )
            run.round = number
            lat = run.latencies
            say(
                f"{name}: {len(run.running)} Running, {run.throughput:.0f} pods/s, p50 {percentile(lat, 0.5):.2f}s "
                f"p99 {percentile(lat, 0.99):.2f}s, CPU {run.cpu_seconds:.1f}s, RSS {run.peak_rss_mb:.0f} MB, "
                f"re-watches {run.rewatches}"
            )
            runs.append(run)
    paced, single = _paced_and_single(args, wanted, available)
    command = "python -m bench.scale " + " ".join(argv if argv is not None else sys.argv[1:])
    picture = f"bench-{args.section}.png"
    section = render(runs, picture, command.strip(), single, paced)
    if args.no_write:
        print(section)
        print("\n".join(restart.render_restart(r) + "\n" for r in restarted))
    else:
        plot(runs, report.DOC.parent / picture)
        report.write_section(args.section, section)
        for result in restarted:
            report.write_section("restart", restart.render_restart(result))
            restart.plot_restart(result, report.DOC.parent / "bench-restart.png")
    return 0 if all(len(r.running) == r.pods for r in [*runs, *paced, *([single] if single else [])]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
