"""A daemon killed under load: the time until it serves again, and what adopting its pods cost.

One daemon of a run whose pods are all Running is killed (SIGKILL, a crash or an OOM kill) and
started again as its StatefulSet would start it (same pod name and UID, so it takes its own Lease
back at once). Measured: the time until it serves again (``/readyz``: its pod cache synced, the
cloud listed, every instance adopted), and what the adoption cost: its requests to the API server
(writes per pod, LISTs by resource, from the audit log) and its calls to the cloud, until a minute
after it was killed. ``bench.scale`` does this in its 10,000-pod vnode run, before the pods are
deleted; ``python -m bench.shapes --sections restart`` on its own.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import os
import pathlib
import signal
import time
import urllib.request

from bench import report, scale_pods, scale_targets
from vnode import procinfo
from vnode.cluster import launcher, procs

AFTER_KILL_SECONDS = 60.0  # the window for counting what the adoption cost


@dataclasses.dataclass
class Restart:
    pods: int
    nodes: int
    pods_on_node: int = 0
    adopted_seconds: float = float("nan")
    calls: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    cloud_calls: dict[str, int] = dataclasses.field(default_factory=dict)
    #: The restarted daemon's requests to the API server: seconds after the kill, and the verb.
    timeline: list[tuple[float, str]] = dataclasses.field(default_factory=list)


def _cloud_calls(admin_url: str) -> dict[str, int]:
    with urllib.request.urlopen(admin_url + "totals", timeout=5) as resp:
        calls: dict[str, int] = json.loads(resp.read())["calls"]
    return calls


async def kill_and_adopt(
    info: launcher.Info,
    supervisor: procs.Supervisor,
    target: scale_targets.Vnode,
    run: scale_pods.Run,
    within: float = 600,
) -> Restart:
    """Kill the daemon of ``run``'s first node, start it again, and measure until it serves."""
    pods, nodes = len(run.running), run.nodes
    result = Restart(pods, nodes)
    victim = target.node_names(nodes)[0]
    result.pods_on_node = len([i for i in range(len(run.running)) if i % nodes == 0])  # round robin from 0
    audit = info.state_dir / "audit.log"
    _, offset = scale_pods.audit_counts(audit, 0)
    cloud_before = _cloud_calls(target.admin_url)
    pid = supervisor.live()[victim]
    os.kill(pid, signal.SIGKILL)
    killed, killed_wall = time.monotonic(), time.time()
    while procinfo.start_time(pid) is not None and time.monotonic() < killed + 10:
        supervisor.stop([])  # reaps the child
        await asyncio.sleep(0.02)
    cmd, env = target.commands[victim]
    supervisor.spawn(victim, cmd, env=env)
    scale_pods.say(f"restart: {victim} killed and started again; waiting for it to serve")
    while not await asyncio.to_thread(scale_targets.http_ok, f"http://127.0.0.1:{target.http_ports[victim]}/readyz"):
        if time.monotonic() > killed + within:
            raise RuntimeError(f"{victim} did not serve again within {within:.0f}s")
        await asyncio.sleep(0.1)
    result.adopted_seconds = time.monotonic() - killed
    await asyncio.sleep(max(0.0, killed + AFTER_KILL_SECONDS - time.monotonic()))
    counts, _ = scale_pods.audit_counts(audit, offset)
    result.calls = counts.get(f"kube-system:{victim}", collections.Counter())
    timeline = scale_pods.audit_timeline(audit, offset, f"kube-system:{victim}")
    result.timeline = [(at - killed_wall, verb) for at, verb in timeline]
    after = _cloud_calls(target.admin_url)
    result.cloud_calls = {k: n - cloud_before.get(k, 0) for k, n in after.items() if n - cloud_before.get(k, 0)}
    return result


READS = ("get", "list", "watch")


def plot_restart(r: Restart, path: pathlib.Path) -> None:
    """The restarted daemon's requests to the API server per second after the kill, reads and writes apart,
    and when it served again: a status or cloud storm would show as a wall of requests."""
    seconds = int(AFTER_KILL_SECONDS)
    reads, writes = [0] * seconds, [0] * seconds
    for at, verb in r.timeline:
        if 0 <= at < seconds:
            (reads if verb in READS else writes)[int(at)] += 1
    with report.figure(path, size=(8, 3.5)) as ax:
        ax.bar(range(seconds), reads, width=1.0, align="edge", label="reads (get, list, watch)")
        ax.bar(range(seconds), writes, width=1.0, align="edge", bottom=reads, label="writes")
        ax.axvline(r.adopted_seconds, color="black", ls="--", label=f"serving again ({r.adopted_seconds:.1f} s)")
        title = f"The restarted daemon's requests ({r.pods_on_node} pods on its node)"
        report.label(ax, "seconds since the daemon was killed", "requests per second", title)


def render_restart(r: Restart) -> str:
    writes = sum(n for what, n in r.calls.items() if what.split(" ", 1)[0] not in READS)
    lists = {what: n for what, n in r.calls.items() if what.startswith("list ") and not what.endswith("page)")}
    status = r.calls.get("patch pods/status", 0)
    listed = ", ".join(f"{w} {n}" for w, n in sorted(lists.items())) or "none"
    rows = [
        f"| serving again (`/readyz`) after the kill | **{r.adopted_seconds:.1f} s** | ≤ 20 s "
        f"| {'met' if r.adopted_seconds <= 20 else 'missed'} |",
        f"| pod status writes per pod of the node | {status / max(r.pods_on_node, 1):.4f} ({status}) | ≤ 0.01 "
        f"| {'met' if status <= 0.01 * r.pods_on_node else 'missed'} |",
        f"| LISTs per resource (each in pages of 500) | {listed} | one each "
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
            "",
            "![The restarted daemon's requests per second](bench-restart.png)",
        ]
    )
