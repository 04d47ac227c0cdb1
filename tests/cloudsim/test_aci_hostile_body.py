"""Hostile ARM bodies the fuzzer (tests/fuzz/test_aci_body.py) found answered with a 500 or a broken answer,
and bodies over the size limit, which either dialect answered as aiohttp's plain text, not in the cloud's shape.

In-process: the ACI dialect's app behind aiohttp's test client (``tests/fuzz/aci_harness.py``),
the simulator's main app (the ECI endpoint) behind another.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.fuzz.aci_harness import GROUPS, Harness, valid_body
from vnode.cloudsim import server


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    made = Harness(tmp_path_factory.mktemp("aci-hostile"))
    yield made
    made.close()


def body_with(**changes: Any) -> bytes:
    body = valid_body()
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("zones", "code"),
    [
        (["²"], "InvalidAvailabilityZones"),  # str.isdigit() yes, int() no: was a 500
        (["9" * 5000], "InvalidAvailabilityZones"),  # over int()'s 4300 digits: was a 500
        (["01"], None),  # a zero-padded zone number is still zone 1
    ],
)
def test_zones_that_are_no_number(harness: Harness, zones: list[str], code: str | None) -> None:
    harness.fresh()
    status, answer = harness.put("zoned", body_with(zones=zones))
    if code is None:
        assert status == 201, answer
    else:
        assert (status, answer["error"]["code"]) == (400, code), answer
        assert len(answer["error"]["message"]) < 500


def test_a_huge_location_is_refused_not_echoed_into_headers(harness: Harness) -> None:
    """A 100 kB location went into the Azure-AsyncOperation header, which no client could read."""
    harness.fresh()
    status, answer = harness.put("far", body_with(location="x" * 100_000))
    assert (status, answer["error"]["code"]) == (400, "LocationNotAvailableForResourceType"), answer
    assert len(answer["error"]["message"]) < 500
    assert not harness.cloud.live


@pytest.mark.parametrize("location", ["westeurope", "West Europe", "eastus2"])
def test_region_names_are_locations(harness: Harness, location: str) -> None:
    harness.fresh()
    status, answer = harness.put("here", body_with(location=location))
    assert status == 201, answer


def test_a_body_over_the_limit_is_a_413_in_arms_shape(harness: Harness) -> None:
    harness.fresh()
    status, answer = harness.put("big", body_with(tags={"a": "x" * 2_000_000}))
    assert status == 413
    assert answer["error"]["code"] == "RequestEntityTooLarge"
    assert answer["error"]["message"]


def test_an_eci_body_over_the_limit_is_a_413_in_ecis_shape(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.fuzz.eci_harness import Harness as EciHarness

    eci = EciHarness(tmp_path_factory.mktemp("eci-big"))
    loop = eci.loop

    async def post() -> tuple[int, Any]:
        client = TestClient(TestServer(server.Server(eci.cloud).app))
        await client.start_server()
        try:
            headers = {"x-acs-action": "CreateContainerGroup", "x-acs-version": "2018-08-08"}
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            async with client.post("/", data=io.BytesIO(b"a" * 5_000_000), headers=headers) as resp:
                return resp.status, await resp.json()
        finally:
            await client.close()

    try:
        status, answer = loop.run_until_complete(asyncio.wait_for(post(), timeout=30))
    finally:
        eci.close()
    assert status == 413
    assert answer["Code"] == "RequestEntityTooLarge"
    assert answer["Message"]
    assert answer["RequestId"]


@pytest.mark.timeout(60)
def test_metrics_over_a_timespan_from_year_one_are_refused_at_once(harness: Harness) -> None:
    """Found by tests/fuzz/test_aci_body.py: the buckets were listed before they were counted, a
    billion of them for this timespan: the simulator hung (and grew) instead of answering 400."""
    harness.fresh()
    status, created = harness.put("reader", body_with())
    assert status == 201, created
    timespan = "0001-01-01T00:00:00Z/2026-01-01T00:00:00Z"
    path = f"{GROUPS}/reader/providers/microsoft.insights/metrics?api-version=2023-05-01&timespan={timespan}"
    status, answer = harness.request("GET", path)
    assert status == 400, answer
    assert "data points" in answer["error"]["message"]
