"""``vnode cost``: what this cluster's cloud instances have cost so far, per namespace.

An estimate, counted as the daemon's ``vnode_cost_dollars`` gauge counts it: every instance the
provider lists under this cluster's id (the ``vnode.io/cluster`` tag) is priced at its billed
size by the provider profile's prices, per second from its start to its end (or to now while it
runs), and summed under its pod's namespace (the ``vnode.io/namespace`` tag); a spot instance at the
market price its provider tells (``InstanceState.hourly_price``), with what that saved beside it. What the cloud no
longer lists (deleted instances) is not counted, nor the time before a container started (image
pulls), nor public addresses: the cloud's own bill has those. A GPU type adds its GPUs' price.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence

from vnode import errors, models, settings
from vnode.provider import base, profile, registry

__all__ = ["Line", "configure", "per_namespace", "run"]

NO_NAMESPACE = "(none)"


@dataclasses.dataclass
class Line:
    """One namespace's instances: how many, how many run now and at what size, their cost so far."""

    namespace: str
    instances: int = 0
    running: int = 0
    cpu: float = 0.0  # vCPU of the running instances
    memory_gib: float = 0.0
    dollars: float = 0.0
    saved: float = 0.0  # below the list price (spot)


def per_namespace(states: Iterable[models.InstanceState], rules: profile.Profile, now: float) -> list[Line]:
    """The instances' cost by namespace, the most expensive first."""
    lines: dict[str, Line] = {}
    for state in states:
        namespace = state.tags.get(models.TAG_NAMESPACE) or NO_NAMESPACE
        line = lines.setdefault(namespace, Line(namespace))
        line.instances += 1
        if state.status is models.InstanceStatus.RUNNING:
            line.running += 1
            line.cpu += state.cpu
            line.memory_gib += state.memory_gib
        line.dollars += rules.spent(state, now)
        line.saved += rules.saved(state, now)
    return sorted(lines.values(), key=lambda line: (-line.dollars, line.namespace))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", help=f"the cloud (default $VNODE_PROVIDER or {registry.DEFAULT})")
    parser.add_argument("--cluster-id", help="only instances tagged with this cluster id (default $VNODE_CLUSTER_ID)")
    parser.add_argument("--namespace", action="append", help="only this namespace (repeatable)")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="a table (default) or JSON")


def run(args: argparse.Namespace) -> int:
    try:
        lines, cluster_id = asyncio.run(_collect(args))
    except errors.VnodeError as exc:
        print(f"vnode cost: {exc}", file=sys.stderr)
        return 1
    if args.namespace:
        lines = [line for line in lines if line.namespace in args.namespace]
    if args.output == "json":
        print(json.dumps({"cluster_id": cluster_id, "namespaces": [dataclasses.asdict(line) for line in lines]}))
    else:
        _table(lines, cluster_id)
    return 0


async def _collect(args: argparse.Namespace) -> tuple[list[Line], str]:
    environ = dict(os.environ)
    environ.setdefault("VNODE_NODE_NAME", "vnode-cost")  # cost serves no node; settings want a name
    cfg = settings.load(environ, {"provider": args.provider, "cluster_id": args.cluster_id})
    provider: base.Provider = registry.load(cfg.provider)(cfg)
    try:
        states = await provider.list({models.TAG_CLUSTER: cfg.cluster_id})
    finally:
        await provider.close()
    return per_namespace(states, cfg.profile, time.time()), cfg.cluster_id


def _table(lines: Sequence[Line], cluster_id: str) -> None:
    total = Line(
        "TOTAL",
        instances=sum(x.instances for x in lines),
        running=sum(x.running for x in lines),
        cpu=sum(x.cpu for x in lines),
        memory_gib=sum(x.memory_gib for x in lines),
        dollars=sum(x.dollars for x in lines),
        saved=sum(x.saved for x in lines),
    )
    rows = [["NAMESPACE", "INSTANCES", "RUNNING", "VCPU", "GIB", "USD", "SAVED"]]
    for x in (*lines, total):
        rows.append([x.namespace, str(x.instances), str(x.running), f"{x.cpu:g}", f"{x.memory_gib:g}",
                     f"{x.dollars:.4f}", f"{x.saved:.4f}"])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    print(
        f"cluster id {cluster_id!r}: estimated at the profile's prices from each start; deleted instances not counted"
    )
