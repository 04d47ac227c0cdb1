"""The Node's status: capacity bounded by settings and quota, Ready following the cloud's health."""

from __future__ import annotations

import datetime

from vnode import models, settings
from vnode.node import registration

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_capacity_is_bounded_by_the_quota_settings_and_the_clouds_answer() -> None:
    config = settings.load({"POD_NAME": "vn-0", "ECI_QUOTA_CPU": "100", "ECI_QUOTA_POD": "300"})
    status = registration.node_status(config, models.Quota(cpu=200, memory_gib=64), registration.CloudHealth(), NOW)
    assert status["capacity"] == {
        "cpu": "100",
        "memory": "65536Mi",
        "pods": "300",
        "ephemeral-storage": "1Ti",
        "nvidia.com/gpu": "100",  # the ECI profile's: it sells GPU types
    }
    assert status["allocatable"] == status["capacity"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert "vnode" in status["nodeInfo"]["kubeletVersion"]


def test_gpu_capacity_is_the_profiles_unless_the_quota_setting_says() -> None:
    for env, gpus in (({}, "100"), ({"ECI_QUOTA_GPU": "8"}, "8"), ({"ECI_QUOTA_GPU": "0"}, None)):
        config = settings.load({"POD_NAME": "vn-0", **env})
        status = registration.node_status(config, models.Quota(), registration.CloudHealth(), NOW)
        assert status["capacity"].get("nvidia.com/gpu") == gpus


def test_ready_follows_the_clouds_health_with_a_reason() -> None:
    config = settings.load({"POD_NAME": "vn-0"})
    health = registration.CloudHealth()
    health.set(False, "ProviderUnreachable", "connection refused")
    conditions = registration.node_status(config, models.Quota(), health, NOW)["conditions"]
    ready = next(c for c in conditions if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "ProviderUnreachable",
        "connection refused",
    )
    assert {c["type"] for c in conditions} == {
        "Ready",
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "NetworkUnavailable",
    }


def test_labels_of_the_field() -> None:
    labels = registration.labels(settings.load({"POD_NAME": "virtual-node-eci-0"}))
    assert labels["type"] == "virtual-kubelet"
    assert labels["kubernetes.io/role"] == "agent"
    assert labels["kubernetes.io/hostname"] == "virtual-node-eci-0"
    assert labels["node.kubernetes.io/exclude-from-external-load-balancers"] == "true"
