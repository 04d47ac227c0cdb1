"""ACI's Spot priority through the official SDK: accepted and echoed, ACI's refusals for a Spot group,
its price (the simulator's discount) and its eviction (restarted in place, through the admin API)."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import models as aci_models

from tests.cloudsim.aci_fixtures import RESOURCE_GROUP, STEPPED, SimThread, group
from tests.cloudsim.test_aci import aci_sim, tls_dir
from vnode.cloudsim import admin, catalog, cloud, spot
from vnode.cloudsim.clock import Clock

__all__ = ["aci_sim", "tls_dir"]  # the fixtures, imported to be used here


def _refused(sim: SimThread, name: str, body: aci_models.ContainerGroup) -> str:
    with sim.client() as client, pytest.raises(HttpResponseError) as info:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, name, body, polling=False)
    assert info.value.status_code == 400
    return str(info.value.error.code)


def test_a_spot_group_is_accepted_and_shows_its_priority(aci_sim: SimThread) -> None:
    body = group()
    body.priority = "Spot"
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "spot", body, polling=False)
        got = client.container_groups.get(RESOURCE_GROUP, "spot")
    assert got.priority == "Spot"


def test_a_spot_group_may_have_no_public_ip_no_virtual_network_no_zone_and_only_the_standard_sku(
    aci_sim: SimThread,
) -> None:
    public = group()
    public.priority = "Spot"
    public.ip_address = aci_models.IpAddress(type="Public", ports=[aci_models.Port(port=80)])
    assert _refused(aci_sim, "public", public) == "SpotPriorityContainerGroupNotSupportedForInboundConnectivity"
    confidential = group()
    confidential.priority, confidential.sku = "Spot", "Confidential"
    assert _refused(aci_sim, "confidential", confidential) == "SpotPriorityContainerGroupNotSupportedInSku"
    vnet = group()
    vnet.priority = "Spot"
    vsw = aci_sim.call(lambda c: next(iter(c.vswitches)))
    vnet.subnet_ids = [aci_models.ContainerGroupSubnetId(id=f"/subscriptions/s/x/subnets/{vsw}")]
    assert _refused(aci_sim, "vnet", vnet) == "SpotPriorityContainerGroupNotSupportedWithVirtualNetwork"
    zoned = group()
    zoned.priority, zoned.zones = "Spot", ["1"]
    assert _refused(aci_sim, "zoned", zoned) == "SpotPriorityContainerGroupNotSupportedWithZones"
    odd = group()
    odd.priority = "Cheap"
    assert _refused(aci_sim, "odd", odd) == "PriorityNotSpecified"
    assert aci_sim.call(lambda c: len(c.live)) == 0


# -- price and eviction ------------------------------------------------------------------------


def _admin_app(world: cloud.Cloud) -> web.Application:
    async def commit() -> None:
        world.store.flush()

    app = web.Application()
    app.add_routes(admin.Admin(world, commit=commit).routes())
    return app


@pytest.fixture
def admin_sim(tmp_path: pathlib.Path, tls_dir: pathlib.Path) -> Iterator[SimThread]:
    """The ACI dialect with the admin API beside it (``extra_port``), on a manual clock."""
    server = SimThread(tmp_path, tls_dir, clock=Clock.manual(), profile=STEPPED, extra=_admin_app)
    try:
        yield server.start()
    finally:
        server.stop()


def _put(sim: SimThread, name: str, priority: str | None) -> str:
    """Create a group (``priority`` None: none sent) and return its instance id, for the admin API."""
    body = group()
    body.priority = priority
    with sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, name, body, polling=False)
    return sim.call(lambda c: next(c.find(cloud.ListFilter(name=name))).id)


def _reclaim(sim: SimThread, instance_id: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{sim.extra_port}/admin/instances/{instance_id}/reclaim"
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def _get(sim: SimThread, name: str) -> aci_models.ContainerGroup:
    with sim.client() as client:
        return client.container_groups.get(RESOURCE_GROUP, name)


def test_a_spot_group_is_billed_at_the_discount_and_a_regular_one_at_the_regular_price(
    admin_sim: SimThread,
) -> None:
    spot_id, regular_id = _put(admin_sim, "cheap", "Spot"), _put(admin_sim, "dear", "Regular")
    admin_sim.call(lambda c: c.advance(3600))
    spot_cost, regular_cost, saved = admin_sim.call(
        lambda c: (c.cost(c.get(spot_id)), c.cost(c.get(regular_id)), spot.summary(c.live.values(), c.now()))
    )
    assert spot_cost == pytest.approx(regular_cost * (1 - spot.ACI_DISCOUNT), rel=1e-4)
    seconds = admin_sim.call(lambda c: c.get(regular_id).billable_seconds(c.now()))
    assert regular_cost == pytest.approx(catalog.Spec(1.0, 2.0).usd_per_second() * seconds)
    assert saved["live"] == 1  # the admin totals' spot figures count the Spot group alone
    assert saved["saved_usd"] == pytest.approx(regular_cost - spot_cost, rel=1e-4)


def test_an_evicted_spot_group_is_restarted_in_place_and_the_sdk_reads_the_restart_and_the_event(
    admin_sim: SimThread,
) -> None:
    instance_id = _put(admin_sim, "cheap", "Spot")
    admin_sim.call(lambda c: c.advance(10))
    before = _get(admin_sim, "cheap").containers[0].instance_view
    assert (before.current_state.state, before.restart_count) == ("Running", 0)
    status, answer = _reclaim(admin_sim, instance_id)
    assert status == 200, answer
    got = _get(admin_sim, "cheap")
    view = got.containers[0].instance_view
    assert view.restart_count == 1
    assert view.current_state.state == "Running"
    assert (view.previous_state.state, view.previous_state.exit_code) == ("Terminated", spot.EVICTED_EXIT_CODE)
    assert view.previous_state.detail_status == spot.EVICTION
    assert view.previous_state.start_time == before.current_state.start_time
    assert got.instance_view.state == "Running"
    evictions = [e for e in got.instance_view.events if e.name == spot.EVICTION]
    assert [e.type for e in evictions] == ["Warning"]
    assert spot.EVICTION not in [e.name for e in view.events]  # the group's event, not the container's
    # Evicted again later, with a notice: announced, then restarted once the notice is over.
    admin_sim.call(lambda c: c.advance(60))
    status, answer = _reclaim(admin_sim, instance_id, {"notice": 30})
    assert status == 200, answer
    assert answer["evict_at"] == answer["noticed_at"] + 30
    noticed = _get(admin_sim, "cheap")
    assert noticed.containers[0].instance_view.restart_count == 1
    assert [e.type for e in noticed.instance_view.events if e.name == spot.EVICTION_NOTICE] == ["Warning"]
    admin_sim.call(lambda c: c.advance(30))
    again = _get(admin_sim, "cheap").containers[0].instance_view
    assert (again.restart_count, again.current_state.state) == (2, "Running")


def test_evicting_a_regular_group_is_refused_naming_its_priority(admin_sim: SimThread) -> None:
    regular, unsaid = _put(admin_sim, "dear", "Regular"), _put(admin_sim, "plain", None)
    admin_sim.call(lambda c: c.advance(10))
    for instance_id in (regular, unsaid):  # no priority is ACI's default, Regular
        status, answer = _reclaim(admin_sim, instance_id)
        assert status == 409
        assert "Regular priority" in answer["error"]
    view = _get(admin_sim, "dear").containers[0].instance_view
    assert (view.restart_count, view.current_state.state) == (0, "Running")


def test_no_spot_stock_refuses_a_spot_group_and_places_a_regular_one(aci_sim: SimThread) -> None:
    aci_sim.call(lambda c: [c.set_stock(zone, "*", 0, spot=True) for zone in c.stock])
    body = group()
    body.priority = "Spot"
    with aci_sim.client() as client, pytest.raises(HttpResponseError) as info:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "cheap", body, polling=False)
    assert (info.value.status_code, info.value.error.code) == (409, "ServiceUnavailable")
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "dear", group(), polling=False)
    assert aci_sim.call(lambda c: [i.spec.name for i in c.live.values()]) == ["dear"]
