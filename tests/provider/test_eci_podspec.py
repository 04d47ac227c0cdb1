"""The issue's pod through the node's spec mapping and the ECI provider to the simulated cloud:
runAsUser 1000, capability NET_ADMIN, hostAliases, dnsPolicy None with a dnsConfig; the official
SDK's DescribeContainerGroups shows each field. A capability ECI does not allow is refused by the
cloud, naming the parameter."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from alibabacloud_eci20180808 import models as m

from tests.cloudsim.conftest import Sim, running
from vnode import errors, models
from vnode.kube import objects
from vnode.node import spec
from vnode.provider.eci import config as eci_config
from vnode.provider.eci import provider as eci

NODE_TAGS = {models.TAG_CLUSTER: "c1", models.TAG_NODE: "vn-0"}


def pod(uid: str, capability: str = "NET_ADMIN") -> objects.Pod:
    body: dict[str, Any] = {
        "metadata": {"name": f"web-{uid}", "namespace": "ns", "uid": uid},
        "spec": {
            "securityContext": {"runAsUser": 1000},
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["db", "db.local"]}],
            "dnsPolicy": "None",
            "dnsConfig": {
                "nameservers": ["1.1.1.1"],
                "searches": ["corp.example"],
                "options": [{"name": "ndots", "value": "2"}],
            },
            "containers": [
                {"name": "app", "image": "nginx", "securityContext": {"capabilities": {"add": [capability]}}}
            ],
        },
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("eci-podspec-sim"), profile="fast") as started:
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


def built(p: objects.Pod) -> models.InstanceSpec:
    target = spec.Target(cluster_id="c1", node_name="vn-0", cluster_dns="10.96.0.10")
    made = spec.build(p, spec.Sources(), target)
    return dataclasses.replace(made, tags={**made.tags, **NODE_TAGS})


async def test_the_sdk_describes_every_mapped_field(sim: Sim, provider: eci.EciProvider) -> None:
    made = await provider.create(built(pod("a")))
    request = m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=json.dumps([made.id]))
    (group,) = sim.client().describe_container_groups(request).body.container_groups
    assert [(a.ip, a.hostnames) for a in group.host_aliases] == [("10.1.2.3", ["db", "db.local"])]
    assert group.dns_config.name_servers == ["1.1.1.1"]
    assert group.dns_config.searches == ["corp.example"]
    assert [(o.name, o.value) for o in group.dns_config.options] == [("ndots", "2")]
    context = group.containers[0].security_context
    assert context.run_as_user == 1000
    assert context.capability.adds == ["NET_ADMIN"]


async def test_a_capability_eci_does_not_allow_is_refused_by_the_cloud(provider: eci.EciProvider) -> None:
    with pytest.raises(errors.InvalidSpec, match=r"Capability\.Add\.1"):
        await provider.create(built(pod("b", capability="SYS_ADMIN")))
