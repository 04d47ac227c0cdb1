"""The pods of ``bench.scale``: the API client it measures with, the bench pods' creation, the watch
that records when each is first seen Running, their deletion, and the run's record (:class:`Run`).

``bench.scale`` and ``bench.shapes`` measure with these; the targets (``bench.scale_targets``)
start what is measured.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import json
import pathlib
import ssl
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO, Protocol

import aiohttp

from vnode.cluster import launcher, procs

NAMESPACE = "bench"
TOLERATIONS = [{"operator": "Exists"}]  # every kind of node is tainted; the bench pods go anywhere it puts them


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


def _audit_events(handle: BinaryIO) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each audit event from ``handle`` on (one with a client and a verb), with its client (a
    ServiceAccount as ``namespace:name``); a line that is not one is skipped."""
    for line in handle:
        try:
            event = json.loads(line)
            user, _ = event["user"]["username"].removeprefix("system:serviceaccount:"), event["verb"]
        except (ValueError, KeyError, TypeError):
            continue
        yield user, event


def audit_counts(path: pathlib.Path, offset: int) -> tuple[dict[str, collections.Counter[str]], int]:
    """Requests per client and call (``verb resource[/subresource]``) logged after ``offset``."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    with path.open("rb") as handle:
        handle.seek(offset)
        for user, event in _audit_events(handle):
            ref = event.get("objectRef") or {}
            what = ref.get("resource") or event.get("requestURI", "?").split("?")[0]
            if ref.get("subresource"):
                what += "/" + ref["subresource"]
            if event["verb"] == "list" and "continue=" in event.get("requestURI", ""):
                what += " (next page)"  # one LIST, in pages of 500: the next pages are not new LISTs
            counts[user][f"{event['verb']} {what}"] += 1
        end = handle.tell()
    return dict(counts), end


def audit_timeline(path: pathlib.Path, offset: int, user: str) -> list[tuple[float, str]]:
    """``user``'s requests logged after ``offset``: when each was received (Unix time) and its verb."""
    with path.open("rb") as handle:
        handle.seek(offset)
        return [
            (datetime.datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp(), event["verb"])
            for who, event in _audit_events(handle)
            if who == user and "requestReceivedTimestamp" in event
        ]


def say(message: str) -> None:
    print(f"bench.scale: {message}", file=sys.stderr, flush=True)


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
