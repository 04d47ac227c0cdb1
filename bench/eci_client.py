"""Which cloud clients should the providers use? The official SDKs (sync in threads, or async)
against vnode's lean aiohttp clients (``vnode.provider.eci_client.EciClient``, the ACI provider's own).

Run: ``python -m bench.eci_client`` (writes the ``eci-client`` and ``aci-client`` sections of
docs/benchmarks.md; ``--cloud eci`` or ``--cloud aci`` for one). For ACI the calls are the
container group PUT (not waited on) and a page of the resource group's listing (100 groups).
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
from azure.core.credentials import AccessToken
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as aci_models
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient as AsyncAciClient

from bench import report
from vnode import models
from vnode.provider.aci import config as aci_config
from vnode.provider.aci import mapping as aci_mapping
from vnode.provider.aci import provider as aci
from vnode.provider.eci import client as eci_client

ROOT = pathlib.Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def simulator(state_dir: pathlib.Path) -> Iterator[dict[str, Any]]:
    command = [sys.executable, "-m", "vnode.cloudsim", "--state-dir", str(state_dir), "--port", "0"]
    command += ["--profile", "fast", "--clock-scale", "1"]
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
    client = eci_client.EciClient(
        info["eci"]["endpoint"], info["eci"]["access_key_id"], info["eci"]["access_key_secret"]
    )
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


# -- ACI -------------------------------------------------------------------------------------


class StaticToken:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class AsyncStaticToken(StaticToken):
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # type: ignore[override]
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AsyncStaticToken:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def aci_group() -> Any:
    container = aci_models.Container(
        name="app",
        image="nginx",
        resources=aci_models.ResourceRequirements(requests=aci_models.ResourceRequests(cpu=1, memory_in_gb=2)),
    )
    return aci_models.ContainerGroup(
        location="westeurope", os_type="Linux", containers=[container], tags={"vnode.io-node": "bench"}
    )


def aci_lean_calls(info: dict[str, Any]) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    a = info["aci"]
    config = aci_config.AciSettings(
        region=a["location"],
        endpoint=a["endpoint"],
        ca_file=a["ca_file"],
        subscription_id=a["subscription_id"],
        resource_group=a["resource_group"],
        token=a["token"],
    )
    provider = aci.AciProvider(config, create_limit=None)
    spec = models.InstanceSpec(
        name="x",
        client_token="t",
        containers=(models.ContainerSpec(name="app", image="nginx"),),
        cpu=1,
        memory_gib=2,
        tags={models.TAG_NODE: "bench"},
    )
    body = aci_mapping.group_body(spec, location=a["location"])

    async def create(n: int) -> None:
        await provider._request("PUT", f"{provider.groups_url}/b{n + 1}", "create", body)

    async def page(n: int) -> None:
        _, listed = await provider._request("GET", provider.groups_url, "list")
        assert listed["value"]

    return create, page, provider.close


def aci_sdk_async_calls(info: dict[str, Any]) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    a = info["aci"]
    client = AsyncAciClient(
        AsyncStaticToken(a["token"]), a["subscription_id"], base_url=a["endpoint"], connection_verify=a["ca_file"]
    )
    rg = a["resource_group"]

    async def create(n: int) -> None:
        await client.container_groups.begin_create_or_update(rg, f"b{n + 1}", aci_group(), polling=False)

    async def page(n: int) -> None:
        pages = client.container_groups.list_by_resource_group(rg).by_page()
        first = [g async for g in await pages.__anext__()]
        assert first

    return create, page, client.close


def aci_sdk_thread_calls(
    info: dict[str, Any], pool: concurrent.futures.ThreadPoolExecutor
) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    a = info["aci"]
    client = ContainerInstanceManagementClient(
        StaticToken(a["token"]), a["subscription_id"], base_url=a["endpoint"], connection_verify=a["ca_file"]
    )
    rg = a["resource_group"]
    loop = asyncio.get_running_loop()

    def create_sync(n: int) -> None:
        client.container_groups.begin_create_or_update(rg, f"b{n + 1}", aci_group(), polling=False)

    def page_sync() -> None:
        assert list(next(client.container_groups.list_by_resource_group(rg).by_page()))

    async def create(n: int) -> None:
        await loop.run_in_executor(pool, create_sync, n)

    async def page(n: int) -> None:
        await loop.run_in_executor(pool, page_sync)

    async def close() -> None:
        client.close()

    return create, page, close


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


Variant = tuple[str, Callable[[], tuple[Call, Call, Callable[[], Awaitable[None]]]]]
ACTIONS = {
    "eci": ("CreateContainerGroup", "DescribeContainerGroupStatus (100 per page)"),
    "aci": ("PUT containerGroups/{name} (not polled)", "GET containerGroups (a page of 100)"),
}


def variants(cloud: str, info: dict[str, Any], pool: concurrent.futures.ThreadPoolExecutor, n: int) -> list[Variant]:
    if cloud == "eci":
        return [
            ("lean aiohttp client (vnode.provider.eci_client.EciClient)", lambda: lean_calls(info)),
            ("official SDK, `*_async` methods", lambda: sdk_async_calls(info)),
            (f"official SDK, sync in a pool of {n} threads", lambda: sdk_thread_calls(info, pool)),
        ]
    return [
        ("lean aiohttp client (vnode.provider.aci)", lambda: aci_lean_calls(info)),
        ("official SDK, `aio` client", lambda: aci_sdk_async_calls(info)),
        (f"official SDK, sync in a pool of {n} threads", lambda: aci_sdk_thread_calls(info, pool)),
    ]


async def run(cloud: str, info: dict[str, Any], calls: int, concurrency: int) -> list[tuple[str, str, float, float]]:
    rows = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency)
    create_action, list_action = ACTIONS[cloud]
    chosen = variants(cloud, info, pool, concurrency)
    try:
        # Two rounds; only the second is reported, so no variant pays for a cold simulator.
        for label, make in chosen + chosen:
            prepare(info)
            create, status, close = make()
            try:
                await create(-1)  # warm up connections and imports outside the measurement
                rate, cpu = await measure(create, calls, concurrency)
                rows.append((label, create_action, rate, cpu))
                await status(-1)
                rate, cpu = await measure(status, calls, concurrency)
                rows.append((label, list_action, rate, cpu))
            finally:
                await close()
            print(f"{cloud}: {label}: done", file=sys.stderr, flush=True)
    finally:
        pool.shutdown()
    return rows[len(rows) // 2 :]


CONCLUSION = {
    "eci": [
        "The provider uses the lean client: same wire protocol and signature as the SDK (the",
        "simulator verifies both), at a fraction of the CPU per call and without a thread per call in flight.",
    ],
    "aci": [
        "The ACI provider uses its lean client for the same reason; it never polls the PUT's",
        "long-running operation (the listing reports progress), so the SDK's pollers would be unused weight.",
    ],
}


def section(cloud: str, rows: list[tuple[str, str, float, float]], calls: int, concurrency: int) -> str:
    title = "ECI" if cloud == "eci" else "ACI"
    sdk = "alibabacloud-eci20180808" if cloud == "eci" else "azure-mgmt-containerinstance"
    lines = [
        f"## {title} client: official SDK ({sdk}) or a lean aiohttp client",
        "",
        report.machine(),
        "",
        f"`python -m bench.eci_client --cloud {cloud}`: {calls} calls per action and client, {concurrency} in flight,",
        "against the simulator's `fast` profile in its own process (create rate limit lifted). CPU is this",
        "client process's CPU time per call (signing or token, HTTP, TLS for ACI, decoding the answer),",
        "which is what a daemon listing thousands of instances every interval pays.",
        "",
        "| client | action | calls/s | client CPU ms/call |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [f"| {label} | {action} | {rate:.0f} | {cpu:.2f} |" for label, action, rate, cpu in rows]
    lean = {action: cpu for label, action, _, cpu in rows if label.startswith("lean")}
    ratios = [
        f"{label} / {action}: {cpu / lean[action]:.1f}x the lean client's CPU"
        for label, action, _, cpu in rows
        if not label.startswith("lean") and lean.get(action)
    ]
    lines += ["", *(f"- {r}" for r in ratios), "", *CONCLUSION[cloud]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloud", choices=("eci", "aci", "both"), default="both")
    parser.add_argument("--calls", type=int, default=300, help="calls per action and client on ECI")
    parser.add_argument("--aci-calls", type=int, default=100, help="on ACI (its SDK is slow: keeps the run short)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="print the sections instead of writing them")
    args = parser.parse_args()
    clouds = ("eci", "aci") if args.cloud == "both" else (args.cloud,)
    with tempfile.TemporaryDirectory(prefix="bench-eci-client-") as tmp, simulator(pathlib.Path(tmp)) as info:
        for cloud in clouds:
            calls = args.calls if cloud == "eci" else args.aci_calls
            rows = asyncio.run(run(cloud, info, calls, args.concurrency))
            text = section(cloud, rows, calls, args.concurrency)
            if not args.no_write:
                report.write_section(f"{cloud}-client", text)
            print(text)


if __name__ == "__main__":
    main()
