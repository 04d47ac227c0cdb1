"""Benchmark of image caches: how long an instance takes to start, with and without a cache.

Run: ``python -m bench.imagecache [--per-image N]`` (writes its section of docs/benchmarks.md).
The simulator runs the ``realistic`` profile with its clock paused, so the figures are simulated
seconds (from the create call to the container's first Started event), exact and free of the machine's load:
they show what the profile models (a pull by image size, ECI's published 50 s for a 386 MB
image, and a few seconds from a cache), not the speed of this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from bench import report
from vnode.provider.eci import client as eci_client

IMAGES = ("nginx:1.27", "postgres:16", "python:3.12", "flink:1.17")


def _start_sim(state: pathlib.Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    command = [sys.executable, "-m", "vnode.cloudsim", "--state-dir", str(state), "--port", "0"]
    command += ["--profile", "realistic", "--seed", "1", "--clock-scale", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        path = state / "cloud.json"
        if path.exists():
            info: dict[str, Any] = json.loads(path.read_text())
            if info.get("pid") == proc.pid:
                return proc, info
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the simulator did not start")


def _advance(info: dict[str, Any], seconds: float) -> None:
    body = json.dumps({"advance": seconds}).encode()
    request = urllib.request.Request(info["admin_url"] + "clock", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30):
        pass


def _lift_create_limit(info: dict[str, Any]) -> None:
    """The simulated clock is paused, so the account's create rate (20/s, refilled by that clock) would
    refuse every create past its burst: what is measured is the start time, not the quota."""
    request = urllib.request.Request(info["admin_url"] + "rate-limits/create", method="DELETE")
    with urllib.request.urlopen(request, timeout=30):
        pass


def _seconds(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


async def _measure(info: dict[str, Any], per_image: int) -> dict[str, tuple[float, float]]:
    eci = info["eci"]
    client = eci_client.EciClient(eci["endpoint"], eci["access_key_id"], eci["access_key_secret"])
    region = info["region"]
    base = {"RegionId": region, "SecurityGroupId": info["security_group_id"], "VSwitchId": info["vswitches"][0]["id"]}
    try:
        _lift_create_limit(info)
        for image in IMAGES:
            await client.create_image_cache(region, image.split(":")[0], (image,))
        _advance(info, 600)
        ids: dict[tuple[str, bool], list[str]] = {}
        for image in IMAGES:
            for cached in (False, True):
                for n in range(per_image):
                    params = {
                        **base,
                        "ContainerGroupName": f"b{n}",
                        "Container.1.Name": "c",
                        "Container.1.Image": image,
                    }
                    params["AutoMatchImageCache"] = "true" if cached else "false"
                    body = await client.call("CreateContainerGroup", params)
                    ids.setdefault((image, cached), []).append(body["ContainerGroupId"])
        _advance(info, 600)
        result: dict[str, tuple[float, float]] = {}
        for image in IMAGES:
            starts: list[list[float]] = [[], []]
            for cached in (False, True):
                for group_id in ids[(image, cached)]:
                    params = {"RegionId": region, "ContainerGroupIds": json.dumps([group_id])}
                    (group,) = (await client.call("DescribeContainerGroups", params))["ContainerGroups"]
                    started = next(e["FirstTimestamp"] for e in group["Events"] if e["Reason"] == "Started")
                    starts[cached].append(_seconds(started) - _seconds(group["CreationTime"]))
            result[image] = (statistics.median(starts[0]), statistics.median(starts[1]))
        return result
    finally:
        await client.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imagecache")
    parser.add_argument("--per-image", type=int, default=20, help="instances per image and case (default 20)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, info = _start_sim(pathlib.Path(tmp))
        try:
            result = asyncio.run(_measure(info, args.per_image))
        finally:
            proc.terminate()
            proc.wait(10)
    rows = "\n".join(
        f"| `{image}` | {without:.1f} s | {cached:.1f} s | {without / cached:.1f}x |"
        for image, (without, cached) in result.items()
    )
    body = (
        f"## Image caches: start time with and without a cache (`bench/imagecache.py`)\n\n{report.machine()}\n\n"
        f"Median simulated seconds from CreateContainerGroup to the container's start, {args.per_image} instances "
        "per image and case, `realistic` profile (a pull at 8 MB/s of image; from a cache 3±1 s).\n\n"
        "| image | without a cache | with a cache | speed-up |\n|---|---|---|---|\n"
        f"{rows}\n"
    )
    report.write_section("imagecache", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
