"""A node keeps the state of each of its instances: the strings instances repeat are one copy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vnode import models
from vnode.provider.aci import states as aci_states
from vnode.provider.eci import states as eci_states

ECI = """{"ContainerGroupId": "eci-%(n)s", "Status": "Running", "ZoneId": "cn-hangzhou-h",
 "VSwitchId": "vsw-bench", "InstanceType": "ecs.c6.large", "IntranetIp": "10.0.0.%(n)s",
 "Tags": [{"Key": "vnode.io/node", "Value": "vk-0"}, {"Key": "vnode.io/pod-uid", "Value": "uid-%(n)s"}],
 "Containers": [{"Name": "web", "Image": "nginx:alpine", "Ready": true,
   "CurrentState": {"State": "Running", "DetailStatus": "working", "StartTime": "2026-12-07T10:00:00Z"}}],
 "Events": [{"Reason": "Pulled", "Message": "Successfully pulled image nginx:alpine", "Type": "Normal",
   "LastTimestamp": "2026-12-07T10:00:00Z"}]}"""

ACI = """{"name": "aci-%(n)s", "zones": ["1"], "tags": {"vnode.io-node": "vk-0", "vnode.io-pod-uid": "uid-%(n)s"},
 "properties": {"provisioningState": "Succeeded", "subnetIds": [{"id": "/subscriptions/s/subnets/snet-bench"}],
  "instanceView": {"state": "Running", "events": []},
  "containers": [{"name": "web", "properties": {"image": "nginx:alpine",
    "resources": {"requests": {"cpu": 1, "memoryInGB": 2}},
    "instanceView": {"restartCount": 0, "currentState": {"state": "Running", "detailStatus": "working",
      "startTime": "2026-12-07T10:00:00Z"},
      "events": [{"name": "Pulled", "message": "pulled image nginx:alpine", "type": "Normal",
        "lastTimestamp": "2026-12-07T10:00:00Z"}]}}}]}}"""


def _repeated(state: models.InstanceState) -> list[str]:
    container, event = state.containers[0], state.events[0]
    return [
        container.name, container.image, container.reason, event.reason, event.message, state.zone, state.vswitch,
        *state.tags, state.tags["vnode.io/node"],
    ]  # fmt: skip


@pytest.mark.parametrize(("text", "state_of"), [(ECI, eci_states.state_of), (ACI, aci_states.state_of)],
                         ids=["eci", "aci"])  # fmt: skip
def test_two_instances_described_apart_share_what_they_repeat(text: str, state_of: Any) -> None:
    one, two = (state_of(json.loads(text % {"n": n})) for n in ("1", "2"))  # two decodes: two copies of each
    assert _repeated(one) == _repeated(two)
    assert all(a is b for a, b in zip(_repeated(one), _repeated(two), strict=True))
    assert one.tags["vnode.io/pod-uid"] != two.tags["vnode.io/pod-uid"]
