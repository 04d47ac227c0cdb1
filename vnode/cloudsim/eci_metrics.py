"""The ECI dialect's monitoring: DescribeMultiContainerGroupMetric and DescribeContainerGroupMetric.

A record holds cumulative CPU to its time, the CPU rate (averaged over the record's period,
or at that moment), the working set, per container and summed for the group, from the
cloud's usage model (``usage.py``), computed on read like the logs.
"""

from __future__ import annotations

from typing import Any

from vnode.cloudsim import cloud as cloudmod
from vnode.cloudsim import eci_params, errors, model, timefmt, usage

METRIC_PERIODS = (15, 30, 60, 600)  # DescribeContainerGroupMetric's Period values
MAX_METRIC_RECORDS = 50


def multi(cloud: cloudmod.Cloud, p: eci_params.Params) -> dict[str, Any]:
    """The latest record of each instance asked for (up to 20); unknown ids are left out."""
    ids = p.json_list("ContainerGroupIds", most=20)
    if not ids:
        raise errors.MissingParameter("ContainerGroupIds")
    metric_type = p.text("MetricType", default="summary")
    if metric_type != "summary":
        raise errors.InvalidParameter("MetricType", "only summary is supported")
    now = cloud.now()
    datas = [
        {"ContainerGroupId": inst.id, "Records": [_metric_record(inst, now, None)]}
        for inst in cloud.find(cloudmod.ListFilter(ids=ids))
    ]
    return {"MonitorDatas": datas}


def one(cloud: cloudmod.Cloud, p: eci_params.Params) -> dict[str, Any]:
    """Records of one instance every ``Period`` seconds from ``StartTime`` to ``EndTime``
    (default: the last 5 minutes at 15 s); each record's rate is the average over its period."""
    inst = cloud.get(p.text("ContainerGroupId", required=True))
    now = cloud.now()
    end = eci_params.rfc3339_param(p, "EndTime") or now
    start = eci_params.rfc3339_param(p, "StartTime")
    # Without a time range: the last 5 minutes at 15 s, Period ignored (as ECI documents).
    period = (p.integer("Period") or 60) if start is not None or p.text("EndTime") else 15
    if period not in METRIC_PERIODS:
        raise errors.InvalidParameter("Period", f"one of {', '.join(map(str, METRIC_PERIODS))}")
    end = min(end, now)
    start = end - 300 if start is None else start
    if start >= end:
        raise errors.InvalidParameter("StartTime", "must be before EndTime")
    count = int((end - start) // period)
    if count > MAX_METRIC_RECORDS:
        raise errors.InvalidParameter("Period", f"the range holds {count} records, at most {MAX_METRIC_RECORDS}")
    stamps = [end - k * period for k in range(count - 1, -1, -1)]
    records = [_metric_record(inst, at, float(period)) for at in stamps if at > inst.created_at]
    return {"ContainerGroupId": inst.id, "Records": records}


def _cpu_json(cores: float, core_seconds: float, limit: float) -> dict[str, int]:
    return {
        "Limit": round(limit * 1000),  # vCPUs x 1000
        "Load": round(cores),  # the load average: about the busy threads
        "UsageCoreNanoSeconds": int(core_seconds * 1e9),
        "UsageNanoCores": int(cores * 1e9),
    }


def _memory_json(working_set: int, limit: int) -> dict[str, int]:
    return {
        "AvailableBytes": max(0, limit - working_set),
        "Cache": 0,
        "Rss": working_set,
        "UsageBytes": working_set,
        "WorkingSet": working_set,
    }


def _metric_record(inst: model.Instance, at: float, period: float | None) -> dict[str, Any]:
    """One monitoring record at ``at``: cumulative CPU to then, the rate (over ``period``
    before it, or at that moment), the working set; per container and summed for the group."""
    containers = []
    rate_sum = cumulative_sum = 0.0
    memory_sum = 0
    for run in usage.of_instance(inst):
        cumulative = run.core_seconds(at)
        rate = run.core_seconds(at, at - period) / period if period else (run.cores if run.running(at) else 0.0)
        memory = run.memory_bytes if run.running(at) else 0
        containers.append(
            {
                "Name": run.name,
                "CPU": _cpu_json(rate, cumulative, run.cpu_limit),
                "Memory": _memory_json(memory, run.memory_limit),
            }
        )
        rate_sum, cumulative_sum, memory_sum = rate_sum + rate, cumulative_sum + cumulative, memory_sum + memory
    uptime = max(0.0, at - inst.started_at) if inst.started_at else 0.0
    return {
        "Timestamp": timefmt.rfc3339(at),
        "CPU": _cpu_json(rate_sum, cumulative_sum, inst.cpu),
        "Memory": _memory_json(memory_sum, int(inst.memory * usage.GIB)),
        "Containers": containers,
        "Network": {
            "Interfaces": [
                {
                    "Name": "eth0",
                    "RxBytes": int(uptime * 120),  # probes and a little traffic
                    "RxPackets": int(uptime * 2),
                    "RxErrors": 0,
                    "RxDrops": 0,
                    "TxBytes": int(uptime * 800),
                    "TxPackets": int(uptime * 2),
                    "TxErrors": 0,
                    "TxDrops": 0,
                }
            ]
        },
        "Disk": [],
        "Filesystem": [
            {
                "FsName": "/",
                "Category": "system",
                "Capacity": 30 * usage.GIB,
                "Usage": 200 * usage.MIB,
                "Available": 30 * usage.GIB - 200 * usage.MIB,
            }
        ],
    }
