"""``bench.scale``'s section of docs/benchmarks.md: the ratios of each round, the aims, the tables and the plot."""

from __future__ import annotations

import collections
import os
import pathlib
import statistics
from typing import TYPE_CHECKING

from bench import report

if TYPE_CHECKING:
    from bench.scale_pods import Run

PEER = "virtual-kubelet"  # the Go virtual kubelet, beside KWOK


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def plot(runs: list[Run], path: pathlib.Path) -> None:
    """Running (and created) pods over time of each target's run in the median round."""
    middle = median_round(runs)
    runs = [r for r in runs if r.round == middle]
    with report.figure(path) as ax:
        for run in runs:
            times = sorted(t - run.started_at for t in run.running.values())
            line = ax.plot(times, range(1, len(times) + 1), label=f"{run.target}: Running ({run.nodes} nodes)")
            created = sorted(t - run.started_at for t in run.created.values())
            ax.plot(
                created, range(1, len(created) + 1), ls=":", color=line[0].get_color(), label=f"{run.target}: created"
            )
        title = f"{runs[0].pods} pods to Running, round {middle} (the median ratio)"
        report.label(ax, "seconds since the first pod was created", "pods", title)


def _cpu_per_pod(run: Run, *, cloud: bool = True) -> float:
    """Milliseconds of CPU per pod of every process the run needs: API server, etcd, target (and its cloud)."""
    total = run.cpu_seconds + sum(run.control_plane_cpu.values()) + (sum(run.helper_cpu.values()) if cloud else 0)
    return 1000 * total / run.pods


def pairs(runs: list[Run], reference: str = "kwok", target: str = "vnode") -> list[tuple[Run, Run]]:
    """(reference, target) of each round that has both: (KWOK, vnode) unless told otherwise."""
    found = []
    for number in sorted({r.round for r in runs}):
        ref = next((r for r in runs if r.round == number and r.target == reference), None)
        run = next((r for r in runs if r.round == number and r.target == target), None)
        if ref is not None and run is not None and ref.throughput:
            found.append((ref, run))
    return found


def _ratio(pair: tuple[Run, Run]) -> float:
    return pair[1].throughput / pair[0].throughput


def median_round(runs: list[Run]) -> int:
    """The round whose vnode/KWOK ratio is the median (the lower of the middle two for an even count)."""
    ranked = sorted(pairs(runs), key=_ratio)
    return ranked[(len(ranked) - 1) // 2][0].round if ranked else 1


def _aims(runs: list[Run], single: Run | None, paced: list[Run]) -> list[str]:
    """Issue #14's aims (and #4's before it) against this run's figures, each with what it was measured from."""
    rounds = pairs(runs)
    if not rounds:
        return []
    ratios = [_ratio(pair) for pair in rounds]
    each = ", ".join(f"{r:.2f}x" for r in ratios)
    kwoks = [k for k, _ in rounds]
    vnodes = [v for _, v in rounds]
    writes = sum(vnode_calls(v, "patch pods/status") for v in vnodes) / sum(v.pods for v in vnodes)
    verdict = "met" if min(ratios) >= 1.0 else "floor met (≥ 0.9x), aim missed" if min(ratios) >= 0.9 else "missed"
    rows = [
        f"| throughput ≥ 1.0x KWOK's in every round (floor 0.9x) | {each} over {len(rounds)} rounds | {verdict} |",
    ]
    peer = pairs(runs, PEER)
    if peer:
        ahead = [v.throughput / p.throughput for p, v in peer]
        rows.append(
            f"| ahead of virtual-kubelet's mock provider in every round | "
            f"{', '.join(f'{r:.2f}x' for r in ahead)} its throughput | {'met' if min(ahead) > 1 else 'missed'} |"
        )
    api = {name: statistics.median(_api_cpu_per_pod(r) for r in runs if r.target == name) for name in ("kwok", "vnode")}
    rows += [
        f"| API server CPU per pod ≤ KWOK's | vnode {api['vnode']:.1f} ms, KWOK {api['kwok']:.1f} ms (medians) "
        f"| {'met' if api['vnode'] <= api['kwok'] else 'missed'} |",
        f"| ≤ 1 status write per pod transition (here one: created → Running) | {writes:.2f} per pod "
        f"| {'met' if writes <= 1.005 else 'missed'} |",
    ]
    rows += _kubelet_calls(runs)
    paced_kwok = next((r for r in paced if r.target == "kwok"), None)
    paced_vnode = next((r for r in paced if r.target == "vnode"), None)
    if paced_kwok and paced_vnode:
        added = percentile(paced_vnode.latencies, 0.99) - percentile(paced_kwok.latencies, 0.99)
        rows.append(
            f"| p99 added latency < 1 s | {added:+.2f} s at {paced_vnode.rate:g} pods/s "
            f"| {'met' if added < 1 else 'missed'} |"
        )
    if single is not None:
        rows.append(
            f"| ≤ 120 MB RSS per daemon at 3,000 pods | {single.peak_rss_mb:.0f} MB at {single.pods} pods "
            f"| {_rss_verdict(single)} |"
        )
    return [
        "",
        "Against the aims of issue #14:",
        "",
        "| aim | measured | |",
        "| --- | --- | --- |",
        *rows,
        "",
        "CPU per pod Running, every process it took on this machine (API server, etcd, the target), median of "
        f"the rounds: KWOK {statistics.median(_cpu_per_pod(k) for k in kwoks):.1f} ms, vnode "
        f"{statistics.median(_cpu_per_pod(v) for v in vnodes):.1f} ms, of which "
        f"{statistics.median(_cpu_per_pod(v) - _cpu_per_pod(v, cloud=False) for v in vnodes):.1f} ms in the "
        "simulated cloud (in production the cloud is elsewhere)"
        + (f", virtual-kubelet {statistics.median(_cpu_per_pod(p) for p, _ in peer):.1f} ms" if peer else "")
        + ". vnode's Events ("
        f"{sum(vnode_calls(v, 'create events') for v in vnodes) / sum(v.pods for v in vnodes):.2f} per pod in this "
        "window) are paced and go on after it: see the notes below the section.",
    ]


#: KWOK with a process beside it making a kubelet's calls for its pods (bench/kubelet_calls.py): each
#: pod's TokenRequest alone (the call a pod cannot start without), or that and its four paced Events.
#: ``kwok+tokens-sa`` asks as its own account, not as the node: one TokenRequest a pod, none refused.
TOKENS, TOKENS_SA, KUBELET = "kwok+tokens", "kwok+tokens-sa", "kwok+kubelet"


def ceiling(kwok: Run, calls: Run) -> float:
    """About the most of KWOK's throughput a node making ``calls``'s calls could reach on this machine, were
    its own work free: KWOK's CPU per pod over that plus what the calls cost the API server and etcd.
    An estimate from CPU alone: KWOK's throughput also moves with how it falls behind and catches up."""
    base = _cpu_per_pod(kwok)
    added = sum(calls.control_plane_cpu.values()) - sum(kwok.control_plane_cpu.values())
    return base / (base + 1000 * added / calls.pods)


def _events(run: Run) -> float:
    return sum(calls["create events"] for calls in run.requests_by_client.values()) / run.pods


def _kubelet_calls(runs: list[Run]) -> list[str]:
    """With ``kwok+tokens``, ``kwok+tokens-sa`` or ``kwok+kubelet`` in the run: what a kubelet's own
    calls cost, and how much of KWOK's throughput they leave to any node that makes them."""
    vnode = {r.round: r for r in runs if r.target == "vnode"}
    rows = []
    for name, what, verdict in (
        (TOKENS, "each pod's TokenRequest as its node, the one kubelet call a pod cannot start without",
         "the most to expect of any node that gives its pods their tokens"),
        (TOKENS_SA, "each pod's TokenRequest as its own account (never refused while the API server lags)",
         "the same with one TokenRequest a pod, the fewest"),
        (KUBELET, "each pod's TokenRequest and its four Events, paced as the kubelet's",
         "for reference: the Events it posts in the window are not vnode's"),
    ):  # fmt: skip
        rounds = pairs(runs, "kwok", name)
        if not rounds:
            continue
        ratios = ", ".join(f"{_ratio(pair):.2f}x" for pair in rounds)
        tops = ", ".join(f"{ceiling(*pair):.2f}x" for pair in rounds)
        api = statistics.median(_api_cpu_per_pod(k) for _, k in rounds)
        kwok_api = statistics.median(_api_cpu_per_pod(k) for k, _ in rounds)
        level = [vnode[k.round].throughput / k.throughput for _, k in rounds if k.round in vnode and k.throughput]
        events = (
            f"; Events {statistics.median(_events(k) for _, k in rounds):.2f} per pod in the window"
            if name == KUBELET
            else ""
        )
        rows.append(
            f"| KWOK with a process making {what} (`{name}`; no cloud, no status) | {ratios} of KWOK's "
            f"throughput; API server {api:.1f} ms per pod (KWOK {kwok_api:.1f} ms){events}; were the process "
            f"free, about {tops} of KWOK's throughput (from CPU alone)"
            + (f"; vnode {', '.join(f'{r:.2f}x' for r in level)} of its throughput" if level else "")
            + f" | {verdict} |"
        )
    return rows


def _deletes(runs: list[Run]) -> list[str]:
    """The table of the timed deletes (round 1): each target's time against KWOK's."""
    timed = [r for r in runs if r.delete_seconds]
    kwok = next((r for r in timed if r.target == "kwok"), None)
    if not timed:
        return []
    lines = [
        "",
        f"Deleting the {timed[0].pods} pods afterwards (round 1), as `kubectl delete` does: each pod with its grace",
        "period, so the node's controller acts (KWOK removes the pod; virtual-kubelet and vnode delete what runs it,",
        "then the pod). 64 clients send the deletes; the time runs until the listing is empty and, for vnode,",
        "until the simulated cloud has no instance left. In the 10,000-pod run vnode's pods are deleted after one",
        "of its daemons was killed and started again (the restart section); virtual-kubelet's deletes are timed",
        "only with `--delete-targets` (they took 3.2x KWOK's time on 2026-12-07, five minutes of the run):",
        "",
        "| target | pods gone | instances gone | pods gone, vs KWOK's time |",
        "| --- | --- | --- | --- |",
    ]
    for run in timed:
        assert run.delete_seconds is not None
        gone, instances = run.delete_seconds
        ratio = f"{gone / kwok.delete_seconds[0]:.2f}x" if kwok and kwok.delete_seconds else "-"
        cloud = f"{instances:.1f} s" if run.helper_cpu else "-"
        lines.append(f"| {run.target} | {gone:.1f} s ({run.pods / gone:.0f} pods/s) | {cloud} | {ratio} |")
    return lines


def _rss_verdict(single: Run) -> str:
    if single.pods < 3000:
        return "not shown"
    return "met" if single.peak_rss_mb <= 120 else "missed"


def _api_cpu_per_pod(run: Run) -> float:
    return 1000 * run.control_plane_cpu.get("kube-apiserver", 0.0) / run.pods


def vnode_calls(run: Run, what: str) -> int:
    return sum(calls[what] for client, calls in run.requests_by_client.items() if "vnode-bench" in client)


def _clients(run: Run) -> list[tuple[str, collections.Counter[str]]]:
    """Requests by client, the identities of one target's nodes (``kube-system:vnode-bench-N``) summed."""
    merged: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for client, calls in run.requests_by_client.items():
        name = client
        head, _, tail = client.rpartition("-")
        if tail.isdigit() and head.endswith("-bench"):
            name = f"{head}-* ({run.nodes} nodes together)"
        merged[name].update(calls)
    return sorted(merged.items(), key=lambda kv: -sum(kv[1].values()))


def _per_pod(count: int, pods: int) -> str:
    return f"{count / pods:.2f}"


def render(
    runs: list[Run], plot_name: str, command: str, single: Run | None = None, paced: list[Run] | None = None
) -> str:
    rounds = sorted({r.round for r in runs})
    middle = median_round(runs)
    lines = [
        f"## Scale: {runs[0].pods:,} pods to Running, vnode against KWOK and virtual-kubelet",
        "",
        report.machine() + f" Load average when it started: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        f"`{command}`. Pods are created with `spec.nodeName` set, round robin over the nodes (the",
        "scheduler is not measured), by 64 concurrent clients; latency runs from the create call's return to",
        "the first watch event showing `Running`. Throughput is pods Running over the time from the first",
        "create to the last pod Running. Everything (API server, etcd, the targets, the simulated cloud and",
        "the benchmark) shares this machine's cores, so compare the ratio to KWOK measured in the same run.",
        f"Each run had a freshly started control plane of its own; {len(rounds)} round(s), the order of the",
        "targets alternating from one round to the next; a ratio compares the two runs of one round.",
        "",
        "| round | target | pods Running | create phase | throughput | vs KWOK | p50 | p99 | p99 added vs KWOK "
        "| target CPU | target CPU per pod | peak RSS per process |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        reference = next((r for r in runs if r.round == run.round and r.target == "kwok"), None)
        ratio = f"{run.throughput / reference.throughput:.0%}" if reference and reference.throughput else "-"
        lat = run.latencies
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        ref_p99 = percentile(reference.latencies, 0.99) if reference else float("nan")
        added = f"{p99 - ref_p99:+.2f} s" if reference and run is not reference else "-"
        create_rate = run.pods / run.create_seconds if run.create_seconds else float("nan")
        lines.append(
            f"| {run.round} | {run.target} ({run.nodes} nodes) | {len(run.running)}/{run.pods} "
            f"| {create_rate:.0f} pods/s "
            f"| **{run.throughput:.0f} pods/s** | {ratio} | {p50:.2f} s | {p99:.2f} s | {added} "
            f"| {run.cpu_seconds:.1f} s | {1000 * run.cpu_seconds / run.pods:.1f} ms | {run.peak_rss_mb:.0f} MB |"
        )
    lines += [
        "",
        "Control plane CPU while each target ran (from the first create to the last pod Running); the helper is"
        " vnode's simulated cloud, or for `kwok+tokens` and `kwok+kubelet` the process making a kubelet's calls:",
        "",
        "| round | target | kube-apiserver CPU | per pod | etcd CPU | per pod | helper CPU | per pod |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        api_cpu, etcd_cpu = run.control_plane_cpu.get("kube-apiserver", 0.0), run.control_plane_cpu.get("etcd", 0.0)
        cloud = sum(run.helper_cpu.values())
        cloud_cells = f"{cloud:.1f} s | {1000 * cloud / run.pods:.1f} ms" if run.helper_cpu else "- | -"
        lines.append(
            f"| {run.round} | {run.target} | {api_cpu:.1f} s | {1000 * api_cpu / run.pods:.1f} ms "
            f"| {etcd_cpu:.1f} s | {1000 * etcd_cpu / run.pods:.1f} ms | {cloud_cells} |"
        )
    costs = next((run.call_cost_ms for run in runs if run.call_cost_ms), {})
    if costs:
        lines += [
            "",
            "What one call of each kind a virtual kubelet makes per pod costs the API server (CPU, measured",
            "in KWOK's run once its pods all run, when nothing else calls, by making 400 of that kind alone,",
            "32 in flight, against the Running pods, less the API server's CPU rate over the second before; it",
            "includes the watchers each write is sent to):",
            "",
            "| call | API server CPU per call |",
            "| --- | --- |",
            *(f"| {kind} | {ms:.2f} ms |" for kind, ms in costs.items()),
        ]
    lines += [
        "",
        f"API requests per pod, by client, in round {middle} (the median one): the API server's audit log over",
        "the same span (each process under test authenticates as its own ServiceAccount; `vnode-admin` is",
        "the benchmark itself):",
        "",
        "| target | client | requests per pod | of which, per pod |",
        "| --- | --- | --- | --- |",
    ]
    for run in (r for r in runs if r.round == middle):
        for client, calls in _clients(run)[:4]:
            total = sum(calls.values())
            if total < run.pods / 100:
                continue
            top = ", ".join(
                f"{what} {_per_pod(n, run.pods)}" for what, n in calls.most_common(5) if n >= run.pods / 100
            )
            lines.append(f"| {run.target} | `{client}` | **{_per_pod(total, run.pods)}** | {top} |")
    lines += _deletes(runs)
    if paced:
        ref = next((r for r in paced if r.target == "kwok"), None)
        lines += [
            "",
            f"Latency each target adds when it is not saturated: {paced[0].pods} pods created at a steady "
            f"{paced[0].rate:g} pods/s, after 5 warm-up pods per node (in a burst, latency is mostly the queue",
            "of pods not yet created or handled, and says little about the target):",
            "",
            "| target | pods Running | p50 | p99 | p99 added vs KWOK |",
            "| --- | --- | --- | --- | --- |",
        ]
        for run in paced:
            lat = run.latencies
            p99 = percentile(lat, 0.99)
            added = f"**{p99 - percentile(ref.latencies, 0.99):+.2f} s**" if ref and run is not ref else "-"
            p50 = percentile(lat, 0.5)
            lines.append(f"| {run.target} | {len(run.running)}/{run.pods} | {p50:.2f} s | {p99:.2f} s | {added} |")
    if single is not None:
        lines += [
            "",
            f"One vnode node alone with {single.pods} pods (the field's guidance per virtual node): "
            f"{len(single.running)} Running at {single.throughput:.0f} pods/s, peak RSS of the daemon "
            f"**{single.peak_rss_mb:.0f} MB**, {single.cpu_seconds:.1f} s of its CPU.",
        ]
    lines += _aims(runs, single, paced or [])
    lines += ["", f"![Running pods over time, round {middle}]({plot_name})"]
    return "\n".join(lines)
