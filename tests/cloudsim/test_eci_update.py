"""UpdateContainerGroup of volumes with the official ECI SDK: Updating, then Running with the new files."""

from __future__ import annotations

import base64
import json

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, container, create_request


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def with_config(sim: Sim, name: str, content: str, **fields: object) -> m.CreateContainerGroupRequest:
    volume = m.CreateContainerGroupRequestVolume(
        name="cfg",
        type="ConfigFileVolume",
        config_file_volume=m.CreateContainerGroupRequestVolumeConfigFileVolume(
            config_file_to_path=[
                m.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
                    path="app.conf", content=b64(content)
                )
            ]
        ),
    )
    return create_request(sim, name, volume=[volume], **fields)  # type: ignore[no-any-return]


def update_request(sim: Sim, group_id: str, content: str, token: str) -> m.UpdateContainerGroupRequest:
    return m.UpdateContainerGroupRequest(
        region_id=sim.region,
        container_group_id=group_id,
        client_token=token,
        volume=[
            m.UpdateContainerGroupRequestVolume(
                name="cfg",
                type="ConfigFileVolume",
                config_file_volume=m.UpdateContainerGroupRequestVolumeConfigFileVolume(
                    config_file_to_path=[
                        m.UpdateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
                            path="app.conf", content=b64(content)
                        )
                    ]
                ),
            )
        ],
    )


def describe(eci: Client, sim: Sim, group_id: str) -> m.DescribeContainerGroupsResponseBodyContainerGroups:
    request = m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=json.dumps([group_id]))
    (group,) = eci.describe_container_groups(request).body.container_groups
    return group


def content_of(group: m.DescribeContainerGroupsResponseBodyContainerGroups) -> str:
    (volume,) = [v for v in group.volumes if v.name == "cfg"]
    (item,) = volume.config_file_volume_config_file_to_paths
    return base64.b64decode(item.content).decode()


def test_update_replaces_volume_contents_through_a_short_updating_stage(realistic_sim: Sim) -> None:
    sim, eci = realistic_sim, realistic_sim.client()
    sim.admin("POST", "reset", {})
    group_id = eci.create_container_group(with_config(sim, "cfg", "mode=one")).body.container_group_id
    sim.advance(60)
    assert describe(eci, sim, group_id).status == "Running"
    assert content_of(describe(eci, sim, group_id)) == "mode=one"

    eci.update_container_group(update_request(sim, group_id, "mode=two", "tok-1"))
    updating = describe(eci, sim, group_id)
    assert updating.status == "Updating"
    assert content_of(updating) == "mode=two"
    sim.advance(10)
    back = describe(eci, sim, group_id)
    assert back.status == "Running"
    assert {"Updating", "Updated"} <= {e.reason for e in back.events}
    assert back.containers[0].restart_count == 0  # the files change; the containers keep running


def test_update_is_idempotent_by_client_token(sim: Sim, eci: Client) -> None:
    group_id = eci.create_container_group(with_config(sim, "cfg", "mode=one")).body.container_group_id
    sim.advance(5)
    eci.update_container_group(update_request(sim, group_id, "mode=two", "tok-a"))
    sim.advance(5)
    # A retry of the same update after a later one changes nothing.
    eci.update_container_group(update_request(sim, group_id, "mode=three", "tok-b"))
    sim.advance(5)
    eci.update_container_group(update_request(sim, group_id, "mode=two", "tok-a"))
    sim.advance(5)
    group = describe(eci, sim, group_id)
    assert content_of(group) == "mode=three"
    assert group.status == "Running"


def test_update_of_a_finished_instance_is_refused_with_incorrect_status(sim: Sim, eci: Client) -> None:
    request = with_config(sim, "done", "x", restart_policy="Never")
    request.container = [container("c", "busybox", "sh", "-c", "exit 0")]
    group_id = eci.create_container_group(request).body.container_group_id
    sim.advance(30)
    assert describe(eci, sim, group_id).status == "Succeeded"
    with pytest.raises(tea_exceptions.ClientException) as refused:
        eci.update_container_group(update_request(sim, group_id, "y", "tok-x"))
    assert refused.value.code.startswith("IncorrectStatus")
