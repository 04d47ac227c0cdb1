"""The soak's faults, each an action with a start and an end, on a schedule drawn from the seed.

Cloud faults go through the simulator's admin API (the operations' 5xx storms, throttling,
latency, a zone's stock-out, an exhausted vSwitch) or its ECI API (an instance deleted behind
vnode's back), or kill it; Kubernetes faults kill the API server, or compact etcd first so that
every watch resumes into 410 Gone; daemon faults kill, freeze and scale the StatefulSet in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from soak import audit
from soak import world as world_mod
from soak.workload import Workload

Action = Callable[["Context"], Awaitable[str]]


@dataclasses.dataclass
class Record:
    kind: str
    start: float  # seconds since the soak began
    end: float = 0.0
    detail: str = ""
    settled_after: float | None = None  # seconds from ``end`` until the checks were clean again
    error: str = ""


@dataclasses.dataclass
class Context:
    world: world_mod.World
    workload: Workload
    rng: random.Random
    scale: float  # 1.0 for the default soak's minute-long storms; less for short ones
    fresh_pods: Callable[[float], list[str]]  # live workload pods first seen within the last N seconds
    fences: list[audit.Fence] = dataclasses.field(default_factory=list)  # frozen daemons' fenced windows
    takeovers: list[float] = dataclasses.field(default_factory=list)  # seconds to drain a dead replica's node

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self.world.admin, method, path, body)

    async def hold(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.scale)


async def _operations_fault(ctx: Context, operations: tuple[str, ...], fault: dict[str, Any], seconds: float) -> str:
    for op in operations:
        await ctx.admin("PUT", f"faults/{op}", fault)
    try:
        await ctx.hold(seconds)
    finally:
        for op in operations:
            await ctx.admin("DELETE", f"faults/{op}")
    return f"{json.dumps(fault)} on {', '.join(operations)} for {seconds * ctx.scale:.0f}s"


async def storm(ctx: Context) -> str:
    return await _operations_fault(ctx, ("create", "delete"), {"error_rate": 0.25}, 60)


async def throttling(ctx: Context) -> str:
    return await _operations_fault(ctx, ("create", "delete"), {"throttle_rate": 0.5}, 60)


async def latency(ctx: Context) -> str:
    """2 s on every call for half a minute, with fresh pods deleted while their creates are slow."""
    ops = ("create", "delete", "describe", "status")
    task = asyncio.create_task(_operations_fault(ctx, ops, {"latency_ms": 2000}, 30))
    await asyncio.sleep(3)
    await ctx.workload.delete_fresh(ctx.fresh_pods(3.0)[:20])
    return await task


async def listing_errors(ctx: Context) -> str:
    """The listings fail half the time: orphan collection must not mistake an error for "none"."""
    return await _operations_fault(ctx, ("describe", "status"), {"error_rate": 0.5}, 60)


async def stock_out(ctx: Context) -> str:
    zone = ctx.rng.choice(sorted(ctx.world.cloud["zones"]))
    await ctx.admin("POST", "stock", {"zone": zone, "spec": "*", "available": 0})
    try:
        await ctx.hold(60)
    finally:
        await ctx.admin("POST", "stock", {"zone": zone, "spec": "*", "available": None})
    return f"zone {zone} out of stock for {60 * ctx.scale:.0f}s"


async def vswitch_exhausted(ctx: Context) -> str:
    vswitch = ctx.rng.choice([v["id"] for v in ctx.world.cloud["vswitches"]])
    await ctx.admin("POST", f"vswitches/{vswitch}", {"exhausted": True})
    try:
        await ctx.hold(60)
    finally:
        await ctx.admin("POST", f"vswitches/{vswitch}", {"exhausted": False})
    return f"vSwitch {vswitch} without addresses for {60 * ctx.scale:.0f}s"


async def vanish(ctx: Context) -> str:
    """Instances deleted on the cloud side, behind vnode's back (a console user, a cloud incident)."""
    running = [i for i in await asyncio.to_thread(ctx.world.instances) if i["status"] == "Running"]
    chosen = ctx.rng.sample(running, min(5, len(running)))
    for inst in chosen:
        await asyncio.to_thread(ctx.world.delete_in_cloud, inst["id"])
    return "deleted in the cloud: " + ", ".join(i["id"] for i in chosen)


async def cloud_kill(ctx: Context) -> str:
    await asyncio.to_thread(ctx.world.kill_cloud)
    await asyncio.sleep(3)
    await asyncio.to_thread(ctx.world.start_cloud)
    return "the simulated cloud kill -9'd, restarted on its state after 3s"


async def apiserver_kill(ctx: Context) -> str:
    await asyncio.to_thread(ctx.world.cluster.restart, "kube-apiserver")
    return "kube-apiserver kill -9'd and restarted"


async def watches_gone(ctx: Context) -> str:
    revision = await asyncio.to_thread(ctx.world.cluster.compact_etcd)
    await asyncio.to_thread(ctx.world.cluster.restart, "kube-apiserver")
    return f"etcd compacted at revision {revision}, kube-apiserver kill -9'd: watches resume into 410 Gone"


async def _kill_daemon(ctx: Context, ordinal: int, pause: float = 3.0) -> None:
    ctx.world.signal_daemon(ordinal, signal.SIGKILL)
    await asyncio.to_thread(ctx.world.reap_daemon, ordinal, 10)
    await asyncio.sleep(pause)
    await asyncio.to_thread(ctx.world.start_daemon, ordinal)


async def daemon_kill(ctx: Context) -> str:
    ordinal = ctx.rng.randrange(len(ctx.world.daemons))
    await _kill_daemon(ctx, ordinal)
    return f"daemon {ordinal} kill -9'd, restarted after 3s"


async def daemon_kill_in_creates(ctx: Context) -> str:
    """Killed while a burst of creates is in flight: between the cloud's create and the pod's status write."""
    await ctx.workload.burst(100 if ctx.scale >= 1 else 20)
    await asyncio.sleep(2.5)
    ordinal = ctx.rng.randrange(len(ctx.world.daemons))
    await _kill_daemon(ctx, ordinal)
    return f"a Deployment scaled up, daemon {ordinal} kill -9'd 2.5s later amid its creates"


async def freeze(ctx: Context) -> str:
    """SIGSTOP a daemon past its lease; a replacement (a new pod uid) takes the node over; SIGCONT the
    old one: fenced, it must not write to the API again (the audit log is checked at the end)."""
    ordinal = max(ctx.world.daemons)
    old = ctx.world.daemons[ordinal]
    ctx.world.signal_daemon(ordinal, signal.SIGSTOP)
    standby_name = f"{ctx.world.node(ordinal)}-standby"
    standby = await asyncio.to_thread(
        ctx.world.start_daemon, ordinal, identity=f"standby-{ctx.rng.randrange(10**6)}", name=standby_name
    )
    try:
        held = await asyncio.to_thread(ctx.world.wait_lease_holder, ctx.world.node(ordinal), standby.identity, 180)
    finally:
        resumed = time.time()
        ctx.world.signal_daemon(ordinal, signal.SIGCONT)
    await asyncio.sleep(20)
    old.proc.kill()
    await asyncio.to_thread(old.proc.wait, 10)
    ctx.fences.append(audit.Fence(ctx.world.node(ordinal), resumed, time.time()))
    ctx.world.daemons[ordinal] = standby
    return f"daemon {ordinal} frozen; its replacement held the lease after {held:.0f}s; the old one resumed for 20s"


async def _gone(ctx: Context, node: str, within: float, started: float | None = None) -> float:
    """Seconds (since ``started``, else now) until ``node``'s Node object and every instance of it are gone."""
    started = time.monotonic() if started is None else started
    while time.monotonic() - started < within:
        nodes = await asyncio.to_thread(ctx.world.nodes)
        instances = [i for i in await asyncio.to_thread(ctx.world.instances)
                     if i["tags"].get("vnode.io/node") == node]  # fmt: skip
        if node not in nodes and not instances:
            return time.monotonic() - started
        await asyncio.sleep(2)
    raise TimeoutError(f"node {node} or its instances still there after {within:.0f}s")


async def _scale_out(ctx: Context, replicas: int) -> None:
    await asyncio.to_thread(ctx.world.scale, replicas)
    for ordinal in range(replicas):
        if ordinal not in ctx.world.daemons:
            await asyncio.to_thread(ctx.world.start_daemon, ordinal)
    await asyncio.to_thread(ctx.world.wait_nodes_ready, [ctx.world.node(i) for i in range(replicas)], 180)


async def scale_in_dead(ctx: Context) -> str:
    """The highest replica dies, then the StatefulSet scales in: replica 0 drains its node for it."""
    ordinal = max(ctx.world.daemons)
    ctx.world.signal_daemon(ordinal, signal.SIGKILL)
    await asyncio.to_thread(ctx.world.reap_daemon, ordinal, 10)
    began = time.monotonic()
    await asyncio.to_thread(ctx.world.scale, ordinal)
    took = await _gone(ctx, ctx.world.node(ordinal), 600, began)
    ctx.takeovers.append(took)
    await _scale_out(ctx, ordinal + 1)
    return f"daemon {ordinal} kill -9'd, StatefulSet scaled to {ordinal}: its node drained by replica 0 in {took:.0f}s"


async def scale_in_to_one(ctx: Context) -> str:
    """3 -> 1 under load (one of the leaving replicas kill -9'd mid-drain), then back out."""
    replicas = len(ctx.world.daemons)
    began = time.monotonic()
    await asyncio.to_thread(ctx.world.scale, 1)
    leaving = [o for o in ctx.world.daemons if o >= 1]
    for ordinal in leaving:
        ctx.world.terminate(ordinal)  # SIGTERM, and SIGKILL after the grace period, as a kubelet does
    await asyncio.sleep(5)
    victim = max(leaving)
    ctx.world.signal_daemon(victim, signal.SIGKILL)
    times = []
    for ordinal in leaving:
        times.append(await _gone(ctx, ctx.world.node(ordinal), 600, began))
        await asyncio.to_thread(ctx.world.reap_daemon, ordinal, 30)
    ctx.takeovers.append(max(times))
    await _scale_out(ctx, replicas)
    spent = ", ".join(f"{t:.0f}s" for t in times)
    return f"scaled {replicas} -> 1 (daemon {victim} kill -9'd mid-drain), nodes gone after {spent}; back to {replicas}"


FAULTS: dict[str, Action] = {
    "cloud 5xx storm": storm,
    "cloud throttling": throttling,
    "cloud latency, deletes racing creates": latency,
    "cloud listings failing": listing_errors,
    "zone stock-out": stock_out,
    "vSwitch exhausted": vswitch_exhausted,
    "instances vanish": vanish,
    "cloud kill -9": cloud_kill,
    "kube-apiserver kill -9": apiserver_kill,
    "watches 410 Gone": watches_gone,
    "daemon kill -9": daemon_kill,
    "daemon kill -9 amid creates": daemon_kill_in_creates,
    "daemon frozen past its lease": freeze,
    "dead replica at scale-in": scale_in_dead,
    "scale-in 3 -> 1 and back": scale_in_to_one,
}
SHORT = ("cloud 5xx storm", "daemon kill -9 amid creates", "cloud kill -9", "kube-apiserver kill -9")


def schedule(rng: random.Random, short: bool) -> list[str]:
    """Every fault once (the short soak: a few), in an order drawn from the seed."""
    kinds = list(SHORT if short else FAULTS)
    rng.shuffle(kinds)
    if not short:
        kinds.append("daemon kill -9")  # three kills in all: plain, amid creates, and mid-drain
    return kinds
