"""GPUs on ACI: a pod's ``nvidia.com/gpu`` and ``virtual-kubelet.io/gpu-type`` as each container's
``resources.requests.gpu`` {count, sku} in the PUT body, ACI's refusals, and the node's capacity."""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Any

import msgspec
import pytest

from vnode import errors, models, settings
from vnode.kube import objects
from vnode.node import registration, spec
from vnode.provider.aci import mapping, states
from vnode.provider.aci import profile as aci_profile

SUBNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnode/subnets/sn-1"
TARGET = spec.Target(cluster_id="c1", node_name="vn-0", node_ip="192.168.0.9", profile=aci_profile.PROFILE)
SOURCES = spec.Sources(configmaps={}, secrets={}, tokens={})
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _pod(gpus: str, annotations: dict[str, str] | None = None, cpu: str = "1", memory: str = "2Gi") -> objects.Pod:
    limits = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus}
    body = {
        "metadata": {"name": "train", "namespace": "ns", "uid": "uid-1", "annotations": annotations or {}},
        "spec": {
            "containers": [
                {"name": "trainer", "image": "pytorch", "resources": {"limits": limits}},
                {"name": "sidecar", "image": "busybox", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
            ]
        },
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


def _body(gpus: str, annotations: dict[str, str] | None = None, subnet: str = "", **sizes: str) -> dict[str, Any]:
    built = spec.build(_pod(gpus, annotations, **sizes), SOURCES, TARGET)
    return mapping.group_body(built, location="westeurope", subnet=subnet)


def _requests(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c["properties"]["resources"]["requests"] for c in body["properties"]["containers"]}


def test_the_node_builds_a_gpu_pod_without_an_instance_type_and_keeps_the_gpu_type_annotation() -> None:
    annotations = {mapping.GPU_TYPE: "V100", mapping.PRIORITY: "Regular", "example.com/other": "x"}
    built = spec.build(_pod("2", annotations), SOURCES, TARGET)
    assert (built.instance_type, built.cpu, built.memory_gib) == ("", 1.5, 3)  # the request as it is
    assert [c.gpus for c in built.containers] == [2, 0]
    assert built.annotations == {mapping.GPU_TYPE: "V100", mapping.PRIORITY: "Regular"}


@pytest.mark.parametrize(
    ("annotation", "gpus", "sent"),
    [
        (None, "1", {"count": 1, "sku": "K80"}),  # no annotation: the profile's first SKU
        ("V100", "1", {"count": 1, "sku": "V100"}),
        ("v100", "2", {"count": 2, "sku": "V100"}),  # any case
        (" P100 ", "4", {"count": 4, "sku": "P100"}),
    ],
)
def test_a_containers_gpus_are_its_requests_gpu(annotation: str | None, gpus: str, sent: dict[str, Any]) -> None:
    annotations = {} if annotation is None else {mapping.GPU_TYPE: annotation}
    requests = _requests(_body(gpus, annotations))
    assert requests["trainer"] == {"cpu": 1.0, "memoryInGB": 2.0, "gpu": sent}
    assert "gpu" not in requests["sidecar"]


def test_a_pod_without_gpus_sends_none_even_with_the_annotation() -> None:
    built = spec.build(_pod("0", {mapping.GPU_TYPE: "V100"}), SOURCES, TARGET)
    assert all("gpu" not in r for r in _requests(mapping.group_body(built, location="westeurope")).values())


@pytest.mark.parametrize(
    ("gpus", "annotations", "sizes", "named"),
    [
        ("3", {}, {}, "container trainer: nvidia.com/gpu 3: ACI gives a container 1, 2 or 4 GPUs, not 3"),
        ("8", {}, {}, "nvidia.com/gpu 8"),
        ("1", {mapping.GPU_TYPE: "A100"}, {}, "annotation virtual-kubelet.io/gpu-type: 'A100' is not an ACI GPU SKU"),
        ("1", {}, {"cpu": "6"}, "6.5 vCPU / 3 GB with 1 K80 GPUs; ACI allows at most 6 vCPU / 56 GB with 1"),
        ("1", {mapping.GPU_TYPE: "V100"}, {"memory": "112Gi"}, "at most 6 vCPU / 112 GB with 1"),
        ("4", {mapping.GPU_TYPE: "K80"}, {"memory": "224Gi"}, "225 GB with 4 K80 GPUs; ACI allows at most 24"),
    ],
)
def test_what_aci_cannot_run_is_refused_naming_the_field(
    gpus: str, annotations: dict[str, str], sizes: dict[str, str], named: str
) -> None:
    with pytest.raises(errors.InvalidSpec, match=re.escape(named)):
        _body(gpus, annotations, **sizes)


def test_the_largest_sizes_the_sku_allows_are_sent() -> None:
    requests = _requests(_body("4", {mapping.GPU_TYPE: "V100"}, cpu="23.5", memory="447Gi"))
    assert requests["trainer"]["gpu"] == {"count": 4, "sku": "V100"}


def test_gpus_in_a_virtual_network_are_refused_naming_the_subnet() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"only outside a virtual network.*subnet sn-1 \(ACI_SUBNET\)"):
        _body("1", subnet=SUBNET)


def test_the_containers_gpus_together_are_held_to_the_skus_largest_count() -> None:
    four = models.ContainerSpec(name="a", image="i", gpus=4)
    spec_ = models.InstanceSpec(
        name="g",
        client_token="t",
        containers=(four, models.ContainerSpec(name="b", image="i", gpus=1)),
        cpu=2,
        memory_gib=4,
    )
    with pytest.raises(errors.InvalidSpec, match=re.escape("ask for 5 GPUs together, more than ACI's 4")):
        mapping.group_body(spec_, location="westeurope")
    pair = dataclasses.replace(spec_, containers=tuple(dataclasses.replace(c, gpus=1) for c in spec_.containers))
    assert [r["gpu"] for r in _requests(mapping.group_body(pair, location="westeurope")).values()] == [
        {"count": 1, "sku": "K80"},
        {"count": 1, "sku": "K80"},
    ]


def test_the_node_advertises_gpus_only_with_aci_quota_gpu() -> None:
    base = {"POD_NAME": "vn-0", "VNODE_PROVIDER": "aci"}
    for env, gpus in (({}, None), ({"ACI_QUOTA_GPU": "8"}, "8"), ({"ACI_QUOTA_GPU": "0"}, None)):
        config = settings.load({**base, **env})
        status = registration.node_status(config, models.Quota(), registration.CloudHealth(), NOW)
        assert status["capacity"].get("nvidia.com/gpu") == gpus


def test_a_groups_gpus_are_read_back_and_their_estimated_price_counted() -> None:
    def container(name: str, gpu: dict[str, Any] | None) -> dict[str, Any]:
        requests = {"cpu": 1.0, "memoryInGB": 2.0, **({"gpu": gpu} if gpu else {})}
        running = {"state": "Running", "startTime": "2026-01-01T00:00:00Z"}
        return {
            "name": name,
            "properties": {"resources": {"requests": requests}, "instanceView": {"currentState": running}},
        }

    group = {
        "name": "train",
        "properties": {
            "provisioningState": "Succeeded",
            "containers": [container("a", {"count": 2, "sku": "V100"}), container("b", None)],
            "instanceView": {"state": "Running"},
        },
    }
    state = states.state_of(group)
    assert (state.instance_type, state.gpus, state.cpu, state.memory_gib) == ("V100", 2, 2.0, 4.0)
    hour = NOW.timestamp() + 3600
    cpu_only = aci_profile.PROFILE.price(2.0, 4.0) * 3600
    v100 = next(s for s in aci_profile.GPU_SKUS if s.name == "V100")
    assert aci_profile.PROFILE.spent(state, hour) == pytest.approx(cpu_only + 2 * v100.per_gpu_second * 3600)
    assert states.state_of({"name": "plain", "properties": {"containers": [container("a", None)]}}).gpus == 0
