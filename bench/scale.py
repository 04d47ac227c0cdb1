"""N pods over K nodes to Running: vnode's virtual nodes against KWOK's fake nodes and virtual-kubelet's
mock provider, same machine, same run.

KWOK only flips pod status, so it shows what the control plane itself allows; virtual-kubelet (Go)
with its mock provider is the virtual kubelet our users would compare us with; vnode's figures
are read as a ratio of KWOK's. Each measured run gets a control plane of its own, started
fresh (a second target on the same one would find the first one's 10,000 deleted pods in etcd
and its API server warmed up), and the run is repeated in rounds that alternate which target
goes first, so that a machine whose other load comes and goes favours neither; the ratio is
taken within each round and the median of the rounds is the result. Pods are created with
``spec.nodeName`` already set, round robin over the nodes, so the scheduler is out of the
measurement and both targets see the same stream of pods. One watch records when each pod is
first seen Running (resumed from its last resourceVersion when the server drops it, listed
again on 410); the API server's audit log counts requests per client (each process under test
has its own ServiceAccount); /proc gives each target's CPU seconds and peak RSS, and the API
server's and etcd's CPU seconds.

    python -m bench.scale [--pods 10000] [--nodes 4] [--targets kwok,virtual-kubelet,vnode] [--rounds 3]
    python -m bench.scale --quick      # a 2,000-pod look, one round, in under 3 minutes; prints, writes nothing
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
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import aiohttp

from bench import report
from vnode.cluster import launcher, procs

NAMESPACE = "bench"
TOLERATIONS = [{"operator": "Exists"}]  # every kind of node is tainted; the bench pods go anywhere it puts them
PEER = "virtual-kubelet"  # the Go virtual kubelet, beside KWOK


@dataclasses.dataclass
class Run:
    target: str
    pods: int
    nodes: int
    rate: float = 0.0  # pods created per second; 0: as fast as the API server takes them
    created: dict[str, float] = dataclasses.field(default_factory=dict)
    running: dict[str, float] = dataclasses.field(default_factory=dict)
    started_at: float = 0.0
    requests_by_client: dict[str, collections.Counter[str]] = dataclasses.field(default_factory=dict)
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    control_plane_cpu: dict[str, float] = dataclasses.field(default_factory=dict)  # process -> CPU seconds
    helper_cpu: dict[str, float] = dataclasses.field(default_factory=dict)  # e.g. the simulated cloud
    create_seconds: float = 0.0
    rewatches: int = 0
    call_cost_ms: dict[str, float] = dataclasses.field(default_factory=dict)  # API server CPU per call, by kind
    round: int = 1
    delete_seconds: tuple[float, float] | None = None  # until the pods were gone, until their instances were

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
    helpers: dict[str, int]  # processes that stand in for the outside world (a cloud): name -> pid

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
            f"/api/v1/namespaces/{NAMESPACE}/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=120"
            f"&resourceVersion={resource_version}"
        )
        async with self.session.get(self.server + path, headers={"Accept-Encoding": "identity"}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"watch: {resp.status}")
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)

    async def list_pods(self) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        query = "limit=1000"
        while True:
            page = await self.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?{query}")
            items += page["items"]
            if not page["metadata"].get("continue"):
                return items, page["metadata"]["resourceVersion"]
            query = f"limit=1000&continue={page['metadata']['continue']}"


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
            if run.rate:
                await asyncio.sleep(max(0.0, run.started_at + i / run.rate - time.monotonic()))
            name = f"p-{i:05d}"
            await api.request(
                "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod_manifest(name, node_names[i % len(node_names)])
            )
            run.created[name] = time.monotonic()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _saw(run: Run, pod: dict[str, Any]) -> None:
    name = pod["metadata"]["name"]
    if name.startswith("p-") and pod.get("status", {}).get("phase") == "Running" and name not in run.running:
        run.running[name] = time.monotonic()


async def record_running(api: Api, run: Run, resource_version: str, deadline: float) -> None:
    """Note when each pod is first seen Running. A dropped watch resumes from the last
    resourceVersion seen (bookmarks keep it fresh); only a 410 Gone lists the pods again."""
    relist = False
    while len(run.running) < run.pods and time.monotonic() < deadline:
        try:
            if relist:
                items, resource_version = await api.list_pods()
                for pod in items:
                    _saw(run, pod)
                relist = False
            async for event in api.watch_pods(resource_version):
                obj = event["object"]
                if event["type"] == "ERROR":
                    relist = obj.get("code") == 410
                    say(f"{run.target}: watch error {obj.get('code')} {obj.get('message', '')[:120]}")
                    break
                resource_version = obj["metadata"]["resourceVersion"]
                if event["type"] in ("ADDED", "MODIFIED"):
                    _saw(run, obj)
                if len(run.running) >= run.pods or time.monotonic() > deadline:
                    return
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            say(f"{run.target}: watch dropped ({type(exc).__name__}: {exc}); resuming at {resource_version}")
            await asyncio.sleep(0.2)
        run.rewatches += 1


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


def audit_counts(path: pathlib.Path, offset: int) -> tuple[dict[str, collections.Counter[str]], int]:
    """Requests per client and call (``verb resource[/subresource]``) logged after ``offset``."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    with path.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            with contextlib.suppress(ValueError, KeyError):
                event = json.loads(line)
                user = event["user"]["username"].removeprefix("system:serviceaccount:")
                ref = event.get("objectRef") or {}
                what = ref.get("resource") or event.get("requestURI", "?").split("?")[0]
                if ref.get("subresource"):
                    what += "/" + ref["subresource"]
                counts[user][f"{event['verb']} {what}"] += 1
        end = handle.tell()
    return dict(counts), end


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
) -> Run:
    """One target's run. ``costs``: then measure what each kind of call costs the API server (vnode's);
    ``clean``: then delete the pods (not needed when the control plane goes next)."""
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
            await recorder
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


async def warm_up(api: Api, node_names: list[str], per_node: int = 5, within: float = 120) -> None:
    """Run a few pods on every node first: a latency figure is about a node at work, not one starting up
    (its first API and cloud connections, its first listings)."""
    for n in range(per_node * len(node_names)):
        manifest = pod_manifest(f"warm-{n:03d}", node_names[n % len(node_names)])
        await api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", manifest)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        items, _ = await api.list_pods()
        if all(p.get("status", {}).get("phase") == "Running" for p in items):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the warm-up pods did not all run")


async def wait_for_default_sa(api: Api) -> None:
    for _ in range(300):
        found = await api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default", expect=(200, 404))
        if found.get("kind") == "ServiceAccount":  # a 404 answers with a Status body
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("no default service account in the bench namespace")


async def delete_pods(api: Api, within: float = 600, concurrency: int = 64) -> None:
    """Remove every bench pod (forced: pods on fake nodes never finish terminating) and wait until
    the listing is empty, so the next target starts clean. Pods are deleted one by one, many at a
    time (a collection delete goes through them one after another); the listing is polled, so this
    needs no watch, and the namespace stays (its controller is one more thing that could stall)."""
    deadline = time.monotonic() + within
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
            items, _ = await api.list_pods()
            if not items:
                return
            names = [pod["metadata"]["name"] for pod in items]

            async def worker(names: list[str] = names) -> None:
                while names and time.monotonic() < deadline:
                    name = names.pop()
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
                        await api.request("DELETE", f"{path}/{name}?gracePeriodSeconds=0", expect=(200, 404))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        await asyncio.sleep(0.5)
    say(f"bench pods still present after {within:.0f}s")


async def timed_delete(api: Api, target: Target, within: float = 900, concurrency: int = 64) -> tuple[float, float]:
    """Delete every bench pod as a user would (``kubectl delete``, the pod's own grace period), so the
    node's controller acts: KWOK removes the pod, virtual-kubelet's provider and vnode delete what
    runs it and then the pod. Returns the seconds until the listing is empty and until the target's
    cloud has no instance left (the same figure for a target without a cloud)."""
    started = time.monotonic()
    items, _ = await api.list_pods()
    names = [pod["metadata"]["name"] for pod in items]
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"

    async def worker() -> None:
        while names:
            await api.request("DELETE", f"{path}/{names.pop()}", expect=(200, 404))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    deadline = started + within
    while (await api.request("GET", f"{path}?limit=1"))["items"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.name}: bench pods still present {within:.0f}s after their deletion")
        await asyncio.sleep(0.2)
    pods_gone = time.monotonic() - started
    admin_url = getattr(target, "admin_url", "")
    while admin_url and await _live_instances(api, admin_url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.name}: instances still live {within:.0f}s after their pods' deletion")
        await asyncio.sleep(0.2)
    return pods_gone, time.monotonic() - started


async def _live_instances(api: Api, admin_url: str) -> int:
    async with api.session.get(admin_url + "instances", ssl=False) as resp:
        return len((await resp.json())["instances"])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def plot(runs: list[Run], path: pathlib.Path) -> None:
    """Running (and created) pods over time of each target's run in the median round."""
    middle = median_round(runs)
    runs = [r for r in runs if r.round == middle]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        times = sorted(t - run.started_at for t in run.running.values())
        line = ax.plot(times, range(1, len(times) + 1), label=f"{run.target}: Running ({run.nodes} nodes)")
        created = sorted(t - run.started_at for t in run.created.values())
        ax.plot(created, range(1, len(created) + 1), ls=":", color=line[0].get_color(), label=f"{run.target}: created")
    ax.set_xlabel("seconds since the first pod was created")
    ax.set_ylabel("pods")
    ax.set_title(f"{runs[0].pods} pods to Running, round {middle} (the median ratio)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


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
        "until the simulated cloud has no instance left:",
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
        "Control plane CPU while each target ran (from the first create to the last pod Running):",
        "",
        "| round | target | kube-apiserver CPU | per pod | etcd CPU | per pod | simulated cloud CPU | per pod |",
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
            "afterwards by making 400 of that kind alone, 32 in flight, against the Running pods, less the",
            "API server's CPU rate over the second before; it includes the watchers each write is sent to):",
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


def targets() -> dict[str, Callable[[], Target]]:
    """The targets this checkout can run; each module supplies its own."""
    found: dict[str, Callable[[], Target]] = {}
    with contextlib.suppress(ImportError):
        from bench import scale_targets

        found.update(scale_targets.TARGETS)
    return found


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
        "--rounds", type=int, default=3, help="runs of each target, the order alternating; the median ratio counts"
    )
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/")
    parser.add_argument("--keep-state", action="store_true", help="keep the control plane's directory (logs, audit)")
    parser.add_argument("--paced-pods", type=int, default=1000, help="then this many at --paced-rate (0: skip)")
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
                        costs=number == 1 and name == "vnode",
                        clean=False,
                        delete=number == 1,
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
    else:
        plot(runs, report.DOC.parent / picture)
        report.write_section(args.section, section)
    return 0 if all(len(r.running) == r.pods for r in [*runs, *paced, *([single] if single else [])]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
