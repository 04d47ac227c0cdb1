"""The kubelet's ``/containerLogs`` query (``tailLines``, ``sinceSeconds``, ``sinceTime``, ``limitBytes``,
``timestamps``, ``previous``, ``follow``, ``stream``), parsed and validated as the API server would:
a bad value is a 400 naming it."""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web

from vnode.provider import base

__all__ = ["LogQuery", "parse_log_query"]


LogQuery = base.LogRequest  # ``base.LogOptions`` parsed from a ``/containerLogs`` query


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def _int(query: Any, name: str, *, minimum: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}={raw!r} is not an integer\n") from None
    if value < minimum:
        raise web.HTTPBadRequest(text=f"{name} must be at least {minimum}\n")
    return value


def parse_log_query(query: Any, now: datetime.datetime) -> LogQuery:
    """The options of the kubelet's log query, validated as the API server would."""
    since_seconds = _int(query, "sinceSeconds", minimum=1)
    since_time = query.get("sinceTime")
    if since_seconds is not None and since_time:
        raise web.HTTPBadRequest(text="at most one of sinceTime or sinceSeconds may be given\n")
    since = None
    if since_seconds is not None:  # longer ago than the epoch is all of the log (and no OverflowError: a 500)
        since = now - datetime.timedelta(seconds=min(since_seconds, int(now.timestamp())))
    elif since_time:
        try:
            since = datetime.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        except ValueError:
            raise web.HTTPBadRequest(text=f"sinceTime={since_time!r} is not RFC 3339\n") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=datetime.UTC)
    stream = query.get("stream", "All")
    if stream not in ("", "All"):
        raise web.HTTPBadRequest(text=f"stream={stream}: vnode serves the combined log only (stream=All)\n")
    return LogQuery(
        tail_lines=_int(query, "tailLines", minimum=0),
        since=since,
        timestamps=_bool(query.get("timestamps")),
        limit_bytes=_int(query, "limitBytes", minimum=1),
        previous=_bool(query.get("previous")),
        follow=_bool(query.get("follow")),
    )
