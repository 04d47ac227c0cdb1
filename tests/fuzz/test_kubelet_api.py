"""Fuzz the kubelet API's paths and query strings, in-process and without a provider.

* ``/containerLogs`` queries: ``parse_log_query`` gives options or a 400 (``HTTPBadRequest``),
  never another exception (a 500).
* Paths: for any method and path, the route aiohttp's router picks in the kubelet's app and the
  subresources the authorization middleware checks (``auth.attributes_for``) agree: a path that
  reaches exec, attach, port-forward or logs is never checked as ``stats``, ``metrics``,
  ``pods`` or ``healthz`` only, whatever dot segments, doubled slashes or escapes it holds.
"""

from __future__ import annotations

import asyncio
import datetime
import urllib.parse
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import event, given
from hypothesis import strategies as st
from multidict import MultiDict

from tests.fuzz import strategies as hs
from vnode.kubelet import auth, server
from vnode.kubelet import clock as clock_mod

NOW = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=datetime.UTC)
KEYS = ("tailLines", "sinceSeconds", "sinceTime", "timestamps", "limitBytes", "previous", "follow", "stream", "x")
query_values = st.one_of(
    hs.tricky,
    hs.any_text,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(("1e10", "99999999999", "315569520000", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00")),
)


@given(query=st.dictionaries(st.sampled_from(KEYS), query_values, max_size=4))
def test_a_log_query_is_options_or_a_400(query: dict[str, str]) -> None:
    refusal = ""
    try:
        options = server.parse_log_query(MultiDict(query), NOW)
    except web.HTTPBadRequest as exc:
        refusal = exc.text or "(no reason)"
    if refusal:
        assert refusal != "(no reason)"
        event("400")
        return
    event("options")
    assert options.tail_lines is None or options.tail_lines >= 0


SEGMENTS = st.sampled_from(
    ("exec", "attach", "portForward", "containerLogs", "run", "stats", "summary", "metrics", "resource", "pods",
     "runningpods", "healthz", "logs", "..", ".", "", "%2e%2e", "%2F", "ns", "pod", "c", "uid", "configz", "debug")
)  # fmt: skip
PRIVILEGED = {"exec", "attach", "port_forward", "container_logs"}


def _app() -> web.Application:
    kubelet = server.KubeletServer(
        node_name="vn-0",
        provider=None,  # type: ignore[arg-type]  # routing only: no handler runs
        pods=None,  # type: ignore[arg-type]
        reviewer=None,  # type: ignore[arg-type]
        ssl_context=None,  # type: ignore[arg-type]
        clock=clock_mod.SystemClock(),
    )
    return kubelet.app()


APP = _app()


def route_of(method: str, raw_path: str) -> str:
    async def resolve() -> Any:
        request = make_mocked_request(method, raw_path, app=APP)
        return await APP.router.resolve(request), request.path

    match, _ = asyncio.run(resolve())
    handler = getattr(match, "handler", None)
    return getattr(handler, "__name__", "")


TEMPLATES = st.sampled_from(
    ("exec/ns/pod/c", "exec/ns/pod/uid/c", "attach/ns/pod/c", "portForward/ns/pod", "containerLogs/ns/pod/c",
     "stats/summary", "metrics/resource", "pods", "runningpods/", "healthz", "run/ns/pod/c", "configz", "debug/pprof")
)  # fmt: skip


@given(
    method=st.sampled_from(("GET", "POST", "PUT", "DELETE", "OPTIONS", "get")),
    before=st.lists(SEGMENTS, max_size=3),
    template=TEMPLATES,
    after=st.lists(SEGMENTS, max_size=2),
    query=st.one_of(st.just(""), st.text(max_size=20).map(lambda q: "?" + urllib.parse.quote(q, safe="=&"))),
)
def test_the_route_and_the_checked_subresource_agree(
    method: str, before: list[str], template: str, after: list[str], query: str
) -> None:
    raw_path = "/" + "/".join([*before, template, *after]) + query
    try:
        handler = route_of(method, raw_path)
    except ValueError:  # a path yarl refuses to parse: aiohttp answers 400 before any handler
        event("unparsable")
        return
    request_path = make_mocked_request(method, raw_path, app=APP).path
    _, subresources = auth.attributes_for(method, request_path)
    event(f"{handler or 'no route'} -> {'/'.join(subresources)}")
    if handler in PRIVILEGED:
        assert subresources == ("proxy",), (raw_path, request_path, handler, subresources)
