"""ECI's volumes through the official SDK: NFS (NAS) and cloud-disk mounts are stored and described
back; a disk attached to another live instance is refused with ECS's disk-status error and nothing
is created; a disk is billed by the GiB-second while its instance is; emptyDir's Medium and
SizeLimit are kept and malformed ones refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, container, create_request
from vnode.cloudsim import catalog


def describe(sim: Sim, eci: Client, group_id: str) -> Any:
    request = m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=json.dumps([group_id]))
    (group,) = eci.describe_container_groups(request).body.container_groups
    return group


def disk(name: str, disk_id: str, size: int | None = None, fs_type: str = "ext4") -> Any:
    return m.CreateContainerGroupRequestVolume(
        name=name,
        type="DiskVolume",
        disk_volume=m.CreateContainerGroupRequestVolumeDiskVolume(disk_id=disk_id, fs_type=fs_type, disk_size=size),
    )


def mounted(*names: str) -> Any:
    mounts = [m.CreateContainerGroupRequestContainerVolumeMount(name=n, mount_path=f"/mnt/{n}") for n in names]
    return container("app", "nginx", volume_mount=mounts)


def test_nfs_and_disk_volumes_are_described(sim: Sim, eci: Client) -> None:
    nfs = m.CreateContainerGroupRequestVolume(
        name="share",
        type="NFSVolume",
        nfsvolume=m.CreateContainerGroupRequestVolumeNFSVolume(
            server="0a1b2c.cn-hangzhou.nas.aliyuncs.com", path="/exports/web", read_only=True
        ),
    )
    request = create_request(sim, "mounts", mounted("share", "data"), volume=[nfs, disk("data", "d-bp1data", 40)])
    group = describe(sim, eci, eci.create_container_group(request).body.container_group_id)
    by_name = {v.name: v for v in group.volumes}
    share, data = by_name["share"], by_name["data"]
    assert (share.type, share.nfsvolume_server, share.nfsvolume_path, share.nfsvolume_read_only) == (
        "NFSVolume",
        "0a1b2c.cn-hangzhou.nas.aliyuncs.com",
        "/exports/web",
        True,
    )
    assert (data.type, data.disk_volume_disk_id, data.disk_volume_fs_type) == ("DiskVolume", "d-bp1data", "ext4")
    assert [v.mount_path for v in group.containers[0].volume_mounts] == ["/mnt/share", "/mnt/data"]


def test_a_disk_attached_to_a_live_instance_is_refused_until_it_is_gone(sim: Sim, eci: Client) -> None:
    first = eci.create_container_group(create_request(sim, "one", mounted("data"), volume=[disk("data", "d-bp1rwo")]))
    sim.advance(30)
    before = sim.totals()["live"]
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.create_container_group(create_request(sim, "two", mounted("data"), volume=[disk("data", "d-bp1rwo")]))
    assert caught.value.code == "IncorrectDiskStatus"
    assert "d-bp1rwo" in caught.value.message
    assert first.body.container_group_id in caught.value.message
    assert sim.totals()["live"] == before  # nothing was made
    eci.delete_container_group(
        m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=first.body.container_group_id)
    )
    sim.advance(60)
    second = eci.create_container_group(create_request(sim, "two", mounted("data"), volume=[disk("data", "d-bp1rwo")]))
    assert second.body.container_group_id


def test_a_disk_is_billed_by_the_gib_second_with_its_instance(sim: Sim, eci: Client) -> None:
    request = create_request(
        sim, "billed", mounted("data"), volume=[disk("data", "d-bp1bill", 100)], cpu=2.0, memory=4.0
    )
    group_id = eci.create_container_group(request).body.container_group_id
    sim.advance(30)
    eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id))
    sim.advance(60)
    record = sim.admin("GET", f"instances/{group_id}")[1]
    seconds = record["billable_seconds"]
    assert seconds > 0
    expected = (catalog.Spec(2, 4).usd_per_second() + 100 * catalog.USD_PER_DISK_GIB_SECOND) * seconds
    assert record["cost_usd"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("volume", "parameter"),
    [
        (disk("data", "vol-1"), "Volume.1.DiskVolume.DiskId"),
        (disk("data", "d-bp1fs", fs_type="ntfs"), "Volume.1.DiskVolume.FsType"),
        (
            m.CreateContainerGroupRequestVolume(
                name="data", type="NFSVolume", nfsvolume=m.CreateContainerGroupRequestVolumeNFSVolume(path="/x")
            ),
            "Volume.1.NFSVolume.Server",
        ),
        (
            m.CreateContainerGroupRequestVolume(
                name="data",
                type="EmptyDirVolume",
                empty_dir_volume=m.CreateContainerGroupRequestVolumeEmptyDirVolume(medium="Disk"),
            ),
            "Volume.1.EmptyDirVolume.Medium",
        ),
        (
            m.CreateContainerGroupRequestVolume(
                name="data",
                type="EmptyDirVolume",
                empty_dir_volume=m.CreateContainerGroupRequestVolumeEmptyDirVolume(size_limit="lots"),
            ),
            "Volume.1.EmptyDirVolume.SizeLimit",
        ),
    ],
)
def test_malformed_volumes_are_refused_naming_the_parameter(sim: Sim, eci: Client, volume: Any, parameter: str) -> None:
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.create_container_group(create_request(sim, "bad", mounted("data"), volume=[volume]))
    assert caught.value.code in ("InvalidParameter", "MissingParameter")
    assert parameter in caught.value.message


def test_more_than_six_disks_are_refused(sim: Sim, eci: Client) -> None:
    volumes = [disk(f"d{n}", f"d-bp1many{n}") for n in range(7)]
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.create_container_group(create_request(sim, "many", mounted(), volume=volumes))
    assert "at most 6 disk volumes" in caught.value.message


def test_empty_dir_in_memory_with_a_size_limit_is_described(sim: Sim, eci: Client) -> None:
    volume = m.CreateContainerGroupRequestVolume(
        name="cache",
        type="EmptyDirVolume",
        empty_dir_volume=m.CreateContainerGroupRequestVolumeEmptyDirVolume(medium="Memory", size_limit="256Mi"),
    )
    group = describe(
        sim,
        eci,
        eci.create_container_group(
            create_request(sim, "mem", mounted("cache"), volume=[volume])
        ).body.container_group_id,
    )
    (cache,) = group.volumes
    assert (cache.type, cache.empty_dir_volume_medium, cache.empty_dir_volume_size_limit) == (
        "EmptyDirVolume",
        "Memory",
        "256Mi",
    )
