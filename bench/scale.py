"""N pods over K nodes to Running: vnode's virtual nodes against KWOK's fake nodes, same control plane, same run.

KWOK only flips pod status, so it shows what the control plane itself allows; vnode's figures
are read as a ratio of KWOK's. Pods are created with ``spec.nodeName`` already set, round
robin over the nodes, so the scheduler is out of the measurement and both targets see the same
stream of pods. One watch records when each pod is first seen Running; the API server's audit
log counts requests per client; /proc gives each target's CPU seconds and peak RSS.

    python -m bench.scale [--pods 10000] [--nodes 4] [--targets kwok,vnode]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import aiohttp

from bench import report
from vnode.cluster import launcher, procs

NAMESPACE = "bench"
TOLERATIONS = [{"operator": "Exists"}]  # both kinds of node are tainted; the bench pods go anywhere it puts them


@dataclasses.dataclass
class Run:
    target: str
    pods: int
    nodes: int
    created: dict[str, float] = dataclasses.field(default_factory=dict)
    running: dict[str, float] = dataclasses.field(default_factory=dict)
    started_at: float = 0.0
    requests_by_client: dict[str, int] = dataclasses.field(default_factory=dict)
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def latencies(self) -> list[float]:
        return sorted(self.running[n] - self.created[n] for n in self.running if n in self.created)

    @property
    def duration(self) -> float:
        return max(self.running.values()) - self.started_at if self.running else float("nan")

    @property
    def throughput(self) -> float:
        return len(self.running) / self.duration if self.running else 0.0


class Target(Protocol):
    """One kind of node under test: starts its processes for ``nodes`` nodes, returns their pids."""

    name: str

    def node_names(self, nodes: int) -> list[str]: ...

    async def start(self, info: launcher.Info, supervisor: procs.Supervisor, nodes: int) -> list[int]: ...


class Api:
    """The few calls the benchmark makes, with the admin client certificate."""

    def __init__(self, info: launcher.Info) -> None:
        ctx = ssl.create_default_context(cafile=str(info.ca_file))
        pki = info.state_dir / "pki"
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.server = info.server
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=128), timeout=aiohttp.ClientTimeout(total=None, sock_read=300)
        )

    async def close(self) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        async with self.session.request(method, self.server + path, json=body) as resp:
            data = await resp.read()
            if resp.status not in expect:
                raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
            return json.loads(data) if data else None

    async def watch_pods(self, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        path = (
            f"/api/v1/namespaces/{NAMESPACE}/pods?watch=1&allowWatchBookmarks=false&resourceVersion={resource_version}"
        )
        async with self.session.get(self.server + path, headers={"Accept-Encoding": "identity"}) as resp:
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)


def pod_manifest(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "nodeName": node,
            "tolerations": TOLERATIONS,
            "containers": [
                {"name": "web", "image": "nginx:alpine", "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}}
            ],
        },
    }


async def create_pods(api: Api, run: Run, node_names: list[str], concurrency: int = 64) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(run.pods):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            name = f"p-{i:05d}"
            await api.request(
                "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod_manifest(name, node_names[i % len(node_names)])
            )
            run.created[name] = time.monotonic()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def record_running(api: Api, run: Run, resource_version: str, deadline: float) -> None:
    while len(run.running) < run.pods and time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async for event in api.watch_pods(resource_version):
                obj = event["object"]
                if event["type"] == "ERROR":
                    break
                resource_version = obj["metadata"]["resourceVersion"]
                name = obj["metadata"]["name"]
                if obj.get("status", {}).get("phase") == "Running" and name not in run.running:
                    run.running[name] = time.monotonic()
                    if len(run.running) >= run.pods:
                        return
                if time.monotonic() > deadline:
                    return


def say(message: str) -> None:
    print(f"bench.scale: {message}", file=sys.stderr, flush=True)


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


def audit_counts(path: pathlib.Path, offset: int) -> tuple[dict[str, int], int]:
    counts: collections.Counter[str] = collections.Counter()
    with path.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            with contextlib.suppress(ValueError, KeyError):
                event = json.loads(line)
                user = event["user"]["username"]
                counts[user.removeprefix("system:serviceaccount:")] += 1
        end = handle.tell()
    return dict(counts), end


async def measure(info: launcher.Info, target: Target, pods: int, nodes: int, limit_seconds: float) -> Run:
    supervisor = procs.Supervisor(info.state_dir / f"bench-{target.name}.json", info.state_dir / "logs", attach=True)
    api = Api(info)
    run = Run(target.name, pods, nodes)
    try:
        await api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}}, expect=(201, 409))
        await wait_for_default_sa(api)
        say(f"{target.name}: starting {nodes} nodes")
        pids = await target.start(info, supervisor, nodes)
        say(f"{target.name}: nodes Ready; creating {pods} pods")
        audit = info.state_dir / "audit.log"
        _, offset = audit_counts(audit, 0)
        cpu_before = cpu_seconds(pids)
        listing = await api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?limit=1")
        run.started_at = time.monotonic()
        recorder = asyncio.create_task(
            record_running(api, run, listing["metadata"]["resourceVersion"], run.started_at + limit_seconds)
        )
        await create_pods(api, run, target.node_names(nodes))
        say(f"{target.name}: {pods} pods created in {time.monotonic() - run.started_at:.1f}s")
        await recorder
        run.cpu_seconds = cpu_seconds(pids) - cpu_before
        run.peak_rss_mb = peak_rss_mb(pids)
        run.requests_by_client, _ = audit_counts(audit, offset)
        await delete_namespace(api)
    finally:
        supervisor.stop()
        await api.close()
    return run


async def wait_for_default_sa(api: Api) -> None:
    for _ in range(300):
        found = await api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default", expect=(200, 404))
        if found.get("kind") == "ServiceAccount":  # a 404 answers with a Status body
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("no default service account in the bench namespace")


async def delete_namespace(api: Api) -> None:
    # Pods on fake nodes may never finish terminating; force them so the next target starts clean.
    # Deleting 10,000 pods outlasts the API server's request timeout (504) but goes on regardless.
    await api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods?gracePeriodSeconds=0", expect=(200, 504))
    await api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}", expect=(200, 202, 404, 504))
    for _ in range(1200):
        found = await api.request("GET", f"/api/v1/namespaces/{NAMESPACE}", expect=(200, 404))
        if found.get("kind") != "Namespace":  # a 404 answers with a Status body
            return
        await asyncio.sleep(0.25)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def plot(runs: list[Run], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        times = sorted(t - run.started_at for t in run.running.values())
        ax.plot(times, range(1, len(times) + 1), label=f"{run.target} ({run.nodes} nodes)")
    ax.set_xlabel("seconds since the first pod was created")
    ax.set_ylabel("pods Running")
    ax.set_title(f"{runs[0].pods} pods to Running")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def render(runs: list[Run], plot_name: str) -> str:
    reference = next((r for r in runs if r.target == "kwok"), None)
    lines = [
        "## Scale: pods to Running, vnode against KWOK",
        "",
        report.machine(),
        "",
        "Pods created with `spec.nodeName` set, round robin over the nodes (the scheduler is not measured);",
        "latency is from the create call's return to the first watch event showing `Running`.",
        "",
        "| target | pods Running | throughput (pods/s) | vs KWOK | p50 latency (s) | p99 latency (s) "
        "| target CPU (s) | peak RSS per process (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        ratio = f"{run.throughput / reference.throughput:.0%}" if reference and reference.throughput else "-"
        lat = run.latencies
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        lines.append(
            f"| {run.target} | {len(run.running)}/{run.pods} | {run.throughput:.0f} | {ratio} | {p50:.2f} | {p99:.2f} "
            f"| {run.cpu_seconds:.1f} | {run.peak_rss_mb:.0f} |"
        )
    lines += ["", "API requests per pod, by client (from the API server's audit log):", ""]
    lines += ["| target | client | requests | per pod |", "| --- | --- | --- | --- |"]
    for run in runs:
        for client, count in sorted(run.requests_by_client.items(), key=lambda kv: -kv[1])[:6]:
            lines.append(f"| {run.target} | `{client}` | {count} | {count / run.pods:.2f} |")
    lines += ["", f"![Running pods over time]({plot_name})"]
    return "\n".join(lines)


def targets() -> dict[str, Callable[[], Target]]:
    """The targets this checkout can run; each module supplies its own."""
    found: dict[str, Callable[[], Target]] = {}
    with contextlib.suppress(ImportError):
        from bench import scale_targets

        found.update(scale_targets.TARGETS)
    return found


@contextlib.contextmanager
def bench_cluster() -> Iterator[launcher.Info]:
    state = pathlib.Path(tempfile.mkdtemp(prefix="vnode-bench-"))
    options = launcher.default_options(state, audit=True, attach=True, client_qps=5000, client_burst=10000)
    cluster = launcher.Cluster(options)
    try:
        yield cluster.up()
    finally:
        cluster.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--targets", default="kwok,vnode")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/")
    args = parser.parse_args(argv)
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
    with bench_cluster() as info:
        for name in wanted:
            print(f"bench.scale: {name}: {args.pods} pods over {args.nodes} nodes", file=sys.stderr, flush=True)
            run = asyncio.run(measure(info, available[name](), args.pods, args.nodes, args.timeout))
            print(f"bench.scale: {name}: {len(run.running)} Running, {run.throughput:.0f} pods/s", file=sys.stderr)
            runs.append(run)
    section = render(runs, "bench-scale.png")
    if args.no_write:
        print(section)
    else:
        plot(runs, report.DOC.parent / "bench-scale.png")
        report.write_section("scale", section)
    return 0 if all(len(r.running) == r.pods for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
