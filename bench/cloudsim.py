"""Benchmark of the simulated cloud: mixed ECI calls per second, and memory with 30,000 live instances.

Run: ``python -m bench.cloudsim`` (writes its section of docs/benchmarks.md). The simulator runs
as its own process with the ``fast`` profile and rate limits lifted (as KWOK's CI lifts client
QPS limits); clients are asyncio workers that sign requests exactly as the official SDK does
(ACS3-HMAC-SHA256, parameters in the query) but without the SDK's own per-call overhead, so the
figure is the simulator's, not the client's. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgspec

from bench import report
from vnode.cloudsim import acs3

ROOT = pathlib.Path(__file__).resolve().parent.parent
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
PROFILE: list[str] = os.environ["BENCH_CPROFILE"].split() if os.environ.get("BENCH_CPROFILE") else []


@contextlib.contextmanager
def simulator(state_dir: pathlib.Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    command = [
        sys.executable,
        *PROFILE,
        "-m",
        "vnode.cloudsim",
        "--state-dir",
        str(state_dir),
        "--profile",
        "fast",
        "--port",
        "0",
    ]
    with (state_dir / "sim.log").open("ab") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        info_path = state_dir / "cloud.json"
        while not (info_path.exists() and json.loads(info_path.read_text())["pid"] == proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start; see {state_dir / 'sim.log'}")
            time.sleep(0.1)
        yield proc, json.loads(info_path.read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


class Caller:
    """Signed ECI calls over one aiohttp session, as the official SDK sends them."""

    def __init__(self, session: aiohttp.ClientSession, info: dict[str, Any]) -> None:
        self.session = session
        self.eci = info["eci"]
        self.info = info

    async def call(self, action: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        eci = self.eci
        headers = {
            "host": eci["endpoint"],
            "x-acs-action": action,
            "x-acs-version": "2018-08-08",
            "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": EMPTY_SHA256,
        }
        signed = tuple(sorted(headers))
        canonical = acs3.canonical_request(
            "POST", "/", params.items(), headers, signed, headers["x-acs-content-sha256"]
        )
        signature = acs3.sign(eci["access_key_secret"], canonical)
        headers["Authorization"] = (
            f"{acs3.ALGORITHM} Credential={eci['access_key_id']},SignedHeaders={';'.join(signed)},Signature={signature}"
        )
        url = f"http://{eci['endpoint']}/?{urllib.parse.urlencode(params)}"
        async with self.session.post(url, headers=headers) as resp:
            return resp.status, msgspec.json.decode(await resp.read())

    def create_params(self, name: str, node: str) -> dict[str, str]:
        return {
            "RegionId": self.info["region"],
            "ContainerGroupName": name,
            "SecurityGroupId": self.info["security_group_id"],
            "VSwitchId": ",".join(v["id"] for v in self.info["vswitches"]),
            "Container.1.Name": "app",
            "Container.1.Image": "nginx",
            "Cpu": "0.25",
            "Memory": "0.5",
            "Tag.1.Key": "node",
            "Tag.1.Value": node,
        }


async def admin(session: aiohttp.ClientSession, info: dict[str, Any], method: str, path: str) -> None:
    async with session.request(method, info["admin_url"] + path, json={}) as resp:
        resp.raise_for_status()


async def mixed(info: dict[str, Any], *, workers: int, seconds: float) -> dict[str, Any]:
    """Each worker loops create -> describe -> status -> delete; returns calls/s and latencies."""
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:
        caller = Caller(session, info)
        for op in ("create", "delete", "describe", "status"):
            await admin(session, info, "DELETE", f"rate-limits/{op}")
        latencies: dict[str, list[float]] = {"create": [], "describe": [], "status": [], "delete": []}
        failures = 0
        stop_at = time.monotonic() + seconds
        region = info["region"]

        async def timed(kind: str, action: str, params: dict[str, str]) -> dict[str, Any]:
            nonlocal failures
            started = time.perf_counter()
            status, body = await caller.call(action, params)
            latencies[kind].append(time.perf_counter() - started)
            if status != 200:
                failures += 1
            return body

        async def worker(n: int) -> None:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                body = await timed("create", "CreateContainerGroup", caller.create_params(f"m{n}-{i}", f"vk-{n % 4}"))
                group_id = body.get("ContainerGroupId", "")
                ids = json.dumps([group_id])
                await timed("describe", "DescribeContainerGroups", {"RegionId": region, "ContainerGroupIds": ids})
                await timed("status", "DescribeContainerGroupStatus", {"RegionId": region, "ContainerGroupIds": ids})
                await timed("delete", "DeleteContainerGroup", {"RegionId": region, "ContainerGroupId": group_id})

        started = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(workers)))
        elapsed = time.monotonic() - started
    calls = sum(len(v) for v in latencies.values())
    return {
        "workers": workers,
        "seconds": elapsed,
        "calls": calls,
        "calls_per_second": calls / elapsed,
        "failures": failures,
        "p50_ms": {k: 1000 * statistics.median(v) for k, v in latencies.items() if v},
        "p99_ms": {k: 1000 * statistics.quantiles(v, n=100)[98] for k, v in latencies.items() if len(v) > 100},
    }


async def fill(info: dict[str, Any], *, count: int, workers: int) -> dict[str, Any]:
    """Create ``count`` live instances spread over 10 node tags; then time one node's bulk status poll."""
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:
        caller = Caller(session, info)
        for op in ("create", "status"):
            await admin(session, info, "DELETE", f"rate-limits/{op}")
        next_index = iter(range(count))
        failures = 0

        async def worker() -> None:
            nonlocal failures
            for i in next_index:
                status, _ = await caller.call("CreateContainerGroup", caller.create_params(f"f{i}", f"vk-{i % 10}"))
                failures += status != 200

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        created = time.monotonic() - started

        # One virtual node's poll: DescribeContainerGroupStatus with its Tag, paged by 200.
        poll_started = time.monotonic()
        seen, token, pages = 0, "", 0
        while True:
            params = {"RegionId": info["region"], "Tag.1.Key": "node", "Tag.1.Value": "vk-3", "Limit": "200"}
            if token:
                params["NextToken"] = token
            _, body = await caller.call("DescribeContainerGroupStatus", params)
            seen += len(body["Data"])
            pages += 1
            token = body.get("NextToken", "")
            if not token:
                break
        poll = time.monotonic() - poll_started
    return {"count": count, "failures": failures, "create_seconds": created, "node_poll": (seen, pages, poll)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--instances", type=int, default=30_000)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-cloudsim-") as tmp:
        with _dir_sim(pathlib.Path(tmp) / "mixed") as (proc, info):
            idle_rss = rss_mib(proc.pid)
            cpu_before = cpu_seconds(proc.pid)
            mix = asyncio.run(mixed(info, workers=args.workers, seconds=args.seconds))
            server_cpu = cpu_seconds(proc.pid) - cpu_before
        with _dir_sim(pathlib.Path(tmp) / "fill") as (proc, info):
            filled = asyncio.run(fill(info, count=args.instances, workers=args.workers))
            full_rss = rss_mib(proc.pid)
            db_mib = (pathlib.Path(tmp) / "fill" / "cloud.db").stat().st_size / 2**20

    seen, pages, poll = filled["node_poll"]
    p50 = ", ".join(f"{k} {v:.1f}" for k, v in mix["p50_ms"].items())
    p99 = ", ".join(f"{k} {v:.1f}" for k, v in mix["p99_ms"].items())
    rate = filled["count"] / filled["create_seconds"]
    rows = [
        (
            f"Mixed create / describe / status / delete, {mix['workers']} concurrent clients, {mix['seconds']:.0f} s",
            f"**{mix['calls_per_second']:,.0f} calls/s** ({mix['calls']:,} calls, {mix['failures']} failed)",
            "≥ 1,000 calls/s",
        ),
        (
            "Simulator CPU per call; calls/s one core sustains at that cost",
            f"{1e6 * server_cpu / mix['calls']:.0f} µs; **{mix['calls'] / server_cpu:,.0f} calls/s**",
            "",
        ),
        ("Latency p50 (ms)", p50, ""),
        ("Latency p99 (ms)", p99, ""),
        (
            f"RSS with {filled['count']:,} live instances",
            f"**{full_rss:,.0f} MiB** (idle {idle_rss:.0f} MiB; SQLite file {db_mib:.0f} MiB)",
            "< 500 MB",
        ),
        (
            f"Creating them ({args.workers} clients)",
            f"{filled['create_seconds']:.1f} s ({rate:,.0f}/s, {filled['failures']} failed)",
            "",
        ),
        (
            "One node's bulk status poll (Tag filter, Limit 200)",
            f"{seen:,} instances in {pages} pages, {poll * 1000:.0f} ms",
            "",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    body = f"""## Simulated cloud (`bench/cloudsim.py`)

{report.machine()} Load average when it started: {load:.1f} on {os.cpu_count()} cores.

One simulator process (`vnode cloudsim --profile fast`, rate limits lifted through the admin API),
clients on the same machine signing requests as the official SDK does (ACS3-HMAC-SHA256).
Every mutating call is durable (SQLite WAL, group commit) before it is answered. Client and
simulator share the cores (and, when this was measured, other work on the machine), so the
achieved rate understates the simulator; its own CPU time per call gives the rate one core
sustains.

| Figure | Value | Target |
|---|---|---|
{table}
"""
    print(body)
    if not args.no_write:
        report.write_section("cloudsim", body)
    return 0


@contextlib.contextmanager
def _dir_sim(path: pathlib.Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    path.mkdir(parents=True)
    with simulator(path) as running:
        yield running


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
