"""``vnode cloudsim``: run the simulated cloud on loopback and write ``<state>/cloud.json``.

One process serves the ECI dialect and the admin API (``/admin/``) and the web console (``/``)
on one port, and the ACI dialect over HTTPS with its own CA on another (``--aci-port``).
cloud.json tells clients where and how to connect: the ECI endpoint, region and AccessKey,
the ACI endpoint, CA file and token, the vSwitches (with zones and CIDRs) and security groups
made at first start, and the admin and console URLs. It is written once the server listens,
so its appearance means "ready".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import pathlib
import signal
import sys

from vnode.cloudsim import aci, console, lifecycle, server, store
from vnode.cloudsim import clock as simclock
from vnode.cloudsim import cloud as cloudmod
from vnode.cloudsim import world as simworld


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="ECI and admin port; 0 picks a free one (default)")
    parser.add_argument(
        "--state-dir", type=pathlib.Path, default=pathlib.Path(".vnode/cloudsim"), help="default: .vnode/cloudsim"
    )
    parser.add_argument("--profile", default="realistic", help="fast | realistic | chaos | a profile JSON file")
    parser.add_argument(
        "--any-image",
        action="store_true",
        help="pull every image name (conformance runs such as virtual-kubelet's e2e suite); default off",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--clock-scale", type=float, default=None, help="simulated seconds per second (0 pauses)")
    parser.add_argument("--region", default="cn-hangzhou", help="region id of a new world (default: cn-hangzhou)")
    parser.add_argument("--aci-port", type=int, default=0, help="ACI (HTTPS) port; 0 picks a free one (default)")
    parser.add_argument("--no-aci", action="store_true", help="serve the ECI dialect only")
    parser.add_argument(
        "--cloud-json",
        type=pathlib.Path,
        default=None,
        help="where to write cloud.json (default: <state-dir>/cloud.json)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        profile = lifecycle.load_profile(args.profile)
        if args.any_image:
            profile = profile.model_copy(update={"any_image": True})
    except ValueError as exc:
        print(f"vnode cloudsim: {exc}", file=sys.stderr)
        return 2
    state_dir: pathlib.Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    db = store.Store(state_dir / "cloud.db")
    clock = simclock.Clock()
    saved = db.meta("clock")
    if saved:
        state = json.loads(saved)
        clock = simclock.Clock(scale=state["scale"], anchor_sim=state["anchor_sim"], anchor_wall=state["anchor_wall"])
    if args.clock_scale is not None:
        clock.set_scale(args.clock_scale)
    world = simworld.World.default(args.seed, region=args.region)
    sim = cloudmod.Cloud(store=db, clock=clock, profile=profile, seed=args.seed, world=world)
    sim.save_clock()
    srv = server.Server(sim, host=args.host, port=args.port)
    srv.add_routes(console.routes(sim))
    mounted = None if args.no_aci else aci.mount(srv, state_dir, port=args.aci_port)
    # Collect cyclic garbage less often than every 700 allocations: the simulator keeps every live
    # instance (tens of thousands) and frees almost all of a call's objects by reference counting,
    # so at the default thresholds the collector's full passes over the instances were a large
    # share of its CPU under load. What was loaded at startup is frozen out of collections.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        asyncio.run(_serve(srv, state_dir, args, mounted))
    finally:
        db.close()
    return 0


async def _serve(
    srv: server.Server, state_dir: pathlib.Path, args: argparse.Namespace, mounted: aci.Mounted | None
) -> None:
    task = asyncio.create_task(srv.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = asyncio.create_task(srv.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises why it could not start
        return
    info = connection_info(srv, args)
    if mounted is not None:
        info["aci"] = mounted.connection_info()
    write_cloud_json(args.cloud_json or state_dir / "cloud.json", info)
    base = f"http://{srv.host}:{srv.port}"
    aci_at = f", ACI at {info['aci']['endpoint']}" if mounted is not None else ""  # type: ignore[index]
    print(f"cloudsim: ECI at {base}/, console at {base}/, admin at {base}/admin/{aci_at}", flush=True)
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def connection_info(srv: server.Server, args: argparse.Namespace) -> dict[str, object]:
    world = srv.cloud.world
    key_id, secret = world.access_keys[0]
    base = f"http://{srv.host}:{srv.port}"
    groups = [{"id": g.id, "kind": g.kind, "cap": g.cap} for g in srv.cloud.groups.values()]
    return {
        "pid": os.getpid(),
        "profile": srv.cloud.lifecycle.profile.name,
        "seed": srv.cloud.seed,
        "region": world.region,
        "zones": list(world.zones),
        "vpc_id": world.vpc_id,
        "vswitches": [{"id": v[0], "zone": v[1], "cidr": v[2]} for v in world.vswitches],
        "security_group_id": groups[0]["id"],
        "security_groups": groups,
        "access_key_id": key_id,
        "access_key_secret": secret,
        "eci": {
            "endpoint": f"{srv.host}:{srv.port}",
            "protocol": "http",
            "version": "2018-08-08",
            "region": world.region,
            "access_key_id": key_id,
            "access_key_secret": secret,
        },
        "aci": None,
        "admin_url": f"{base}/admin/",
        "console_url": f"{base}/",
    }


def write_cloud_json(path: pathlib.Path, info: dict[str, object]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)
