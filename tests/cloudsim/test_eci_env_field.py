"""ECI's env field references through the official SDK: ``FieldRef.FieldPath=status.podIP`` is
filled in with the instance's own IP inside the container, shown as a reference by Describe,
and any other path is refused as the cloud refuses it."""

from __future__ import annotations

import json

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, container, create_request


def env_var(key: str, path: str) -> m.CreateContainerGroupRequestContainerEnvironmentVar:
    return m.CreateContainerGroupRequestContainerEnvironmentVar(
        key=key, field_ref=m.CreateContainerGroupRequestContainerEnvironmentVarFieldRef(field_path=path)
    )


def test_the_instance_sees_its_own_ip_in_env(sim: Sim, eci: Client) -> None:
    plain = m.CreateContainerGroupRequestContainerEnvironmentVar(key="MODE", value="fast")
    app = container("app", "nginx", environment_var=[plain, env_var("POD_IP", "status.podIP")])
    group_id = eci.create_container_group(create_request(sim, "ip", app)).body.container_group_id
    sim.advance(5)
    request = m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=json.dumps([group_id]))
    (group,) = eci.describe_container_groups(request).body.container_groups
    assert group.status == "Running"
    assert group.intranet_ip

    # Describe shows the reference, not the value (as the SDK's response model has it).
    env = {e.key: e for e in group.containers[0].environment_vars}
    assert env["MODE"].value == "fast"
    assert not env["POD_IP"].value
    assert env["POD_IP"].value_from.field_ref.field_path == "status.podIP"

    def run(*argv: str) -> str:
        exec_request = m.ExecContainerCommandRequest(
            region_id=sim.region,
            container_group_id=group_id,
            container_name="app",
            command=json.dumps(list(argv)),
            sync=True,
        )
        return str(eci.exec_container_command(exec_request).body.sync_response)

    assert run("printenv", "POD_IP") == f"{group.intranet_ip}\n"
    assert f"POD_IP={group.intranet_ip}\n" in run("env")
    assert run("sh", "-c", "echo $MODE on $POD_IP") == f"fast on {group.intranet_ip}\n"


def test_the_main_command_sees_it_too(sim: Sim, eci: Client) -> None:
    app = container("app", "busybox", "sh", "-c", "echo $POD_IP", environment_var=[env_var("POD_IP", "status.podIP")])
    group_id = eci.create_container_group(
        create_request(sim, "echo", app, restart_policy="Never")
    ).body.container_group_id
    sim.advance(5)
    ip = (
        eci.describe_container_groups(
            m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=json.dumps([group_id]))
        )
        .body.container_groups[0]
        .intranet_ip
    )
    log = eci.describe_container_log(
        m.DescribeContainerLogRequest(region_id=sim.region, container_group_id=group_id, container_name="app")
    ).body.content
    assert log == f"{ip}\n"


@pytest.mark.parametrize("path", ["status.hostIP", "status.podIPs", "metadata.name"])
def test_other_field_paths_are_refused_naming_the_parameter(sim: Sim, eci: Client, path: str) -> None:
    app = container("app", "nginx", environment_var=[env_var("X", path)])
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.create_container_group(create_request(sim, "bad", app))
    assert caught.value.code == "InvalidParameter"
    assert "Container.1.EnvironmentVar.1.FieldRef.FieldPath" in caught.value.message
    assert sim.totals()["live"] == 0
