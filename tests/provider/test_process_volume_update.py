"""The process provider rewrites a running instance's volume files in place (``SupportsVolumeUpdate``)."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from tests.waiting import wait_for
from vnode import errors, models
from vnode.provider import base
from vnode.provider.process import provider as process


@pytest.fixture
def provider(tmp_path: pathlib.Path) -> Iterator[process.ProcessProvider]:
    directory = tmp_path / "process"
    try:
        yield process.ProcessProvider(directory, lifeline=os.getpid(), poll_interval=0.05)
    finally:
        process.stop_all(directory)  # every process recorded under it is killed, pass or fail


def files(*pairs: tuple[str, bytes]) -> models.VolumeSpec:
    return models.VolumeSpec("config", "files", files=tuple(models.KeyToPath(p, c) for p, c in pairs))


async def test_update_rewrites_the_files_a_running_container_sees(provider: process.ProcessProvider) -> None:
    assert isinstance(provider, base.SupportsVolumeUpdate)
    container = models.ContainerSpec(
        name="c",
        image="busybox",
        command=("sh", "-c", "exec sleep 60"),
        volume_mounts=(models.VolumeMount("config", "/etc/app"),),
    )
    spec = models.InstanceSpec(
        name="pod",
        client_token="tok",
        containers=(container,),
        cpu=1,
        memory_gib=2,
        volumes=(files(("app.conf", b"one"), ("old.conf", b"x")),),
        tags={models.TAG_CLUSTER: "c1", models.TAG_NODE: "n"},
    )
    created = await provider.create(spec)
    seen = provider.instance_dir(created.id) / "root" / "etc" / "app"
    wait_for(lambda: (seen / "app.conf").exists(), timeout=10, what="the volume under the pod root")
    assert (seen / "app.conf").read_bytes() == b"one"

    await provider.update_volumes(created.id, [files(("app.conf", b"two"))], client_token="uid-1")
    assert (seen / "app.conf").read_bytes() == b"two"
    assert not (seen / "old.conf").exists()  # gone from the ConfigMap, gone from the volume
    await provider.update_volumes(created.id, [files(("app.conf", b"two"))], client_token="uid-1")  # a retry
    assert sorted(p.name for p in seen.iterdir()) == ["app.conf"]
    state = await provider.get(created.id)
    assert state.status in (models.InstanceStatus.PENDING, models.InstanceStatus.RUNNING)  # not restarted

    with pytest.raises(errors.InvalidSpec):
        await provider.update_volumes(created.id, [models.VolumeSpec("nope", "files", files=())], client_token="uid-2")
    with pytest.raises(errors.NotFound):
        await provider.update_volumes("proc-missing", [files()], client_token="uid-3")
