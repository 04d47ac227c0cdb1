"""A pod's ``fieldRef: status.podIP`` reaches its instance as the instance's own IP.

ECI: the pod goes through the node's spec mapping and the ECI provider to the simulated cloud
(a child process, paused clock), which fills the IP in; ``exec printenv`` in the instance
shows it. The process provider fills in its loopback address itself.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest

from tests.cloudsim.conftest import Sim, running
from tests.waiting import until
from vnode import models
from vnode.kube import objects
from vnode.node import spec
from vnode.provider import base
from vnode.provider.eci import config as eci_config
from vnode.provider.eci import provider as eci
from vnode.provider.process import provider as process

NODE_TAGS = {models.TAG_CLUSTER: "c1", models.TAG_NODE: "vn-0"}


def pod(image: str, command: list[str], uid: str) -> objects.Pod:
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    body: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "ns", "uid": uid},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "app", "image": image, "command": command, "env": env}],
        },
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("env-pod-ip-sim"), profile="fast") as started:
        yield started


@pytest.fixture
async def provider(sim: Sim) -> AsyncIterator[eci.EciProvider]:
    config = eci_config.EciSettings.model_validate(
        {
            "region": sim.region,
            "endpoint": sim.info["eci"]["endpoint"],
            "access_key": sim.info["eci"]["access_key_id"],
            "secret_key": sim.info["eci"]["access_key_secret"],
            "vswitches": tuple(v["id"] for v in sim.vswitches),
            "security_group": sim.info["security_group_id"],
        }
    )
    provider = eci.EciProvider(config)
    try:
        yield provider
    finally:
        await provider.close()


async def test_an_eci_instance_gets_its_own_ip_in_env(sim: Sim, provider: eci.EciProvider) -> None:
    target = spec.Target(cluster_id="c1", node_name="vn-0", node_ip="192.168.0.9")
    instances = []
    for n in range(2):  # two instances, two IPs: each sees its own
        built = spec.build(pod("nginx", [], f"uid-{n}"), spec.Sources(), target)
        built = dataclasses.replace(built, name=f"web-{n}", tags={**built.tags, **NODE_TAGS})
        instances.append(await provider.create(built))
    sim.advance(5)
    listed = {s.id: s for s in await provider.list(NODE_TAGS)}
    assert len({listed[i.id].ip for i in instances}) == 2
    for made in instances:
        state = listed[made.id]
        assert state.status is models.InstanceStatus.RUNNING
        answer = await provider.exec(made.id, "app", ["printenv", "POD_IP", "NAME"])
        assert (answer.exit_code, answer.stdout) == (0, f"{state.ip}\nweb\n".encode())


LogOptions = base.LogRequest


@pytest.fixture
def state_dir(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    directory = tmp_path / "process"
    try:
        yield directory
    finally:
        process.stop_all(directory)


async def test_a_process_instance_gets_the_loopback_address(state_dir: pathlib.Path) -> None:
    provider = process.ProcessProvider(state_dir, lifeline=os.getpid(), poll_interval=0.05)
    built = spec.build(
        pod("busybox", ["sh", "-c", 'echo "ip=$POD_IP"'], "uid-p"), spec.Sources(), spec.Target("c1", "vn-0")
    )
    made = await provider.create(built)

    async def log() -> bytes:
        return b"".join([chunk async for chunk in provider.logs(made.id, "app", LogOptions())])

    terminal = (models.InstanceStatus.SUCCEEDED, models.InstanceStatus.FAILED)

    async def ended() -> models.InstanceState | None:
        state = await provider.get(made.id)
        return state if state.status in terminal else None

    done = await until(ended, within=15, what="the instance to end", interval=0.05)
    assert done.status is models.InstanceStatus.SUCCEEDED
    assert await log() == f"ip={process.IP}\n".encode()
