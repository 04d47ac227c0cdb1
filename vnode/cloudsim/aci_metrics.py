"""Azure Monitor's metrics of a container group: ``{group}/providers/Microsoft.Insights/metrics``.

``CpuUsage`` (millicores) and ``MemoryUsage`` (bytes), one data point per ``interval`` over
``timespan`` (default the last hour, at PT1M), averages over the time a container ran in each
interval; ``$filter=containerName eq '*'`` splits the series by container. The figures come
from the cloud's usage model (``usage.py``), computed on read like the logs.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from typing import Any

from aiohttp import web

from vnode.cloudsim import aci_arm, aci_dialect, model, usage

# Azure Monitor metrics of a container group: name -> (display name, unit, description)
METRICS = {
    "CpuUsage": ("CPU Usage", "Count", "CPU usage on all cores in millicores."),
    "MemoryUsage": ("Memory Usage", "Bytes", "Total memory usage in byte."),
}
METRIC_GRAINS = {"PT1M": 60, "PT5M": 300, "PT15M": 900, "PT30M": 1800, "PT1H": 3600, "PT6H": 21600, "PT12H": 43200}
MAX_METRIC_POINTS = 1440
_CONTAINER_FILTER = re.compile(r"^\s*containerName\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class _Query:
    names: list[str]
    interval: str
    step: int
    aggregations: list[str]
    split: str | None  # a container name, "*" for each container, None for the group as one


def _bad(message: str) -> aci_arm.ArmError:
    return aci_arm.ArmError(400, "BadRequest", message)


def _query(request: web.Request) -> _Query:
    """The query's metric names, interval, aggregations and split, checked as Azure Monitor does."""
    query = request.query
    names = [n.strip() for n in query.get("metricnames", "CpuUsage").split(",") if n.strip()]
    for metric in names:
        if metric not in METRICS:
            raise _bad(
                f"Failed to find metric configuration for provider: {aci_arm.PROVIDER}, resource Type: "
                f"containerGroups, metric: {metric}, Valid metrics: {','.join(METRICS)}"
            )
    interval = query.get("interval", "PT1M").upper()
    step = METRIC_GRAINS.get(interval)
    if step is None:
        raise _bad(f"Invalid interval {interval!r}: one of {', '.join(METRIC_GRAINS)}")
    aggregations = [a.strip().lower() for a in query.get("aggregation", "average").split(",") if a.strip()]
    for aggregation in aggregations:
        if aggregation not in ("average", "minimum", "maximum"):
            raise _bad(f"Aggregation {aggregation!r} is not supported: Average, Minimum, Maximum")
    split: str | None = None
    if query.get("$filter"):
        match = _CONTAINER_FILTER.match(query["$filter"])
        if match is None:
            raise _bad(f"Invalid $filter {query['$filter']!r}: only containerName eq '<name>|*'")
        split = match.group(1)
    return _Query(names, interval, step, aggregations, split)


def _plain_iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timespan(text: str | None, now: float) -> tuple[float, float]:
    """Azure Monitor's ``timespan``: ``<start>/<end>`` in ISO 8601 (default: the hour before now);
    the end is capped at now."""
    if not text:
        return now - 3600, now
    try:
        first, _, second = text.partition("/")
        start = datetime.datetime.fromisoformat(first.replace("Z", "+00:00")).timestamp()
        end = datetime.datetime.fromisoformat(second.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise _bad(f"Invalid timespan {text!r}: expected <start>/<end> in ISO 8601") from exc
    end = min(end, now)
    if start >= end:
        raise _bad(f"Invalid timespan {text!r}: the start is not before the end (or now)")
    return start, end


def _series(metric: str, group: list[usage.RunUsage], buckets: list[tuple[float, float]], q: _Query) -> dict[str, Any]:
    """One time series: a data point per bucket, the figure when a container of ``group`` ran in it."""
    data = []
    for a, b in buckets:
        point: dict[str, Any] = {"timeStamp": _plain_iso(a)}
        ran = [run for run in group if run.overlap(a, b) > 0]
        if ran:
            if metric == "CpuUsage":
                figure = sum(1000 * run.core_seconds(b, a) / run.overlap(a, b) for run in ran)
            else:
                figure = float(sum(run.memory_bytes for run in ran))
            for aggregation in q.aggregations:
                point[aggregation] = figure
        data.append(point)
    entry: dict[str, Any] = {"metadatavalues": [], "data": data}
    if q.split is not None:
        dimension = {"value": "containername", "localizedValue": "containername"}
        entry["metadatavalues"] = [{"name": dimension, "value": group[0].name}]
    return entry


def _value(inst: model.Instance, resource_id: str, q: _Query, start: float, end: float) -> list[dict[str, Any]]:
    first = math.floor(start / q.step) * q.step
    points = len(range(int(first), math.ceil(end), q.step))  # counted before the list is made: a timespan
    if points > MAX_METRIC_POINTS:  # from year 1 asked for a billion buckets and hung the server
        raise _bad(f"The query asks for {points} data points, at most {MAX_METRIC_POINTS}")
    buckets = [(float(a), min(a + q.step, end)) for a in range(int(first), math.ceil(end), q.step)]
    runs = usage.of_instance(inst)
    if q.split is not None and q.split != "*":
        runs = [run for run in runs if run.name == q.split]
    groups = [[run] for run in runs] if q.split is not None else [runs]
    value = []
    for metric in q.names:
        display, unit, description = METRICS[metric]
        value.append(
            {
                "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{metric}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": metric, "localizedValue": display},
                "displayDescription": description,
                "unit": unit,
                "timeseries": [_series(metric, group, buckets, q) for group in groups],
                "errorCode": "Success",
            }
        )
    return value


class Metrics:
    """The metrics route of one dialect."""

    def __init__(self, dialect: aci_dialect.Dialect) -> None:
        self.dialect = dialect

    async def handle(self, request: web.Request) -> web.Response:
        sub, rg, name = aci_arm.path(request)
        q = _query(request)
        await self.dialect.admit("metrics")
        inst = self.dialect.lookup(sub, rg, name)
        if inst is None:
            raise aci_arm.not_found(sub, rg, name)
        start, end = _timespan(request.query.get("timespan"), self.dialect.cloud.now())
        meta = aci_arm.meta_of(inst)
        value = _value(inst, meta.id or aci_arm.arm_id(sub, rg, name), q, start, end)
        return aci_arm.json_response(
            {
                "cost": 0,
                "timespan": f"{_plain_iso(start)}/{_plain_iso(end)}",
                "interval": q.interval,
                "value": value,
                "namespace": aci_arm.RESOURCE_TYPE,
                "resourceregion": meta.loc,
            }
        )
