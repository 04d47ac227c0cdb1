"""Which ECI client should the provider use? The official SDK (sync in threads, or its ``*_async``
methods) against vnode's lean aiohttp client (``vnode.provider.eci.EciClient``).

Run: ``python -m bench.eci_client`` (writes the ``eci-client`` section of docs/benchmarks.md).
The simulator runs as its own process (``fast`` profile, create rate limit lifted); this
process is only the client, so its CPU time divided by the calls made is the client's cost per
call. Every variant makes the same calls at the same concurrency: CreateContainerGroup, then
DescribeContainerGroupStatus pages of 100 instances (the provider's status feed is the hot path).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from alibabacloud_eci20180808 import models as sdk_models
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import models as openapi_models

from bench import report
from vnode.provider import eci

ROOT = pathlib.Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def simulator(state_dir: pathlib.Path) -> Iterator[dict[str, Any]]:
    command = [sys.executable, "-m", "vnode.cloudsim", "--state-dir", str(state_dir), "--port", "0"]
    command += ["--profile", "fast", "--no-aci", "--clock-scale", "1"]
    with (state_dir / "sim.log").open("ab") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    try:
        info_path = state_dir / "cloud.json"
        deadline = time.monotonic() + 60
        while not (info_path.exists() and json.loads(info_path.read_text())["pid"] == proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"simulator did not start; see {state_dir / 'sim.log'}")
            time.sleep(0.1)
        yield json.loads(info_path.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def admin(info: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        info["admin_url"] + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()


def prepare(info: dict[str, Any]) -> None:
    admin(info, "POST", "reset", {})
    for op in ("create", "status"):
        admin(info, "PUT", f"rate-limits/{op}", {"burst": 1e9, "rate": 1e9})


# -- the three clients, each as (create, status) coroutines factories ------------------------

Call = Callable[[int], Awaitable[None]]


def tag_value() -> str:
    return "bench"


def lean_calls(info: dict[str, Any]) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    client = eci.EciClient(info["eci"]["endpoint"], info["eci"]["access_key_id"], info["eci"]["access_key_secret"])
    vswitch = ",".join(v["id"] for v in info["vswitches"])

    async def create(n: int) -> None:
        params = {
            "RegionId": info["region"],
            "ContainerGroupName": f"b-{n}",
            "SecurityGroupId": info["security_group_id"],
            "VSwitchId": vswitch,
            "Container.1.Name": "app",
            "Container.1.Image": "nginx",
            "Tag.1.Key": "vnode.io/node",
            "Tag.1.Value": tag_value(),
            "ClientToken": f"lean-{n}",
        }
        await client.call("CreateContainerGroup", params)

    async def status(n: int) -> None:
        params = {"RegionId": info["region"], "Limit": "100", "Tag.1.Key": "vnode.io/node", "Tag.1.Value": tag_value()}
        body = await client.call("DescribeContainerGroupStatus", params)
        assert body["Data"]

    return create, status, client.close


def sdk_client(info: dict[str, Any]) -> Client:
    config = openapi_models.Config(
        access_key_id=info["eci"]["access_key_id"],
        access_key_secret=info["eci"]["access_key_secret"],
        endpoint=info["eci"]["endpoint"],
        protocol="http",
        region_id=info["region"],
    )
    return Client(config)


def sdk_requests(info: dict[str, Any], label: str) -> tuple[Callable[[int], Any], Callable[[], Any]]:
    vswitch = ",".join(v["id"] for v in info["vswitches"])

    def create_request(n: int) -> Any:
        return sdk_models.CreateContainerGroupRequest(
            region_id=info["region"],
            container_group_name=f"b-{n}",
            security_group_id=info["security_group_id"],
            v_switch_id=vswitch,
            container=[sdk_models.CreateContainerGroupRequestContainer(name="app", image="nginx")],
            tag=[sdk_models.CreateContainerGroupRequestTag(key="vnode.io/node", value=tag_value())],
            client_token=f"{label}-{n}",
        )

    def status_request() -> Any:
        return sdk_models.DescribeContainerGroupStatusRequest(
            region_id=info["region"],
            limit=100,
            tag=[sdk_models.DescribeContainerGroupStatusRequestTag(key="vnode.io/node", value=tag_value())],
        )

    return create_request, status_request


def sdk_async_calls(info: dict[str, Any]) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    client = sdk_client(info)
    create_request, status_request = sdk_requests(info, "sdkasync")

    async def create(n: int) -> None:
        await client.create_container_group_async(create_request(n))

    async def status(n: int) -> None:
        body = (await client.describe_container_group_status_async(status_request())).body
        assert body.data

    async def close() -> None:
        return None

    return create, status, close


def sdk_thread_calls(
    info: dict[str, Any], pool: concurrent.futures.ThreadPoolExecutor
) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    client = sdk_client(info)
    create_request, status_request = sdk_requests(info, "sdkthread")
    loop = asyncio.get_running_loop()

    async def create(n: int) -> None:
        await loop.run_in_executor(pool, client.create_container_group, create_request(n))

    async def status(n: int) -> None:
        body = (await loop.run_in_executor(pool, client.describe_container_group_status, status_request())).body
        assert body.data

    async def close() -> None:
        return None

    return create, status, close


async def measure(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, client CPU milliseconds per call)."""
    queue = iter(range(calls))

    async def worker() -> None:
        for n in queue:
            await call(n)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return calls / wall, 1000 * cpu / calls


async def run(info: dict[str, Any], calls: int, concurrency: int) -> list[tuple[str, str, float, float]]:
    rows = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency)
    variants: list[tuple[str, Callable[[], tuple[Call, Call, Callable[[], Awaitable[None]]]]]] = [
        ("lean aiohttp client (vnode.provider.eci.EciClient)", lambda: lean_calls(info)),
        ("official SDK, `*_async` methods", lambda: sdk_async_calls(info)),
        (f"official SDK, sync in a pool of {concurrency} threads", lambda: sdk_thread_calls(info, pool)),
    ]
    try:
        # Two rounds; only the second is reported, so no variant pays for a cold simulator.
        for label, make in variants + variants:
            prepare(info)
            create, status, close = make()
            try:
                await create(-1)  # warm up connections and imports outside the measurement
                rate, cpu = await measure(create, calls, concurrency)
                rows.append((label, "CreateContainerGroup", rate, cpu))
                await status(-1)
                rate, cpu = await measure(status, calls, concurrency)
                rows.append((label, "DescribeContainerGroupStatus (100 per page)", rate, cpu))
            finally:
                await close()
            print(f"{label}: done", file=sys.stderr, flush=True)
    finally:
        pool.shutdown()
    return rows[len(rows) // 2 :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-eci-client-") as tmp, simulator(pathlib.Path(tmp)) as info:
        rows = asyncio.run(run(info, args.calls, args.concurrency))
    lines = [
        "## ECI client: official SDK or a lean aiohttp client",
        "",
        report.machine(),
        "",
        f"`python -m bench.eci_client`: {args.calls} calls per action and client, {args.concurrency} in flight,",
        "against the simulator's `fast` profile in its own process (create rate limit lifted). CPU is this",
        "client process's CPU time per call (signing, HTTP, decoding the answer), which is what a",
        "daemon listing thousands of instances every interval pays.",
        "",
        "| client | action | calls/s | client CPU ms/call |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [f"| {label} | {action} | {rate:.0f} | {cpu:.2f} |" for label, action, rate, cpu in rows]
    lean = {action: cpu for label, action, _, cpu in rows if label.startswith("lean")}
    for label, action, _, cpu in rows:
        if not label.startswith("lean") and lean.get(action):
            print(f"{label} / {action}: {cpu / lean[action]:.1f}x the lean client's CPU", file=sys.stderr)
    lines += [
        "",
        "The provider uses the lean client: same wire protocol and signature as the SDK (the",
        "simulator verifies both), at a fraction of the CPU per call and without a thread per call in flight.",
    ]
    section = "\n".join(lines)
    if args.no_write:
        print(section)
    else:
        report.write_section("eci-client", section)
        print(section)


if __name__ == "__main__":
    main()
