"""The simulated cloud's totals: instances by status and tag, cost, stock, address pools, groups."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vnode.cloudsim.cloud import Cloud

__all__ = ["of"]


def of(cloud: Cloud) -> dict[str, object]:
    """Counts, cost and capacity of the whole cloud."""
    now = cloud.now()
    by_status: collections.Counter[str] = collections.Counter()
    by_tag: collections.Counter[str] = collections.Counter()
    live_cost = 0.0
    for inst in cloud.live.values():
        by_status[inst.status] += 1
        live_cost += cloud.cost_at(inst, now)
    for (key, value), ids in cloud.by_tag.items():
        by_tag[f"{key}={value}"] = len(ids)
    return {
        "now": now,
        "live": len(cloud.live),
        "deleted": cloud.deleted_count,
        "by_status": dict(by_status),
        "by_tag": dict(by_tag),
        "cost_usd": live_cost + cloud.deleted_cost,
        "used_cpu": cloud.used_cpu,
        "max_cpu": cloud.world.max_cpu,
        "zones": {
            zone: {
                "limits": dict(s.limits),
                "in_use": {k: v for k, v in s.in_use.items() if v},
                "spot_out": sorted(s.spot_out),
            }
            for zone, s in cloud.stock.items()
        },
        "vswitches": {
            v.id: {
                "zone": v.zone,
                "cidr": v.cidr,
                "used": v.pool.used,
                "capacity": v.pool.capacity,
                "exhausted": v.pool.exhausted,
            }
            for v in cloud.vswitches.values()
        },
        "security_groups": {g.id: {"kind": g.kind, "members": g.members, "cap": g.cap} for g in cloud.groups.values()},
    }
