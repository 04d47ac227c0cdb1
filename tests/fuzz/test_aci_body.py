"""Fuzz the simulator's ARM bodies for ACI container groups: a 4xx in ARM's shape, never a 500 or a hang.

A valid PUT body with one value somewhere in it replaced by hostile JSON (wrong types, huge or
unicode strings, absurd numbers, deep nesting), random JSON, random bytes; also the group's name
in the path and PATCH bodies. ``aci_harness`` serves the dialect's app in-process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz import strategies as hs
from tests.fuzz.aci_harness import GROUPS, Harness, check_answer, valid_body


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    made = Harness(tmp_path_factory.mktemp("fuzz-aci"))
    yield made
    made.close()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from((0, -1, 65536, 2**31, 2**63 - 1, 1e308, -1e308, 0.0001, 1e-320)),
    st.floats(allow_nan=False, allow_infinity=False),
    hs.tricky,
    hs.any_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(hs.any_text, hs.tricky), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (keys and list indexes)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += paths(item, (*prefix, n))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(value[head], rest, new)
    return copy


def at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


BASE = valid_body()
BASE_PATHS = paths(BASE)
# A hostile value of the type the field has, so the body gets past decoding to ARM's rules.
SAME_TYPE: dict[type, st.SearchStrategy[Any]] = {
    str: st.one_of(hs.tricky, hs.any_text, hs.huge),
    int: st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from((0, -1, 65535, 65536))),
    float: st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from((0.0, -1.0, 1e308, 1e-320))),
    list: st.lists(json_values, max_size=3),
    dict: st.dictionaries(hs.any_text, json_values, max_size=3),
}


@given(data=st.data(), count=st.integers(1, 3))
def test_put_with_hostile_values_answers_in_arms_shape(harness: Harness, data: st.DataObject, count: int) -> None:
    harness.fresh()
    body: Any = valid_body()
    for _ in range(count):
        path = data.draw(st.sampled_from(BASE_PATHS))
        try:
            old = at(body, path)
        except (KeyError, IndexError, TypeError):  # an earlier change removed the path
            continue
        same = SAME_TYPE.get(type(old))
        new = data.draw(json_values if same is None or data.draw(st.integers(0, 3)) == 0 else same)
        body = replaced(body, path, new)
    check_answer(*harness.put("fuzz", json.dumps(body).encode()))


@given(
    containers=st.integers(1, 60),
    env=st.integers(0, 300),
    text=st.one_of(hs.tricky, hs.huge),
    number=st.sampled_from((0, -1, 1e308, 2**63 - 1, 65536, 0.0001)),
)
def test_put_with_absurd_sizes_answers_in_arms_shape(
    harness: Harness, containers: int, env: int, text: str, number: float
) -> None:
    harness.fresh()
    body = valid_body()
    one = body["properties"]["containers"][0]
    one["properties"]["environmentVariables"] = [{"name": f"{text[:40]}{n}", "value": text[:100]} for n in range(env)]
    one["properties"]["command"] = [text]
    one["properties"]["ports"] = [{"port": number}]
    body["properties"]["containers"] = [{**one, "name": f"c{n}"} for n in range(containers)]
    body["properties"]["ipAddress"] = {"type": "Private", "ports": []}
    body["tags"] = {text[:600]: text[:600]}
    check_answer(*harness.put("fuzz", json.dumps(body).encode()))


@given(raw=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_put_with_random_bytes_answers_in_arms_shape(harness: Harness, raw: bytes) -> None:
    harness.fresh()
    check_answer(*harness.put("fuzz", raw))


@given(
    name=st.one_of(hs.tricky, hs.any_text, st.just("a" * 300)),
    method=st.sampled_from(("GET", "PUT", "PATCH", "DELETE", "POST")),
    body=st.one_of(json_values, st.just({"tags": {"a": "b"}})),
)
def test_any_group_name_and_method_answers_in_arms_shape(harness: Harness, name: str, method: str, body: Any) -> None:
    harness.fresh()
    path = f"{GROUPS}/{_quote(name)}"
    if method == "POST":
        path += "/restart"
    check_answer(*harness.request(method, f"{path}?api-version=2023-05-01", json.dumps(body).encode()))


def _quote(name: str) -> str:
    import urllib.parse

    return urllib.parse.quote(name, safe="")


QUERY_KEYS = ("timespan", "interval", "metricnames", "aggregation", "$filter", "tail", "timestamps", "$skipToken")
query_values = st.one_of(
    hs.tricky,
    hs.any_text,
    st.sampled_from(
        (
            "0001-01-01T00:00:00Z/2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z/9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00+00:00/9999-12-31T00:00:00+00:00",
            "PT1M",
            "PT0M",
            "P1000Y",
            "CpuUsage,MemoryUsage",
            "containerName eq '*'",
            "containerName eq 'app'",
        )
    ),
)


@given(
    query=st.dictionaries(st.sampled_from(QUERY_KEYS), query_values, max_size=4),
    suffix=st.sampled_from(("/providers/microsoft.insights/metrics", "/containers/app/logs", "", "/containers/x/logs")),
)
def test_group_reads_with_hostile_queries_answer_in_arms_shape(
    harness: Harness, query: dict[str, str], suffix: str
) -> None:
    harness.fresh()
    status, created = harness.put("reader", json.dumps(valid_body()).encode())
    assert status == 201, created
    encoded = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query.items())
    path = f"{GROUPS}/reader{suffix}?api-version=2023-05-01&{encoded}"
    status, answer = harness.request("GET", path)
    if (
        len(path) > 8190
    ):  # aiohttp's HTTP parser refuses the request line before the app sees it (as a front door would)
        assert status == 400, answer
        event("request line over the parser's limit")
        return
    check_answer(status, answer)
