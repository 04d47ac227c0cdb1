"""One soak run: the world, the checks every few seconds, the workload and the faults, then the verdict.

Phases: ramp (the workload starts; calm, the reference for requests per pod), faults (one after
another, each followed by a pause in which its settle time is measured), settle (no faults; the
checks must come clean), final (the end state must agree), teardown (every workload namespace
deleted: every instance must go too).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pathlib
import random
import sys
import time
import urllib.request
from typing import Any

from prometheus_client import parser

from soak import audit, faults, invariants, workload
from soak import world as world_mod
from vnode.kube import api, client, config, informer

log = logging.getLogger("soak")


# (create/delete cycles, pods on the daemon's node, RSS in MB, blocks CPython's allocator holds; 0: unread)
Sample = tuple[int, int, float, int]


@dataclasses.dataclass(frozen=True)
class Args:
    pods: int = 5000
    nodes: int = 3
    minutes: float = 30.0
    seed: int = 1
    short: bool = False
    keep: bool = False
    faults: tuple[str, ...] = ()  # these faults in this order instead of the seed's schedule


@dataclasses.dataclass
class Result:
    args: Args
    records: list[faults.Record]
    checker: invariants.Checker
    counts: dict[str, int]
    rss: dict[str, list[Sample]]  # daemon (name/pid) -> its samples
    requests: audit.Findings
    calm_pods: int
    cloud_calls: dict[str, Any]
    takeovers: list[float]
    settled: bool
    teardown_seconds: float | None
    wall_started: float
    duration: float


def say(message: str) -> None:
    print(f"soak {time.strftime('%H:%M:%S')}: {message}", file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def allocated_blocks(http_port: int) -> int:
    """The daemon's ``vnode_python_allocated_blocks`` (0 while it does not answer)."""
    url = f"http://127.0.0.1:{http_port}/metrics"
    with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=2) as response:
        for family in parser.text_string_to_metric_families(response.read().decode()):
            if family.name == "vnode_python_allocated_blocks":
                return int(family.samples[0].value)
    return 0


class Soak:
    def __init__(self, args: Args, the_world: world_mod.World) -> None:
        self.args = args
        self.world = the_world
        self.rng = random.Random(args.seed)
        self.started = time.monotonic()
        self.checker = invariants.Checker(f"{world_mod.STATEFULSET}-", clock=self.now)
        self.candidates: dict[str, int] = {}
        self.rss: dict[str, list[Sample]] = {}
        self.instances: list[dict[str, Any]] = []
        self.cloud_calls: dict[str, Any] = {}
        self._calls_base: dict[str, dict[str, int]] = {}

    def now(self) -> float:
        return time.monotonic() - self.started

    def clean(self, strict: bool = False) -> bool:
        """No candidate older than the settle age (``strict``: none at all), every wanted node Ready."""
        candidates = self.checker.pending() if strict else self.candidates
        if candidates:
            return False
        try:
            nodes = self.world.nodes()
        except Exception:  # the API server is down (a fault, or one that failed): not clean
            return False
        return all(nodes.get(self.world.node(o)) for o in self.world.daemons)

    async def checks(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.instances = await asyncio.to_thread(self.world.instances)
                totals = await asyncio.to_thread(self.world.admin, "GET", "totals")
                self._count_calls(totals)
            except OSError:  # the cloud is being restarted: check again next round
                await asyncio.sleep(2)
                continue
            self.candidates = self.checker.check(self.instances)
            self.checker.forget_old()
            carried = self.checker.carried()
            for ordinal, daemon in list(self.world.daemons.items()):
                node = self.world.node(ordinal)
                key = f"{node} pid {daemon.proc.pid}"
                if daemon.proc.poll() is None:
                    blocks = await asyncio.to_thread(allocated_blocks, daemon.http_port)
                    sample = (self.checker.cycles, carried.get(node, 0), rss_mb(daemon.proc.pid), blocks)
                    self.rss.setdefault(key, []).append(sample)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)

    def _count_calls(self, totals: dict[str, Any]) -> None:
        """The cloud's call counters, summed over its restarts (each restart starts them at 0)."""
        for kind, counters in (("calls", totals["calls"]), ("refused", totals["refused_by_limits"])):
            seen, base = self.cloud_calls.setdefault(kind, {}), self._calls_base.setdefault(kind, {})
            for op, value in counters.items():
                if value < seen.get(op, 0) - base.get(op, 0):
                    base[op] = seen.get(op, 0)
                seen[op] = base.get(op, 0) + value

    def fresh(self, seconds: float) -> list[str]:
        now = self.now()
        return [p.key for p in self.checker.pods.values()
                if p.gone_at is None and now - p.first_seen < seconds and p.key.startswith("soak-a/")]  # fmt: skip

    def live_keys(self) -> list[str]:
        return [p.key for p in self.checker.pods.values() if p.gone_at is None and p.deleting_since is None]

    async def wait_clean(self, within: float, strict: bool = False) -> float | None:
        """Seconds until the checks come clean (None: not within ``within``)."""
        started = self.now()
        while self.now() - started < within:
            if await asyncio.to_thread(self.clean, strict):
                return self.now() - started
            await asyncio.sleep(2)
        return None


async def run(args: Args, the_world: world_mod.World) -> Result:
    soak = Soak(args, the_world)
    kube = client.Client(config.load_kubeconfig(the_world.info.kubeconfig if the_world.info else ""))
    pods = informer.Informer(kube, api.PODS, on_change=soak.checker.on_pod)
    nodes = informer.Informer(kube, api.NODES, on_change=soak.checker.on_node)
    stop = asyncio.Event()
    work = workload.Workload(the_world.api, workload.Size(args.pods), random.Random(args.seed + 1), soak.live_keys)
    ctx = faults.Context(the_world, work, random.Random(args.seed + 2), 0.25 if args.short else 1.0, soak.fresh)
    background = [asyncio.create_task(pods.run()), asyncio.create_task(nodes.run()),
                  asyncio.create_task(soak.checks(stop))]  # fmt: skip
    records: list[faults.Record] = []
    try:
        await work.setup()
        work_task = asyncio.create_task(work.run())
        minutes = args.minutes * 60
        ramp = minutes * (0.15 if not args.short else 0.25)
        say(f"ramp: {args.pods} pods over {args.nodes} nodes, calm for {ramp:.0f}s")
        await asyncio.sleep(ramp)
        calm_wall, calm_pods = time.time(), soak.checker.created + soak.checker.cycles
        kinds = list(args.faults) or faults.schedule(soak.rng, args.short)
        gap = max(10.0, (minutes * 0.8 - ramp) / len(kinds))
        for kind in kinds:
            record = faults.Record(kind, soak.now())
            say(f"fault: {kind}")
            try:
                record.detail = await faults.FAULTS[kind](ctx)
            except Exception as exc:  # a fault that could not be carried out is reported, not fatal
                record.error = f"{type(exc).__name__}: {exc}"
                say(f"fault {kind} failed: {record.error}")
            record.end = soak.now()
            record.settled_after = await soak.wait_clean(max(gap, 240))
            say(f"{kind}: {record.detail or record.error}; settled after {record.settled_after}")
            records.append(record)
            await asyncio.sleep(max(0.0, record.end + gap - soak.now()))
        remaining = minutes - soak.now()
        if remaining > 0:
            await asyncio.sleep(remaining)
        work.stop()
        await work_task
        say("workload stopped; settling")
        settled = await soak.wait_clean(300, strict=True) is not None
        soak.checker.final(soak.instances)
        say("teardown: every workload namespace deleted")
        torn = time.monotonic()
        namespaces = [*workload.NAMESPACES, *_tmp_namespaces(soak)]
        await work.teardown(namespaces)
        teardown = await _until_empty(soak, 900)
        teardown_seconds = time.monotonic() - torn if teardown else None
        if not teardown:
            for inst in soak.instances:
                key = ("leaked after teardown", inst["id"])
                soak.checker.violations[key] = invariants.Violation(key[0], inst["id"], inst["status"], soak.now())
    finally:
        stop.set()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await kube.close()
    requests = await asyncio.to_thread(audit.analyse, the_world.cluster.state_dir / "audit.log", calm_wall, ctx.fences)
    for write in requests.fenced_writes:
        key = ("fenced write", write)
        soak.checker.violations[key] = invariants.Violation(key[0], write, "a write after losing the lease", 0.0)
    return Result(args, records, soak.checker, dict(work.counts), soak.rss, requests, calm_pods, soak.cloud_calls,
                  ctx.takeovers, settled, teardown_seconds, calm_wall, soak.now())  # fmt: skip


def _tmp_namespaces(soak: Soak) -> list[str]:
    from kubernetes import client as k8s

    names = [n.metadata.name for n in k8s.CoreV1Api(soak.world.api).list_namespace().items]
    return [n for n in names if n.startswith("soak-tmp-")]


async def _until_empty(soak: Soak, within: float) -> bool:
    deadline = soak.now() + within
    while soak.now() < deadline:
        if not soak.instances and not soak.live_keys():
            return True
        await asyncio.sleep(3)
    return False
