"""Refusals through the real protocol: each gets ECI's code and HTTP status, and changes nothing."""

from __future__ import annotations

import time
import uuid

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, container, create_request, tags


def good_params(sim: Sim, **extra: str) -> dict[str, str]:
    params = {
        "RegionId": sim.region,
        "ContainerGroupName": "bad-input",
        "SecurityGroupId": sim.info["security_group_id"],
        "VSwitchId": sim.vswitches[0]["id"],
        "Container.1.Name": "app",
        "Container.1.Image": "nginx",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v != "<drop>"}


BAD_INPUT = {
    "unknown action": ("RunContainerGroup", {}, 404, "InvalidAction.NotFound"),
    "missing name": ("CreateContainerGroup", {"ContainerGroupName": "<drop>"}, 400, "MissingParameter"),
    "missing image": ("CreateContainerGroup", {"Container.1.Image": "<drop>"}, 400, "MissingParameter"),
    "malformed container index": ("CreateContainerGroup", {"Container.x.Name": "b"}, 400, "InvalidParameter"),
    "malformed container cpu": ("CreateContainerGroup", {"Container.1.Cpu": "lots"}, 400, "InvalidParameter"),
    "malformed container port": ("CreateContainerGroup", {"Container.1.Port.1.Port": "99999"}, 400, "InvalidParameter"),
    "oversize spec": ("CreateContainerGroup", {"Cpu": "65", "Memory": "128"}, 400, "InvalidParameter"),
    "unknown vswitch": ("CreateContainerGroup", {"VSwitchId": "vsw-nope"}, 400, "InvalidParameter"),
    "bad restart policy": ("CreateContainerGroup", {"RestartPolicy": "Sometimes"}, 400, "InvalidParameter"),
    "bad override tag": (
        "CreateContainerGroup",
        {"Tag.1.Key": "cloudsim/exit-code", "Tag.1.Value": "x"},
        400,
        "InvalidParameter",
    ),
    "describe limit over 20": ("DescribeContainerGroups", {"Limit": "21"}, 400, "InvalidParameter"),
    "delete unknown id": (
        "DeleteContainerGroup",
        {"ContainerGroupId": "eci-0000"},
        404,
        "InvalidContainerGroupId.NotFound",
    ),
}


@pytest.mark.parametrize(("action", "change", "status", "code"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_gets_the_code_and_status_and_changes_nothing(
    sim: Sim, action: str, change: dict[str, str], status: int, code: str
) -> None:
    before = sim.totals()
    got_status, body = sim.raw(action, good_params(sim, **change))
    assert (got_status, body["Code"]) == (status, code), body
    assert body["RequestId"]
    assert body["Message"]
    after = sim.totals()
    assert (after["live"], after["used_cpu"], after["vswitches"]) == (
        before["live"],
        before["used_cpu"],
        before["vswitches"],
    )


def test_the_sdk_surfaces_the_error_code(sim: Sim) -> None:
    request = create_request(sim, "big", cpu=65.0, memory=128.0)
    with pytest.raises(tea_exceptions.ClientException) as caught:
        sim.client().create_container_group(request)
    assert caught.value.code == "InvalidParameter"
    assert caught.value.status_code == 400
    assert sim.totals()["live"] == 0


def test_wrong_secret_is_refused(sim: Sim) -> None:
    with pytest.raises(tea_exceptions.ClientException) as caught:
        sim.client(secret="not-the-secret").create_container_group(create_request(sim, "x"))
    assert (caught.value.code, caught.value.status_code) == ("SignatureDoesNotMatch", 400)
    assert sim.totals()["live"] == 0


def test_unknown_access_key_is_refused(sim: Sim) -> None:
    with pytest.raises(tea_exceptions.ClientException) as caught:
        sim.client(key_id="LTAInobody").create_container_group(create_request(sim, "x"))
    assert (caught.value.code, caught.value.status_code) == ("InvalidAccessKeyId.NotFound", 404)
    assert sim.totals()["live"] == 0


def test_replayed_nonce_is_refused(sim: Sim) -> None:
    nonce = uuid.uuid4().hex
    status, body = sim.raw("CreateContainerGroup", good_params(sim), nonce=nonce)
    assert status == 200, body
    status, body = sim.raw("CreateContainerGroup", good_params(sim), nonce=nonce)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    assert sim.totals()["live"] == 1


def test_a_request_altered_after_signing_is_refused(sim: Sim) -> None:
    """Someone between the daemon and the cloud doubles the size of a signed create: refused."""
    live = sim.totals()["live"]
    status, body = sim.raw("CreateContainerGroup", good_params(sim), altered={"Cpu": "64", "Memory": "128"})
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    assert sim.totals()["live"] == live


@pytest.mark.parametrize("minutes", [16, -16])
def test_a_request_dated_16_minutes_off_is_refused(sim: Sim, minutes: int) -> None:
    """ECI takes a request within 15 minutes of its clock: a captured one cannot be sent later."""
    live = sim.totals()["live"]
    status, body = sim.raw("CreateContainerGroup", good_params(sim), sent_at=time.time() + minutes * 60)
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")
    assert sim.totals()["live"] == live


def test_same_client_token_twice_gives_one_instance(sim: Sim) -> None:
    eci = sim.client()
    first = eci.create_container_group(create_request(sim, "once", client_token="token-1")).body.container_group_id
    again = eci.create_container_group(create_request(sim, "once", client_token="token-1")).body.container_group_id
    assert first == again
    assert sim.totals()["live"] == 1
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.create_container_group(create_request(sim, "different", client_token="token-1"))
    assert caught.value.code == "IdempotentParameterMismatch"
    assert sim.totals()["live"] == 1


def test_zone_out_of_stock_lands_in_the_next_zone(sim: Sim) -> None:
    a, b = sim.vswitches[0], sim.vswitches[1]
    status, _ = sim.admin("POST", "stock", {"zone": a["zone"], "available": 0})
    assert status == 200
    eci = sim.client()
    request = create_request(sim, "spill", v_switch_id=f"{a['id']},{b['id']}")
    group_id = eci.create_container_group(request).body.container_group_id
    groups = eci.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=sim.region)).body.container_groups
    (group,) = groups
    assert (group.container_group_id, group.zone_id, group.v_switch_id) == (group_id, b["zone"], b["id"])
    assert "NoStock" in {e.reason for e in group.events if e.type == "Warning"}

    sim.admin("POST", "stock", {"zone": b["zone"], "available": 0})
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.create_container_group(create_request(sim, "nowhere", v_switch_id=f"{a['id']},{b['id']}"))
    assert (caught.value.code, caught.value.status_code) == ("OperationDenied.NoStock", 403)


def test_exhausted_vswitch_refuses(sim: Sim) -> None:
    a = sim.vswitches[0]
    status, _ = sim.admin("POST", f"vswitches/{a['id']}", {"exhausted": True})
    assert status == 200
    with pytest.raises(tea_exceptions.ClientException) as caught:
        sim.client().create_container_group(create_request(sim, "full", v_switch_id=a["id"]))
    assert (caught.value.code, caught.value.status_code) == ("InvalidVSwitchId.IpNotEnough", 400)
    assert sim.totals()["live"] == 0


def test_burst_of_150_creates_is_throttled_after_100(sim: Sim) -> None:
    outcomes = []
    for n in range(150):
        status, body = sim.raw("CreateContainerGroup", good_params(sim, ContainerGroupName=f"b{n}"))
        outcomes.append("ok" if status == 200 else body["Code"])
    assert outcomes[:100] == ["ok"] * 100
    assert outcomes[100:] == ["Throttling.User"] * 50  # the clock is paused: no refill
    assert sim.totals()["live"] == 100
    sim.advance(1)  # 20 tokens a second
    status, body = sim.raw("CreateContainerGroup", good_params(sim, ContainerGroupName="after"))
    assert status == 200, body


def test_injected_faults_fail_and_delay_calls(sim: Sim) -> None:
    status, body = sim.admin(
        "PUT", "faults/create", {"error_rate": 1.0, "error_code": "InternalError", "error_status": 500}
    )
    assert status == 200, body
    status, body = sim.raw("CreateContainerGroup", good_params(sim))
    assert (status, body["Code"]) == (500, "InternalError")
    sim.admin("DELETE", "faults/create")
    status, body = sim.raw("CreateContainerGroup", good_params(sim))
    assert status == 200, body


def test_admin_refuses_bad_bodies_naming_the_problem(sim: Sim) -> None:
    status, body = sim.admin("POST", "clock", {"advance": -5})
    assert status == 400
    assert "advance" in body["error"]
    status, body = sim.admin("PUT", "faults/create", {"error_rate": 2})
    assert status == 400
    assert "error_rate" in body["error"]
    status, body = sim.admin("PUT", "faults/fly", {})
    assert status == 400
    assert "fly" in body["error"]
    status, body = sim.admin("POST", "stock", {"zone": "mars-1", "available": 0})
    assert status == 400
    assert "mars-1" in body["error"]


def test_tag_overrides_drive_one_instance(sim: Sim) -> None:
    eci = sim.client()
    request = create_request(
        sim,
        "override",
        container("c", "nginx"),
        restart_policy="Never",
        tag=tags(cloudsim_delay="10", cloudsim_exit__code="7", cloudsim_run__seconds="5"),
    )
    group_id = eci.create_container_group(request).body.container_group_id
    sim.advance(9)
    record = sim.admin("GET", f"instances/{group_id}")[1]
    assert record["status"] == "Pending"
    sim.advance(10)
    record = sim.admin("GET", f"instances/{group_id}")[1]
    assert record["status"] == "Failed"
    assert record["containers"][0]["current"]["exit_code"] == 7
