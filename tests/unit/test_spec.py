"""Pod → instance spec: env resolution (every source, optional refs, $(VAR)), volumes, tags, failures."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import msgspec
import pytest

from vnode import errors, models
from vnode.kube import objects
from vnode.node import spec
from vnode.provider import profile
from vnode.provider.eci import profile as eci_profile

TARGET = spec.Target(
    cluster_id="c1",
    node_name="vn-0",
    node_ip="192.168.0.9",
    placement=models.Placement(vswitches=("vsw-a", "vsw-b")),
    profile=eci_profile.PROFILE,
)


def pod(containers: list[dict[str, Any]], volumes: list[dict[str, Any]] | None = None, **meta: Any) -> objects.Pod:
    body = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1", "labels": {"app": "web"}, **meta},
        "spec": {"containers": containers, "volumes": volumes or [], "serviceAccountName": "sa"},
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


SOURCES = spec.Sources(
    configmaps={"cfg": {"MODE": b"fast", "bad key": b"x"}},
    secrets={"creds": {"password": b"s3cret"}},
    tokens={("", 3600): "tok"},
)


def env_of(p: objects.Pod, sources: spec.Sources = SOURCES) -> dict[str, str]:
    return {e.name: e.value for e in spec.build(p, sources, TARGET).containers[0].env}


def test_every_env_source_resolves() -> None:
    p = pod(
        [
            {
                "name": "app",
                "image": "nginx",
                "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}},
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
                "env": [
                    {"name": "PLAIN", "value": "v"},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                    {
                        "name": "MEM_MI",
                        "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
                    },
                    {"name": "MSG", "value": "$(MODE) on $(NODE), $$(MODE) and $(UNDEFINED)"},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
                ],
            }
        ]
    )
    env = env_of(p)
    assert env["CFG_MODE"] == "fast"
    assert "CFG_bad key" not in env
    assert env["password"] == "s3cret"
    assert env["PLAIN"] == "v"
    assert env["MODE"] == "fast"
    assert env["PW"] == "s3cret"
    assert env["NODE"] == "vn-0"
    assert env["HOST_IP"] == "192.168.0.9"
    assert env["APP"] == "web"
    assert env["CPU"] == "1500"
    assert env["MEM_MI"] == "1024"
    assert env["MSG"] == "fast on vn-0, $(MODE) and $(UNDEFINED)"
    assert "OPT" not in env


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}, 'secret "nope" not found'),
        (
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nokey"}}},
            'configmap "cfg" key "nokey" not found',
        ),
    ],
)
def test_missing_required_references_wait(env: dict[str, Any], missing: str) -> None:
    with pytest.raises(spec.Missing, match=missing):
        env_of(pod([{"name": "app", "image": "nginx", "env": [env]}]))


def test_references_lists_what_to_fetch() -> None:
    p = pod(
        [
            {
                "name": "app",
                "image": "i",
                "envFrom": [{"secretRef": {"name": "s1"}}],
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c1", "key": "k"}}}],
            }
        ],
        [
            {"name": "v", "secret": {"secretName": "s2"}},
            {
                "name": "t",
                "projected": {
                    "sources": [{"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "kube-root-ca.crt"}}]
                },
            },
        ],
    )
    refs = spec.references(p)
    assert refs.configmaps == {"c1", "kube-root-ca.crt"}
    assert refs.secrets == {"s1", "s2"}
    assert refs.tokens == {("", 3600)}


def test_volumes_become_files_and_empty_dirs() -> None:
    p = pod(
        [{"name": "app", "image": "i"}],
        [
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "MODE", "path": "mode.txt"}]}},
            {
                "name": "sa",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {
                            "downwardAPI": {
                                "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                            }
                        },
                    ]
                },
            },
        ],
    )
    volumes = {v.name: v for v in spec.build(p, SOURCES, TARGET).volumes}
    assert volumes["scratch"].kind == "emptyDir"
    assert volumes["scratch"].size_limit_gib == 1
    assert volumes["conf"].files == (models.KeyToPath("mode.txt", b"fast"),)
    assert {f.path: f.content for f in volumes["sa"].files} == {"token": b"tok", "namespace": b"ns"}


@pytest.mark.parametrize(
    ("volume", "named"),
    [
        ({"name": "h", "hostPath": {"path": "/"}}, "hostPath"),
        ({"name": "c", "csi": {"driver": "x"}}, "csi"),
    ],
)
def test_unsupported_volumes_fail_fast_naming_the_type(volume: dict[str, Any], named: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=named):
        spec.build(pod([{"name": "app", "image": "i"}], [volume]), SOURCES, TARGET)


def test_tags_token_placement_and_size() -> None:
    built = spec.build(
        pod([{"name": "app", "image": "i", "resources": {"requests": {"cpu": "3", "memory": "5Gi"}}}]), SOURCES, TARGET
    )
    assert built.client_token == "uid-1"
    assert built.tags == {
        models.TAG_CLUSTER: "c1",
        models.TAG_NODE: "vn-0",
        models.TAG_NAMESPACE: "ns",
        models.TAG_NAME: "web",
        models.TAG_POD_UID: "uid-1",
    }
    assert built.placement.vswitches == ("vsw-a", "vsw-b")
    assert (built.cpu, built.memory_gib) == (4, 8)
    assert built.name == "ns-web"


def test_the_profile_applies_to_new_specs() -> None:
    from vnode import settings

    profile = settings.profile_from_configmap({"vSwitchIds": "vsw-z", "defaultCpu": "4", "defaultMemory": "8"})
    built = spec.build(pod([{"name": "app", "image": "i"}]), SOURCES, TARGET, profile)
    assert built.placement.vswitches == ("vsw-z",)
    assert (built.cpu, built.memory_gib) == (4, 8)


def test_the_spec_carries_the_annotations_under_the_profiles_prefixes_only() -> None:
    annotations = {"k8s.aliyun.com/eci-with-eip": "true", "example.com/other": "x"}
    built = spec.build(pod([{"name": "app", "image": "i"}], annotations=annotations), SOURCES, TARGET)
    assert built.annotations == {"k8s.aliyun.com/eci-with-eip": "true"}


def _gpu_pod(gpus: str, annotations: dict[str, str] | None = None, cpu: str = "1") -> objects.Pod:
    limits = {"cpu": cpu, "memory": "2Gi", "nvidia.com/gpu": gpus}
    return pod([{"name": "app", "image": "i", "resources": {"limits": limits}}], annotations=annotations or {})


@pytest.mark.parametrize(
    ("gpus", "cpu", "instance_type", "size"),
    [
        ("1", "1", "ecs.gn6i-c4g1.xlarge", (4, 15)),
        ("1", "6", "ecs.gn7i-c8g1.2xlarge", (8, 30)),
        ("2", "1", "ecs.gn6v-c8g1.4xlarge", (16, 64)),
        ("8", "1", "ecs.gn6v-c8g1.16xlarge", (64, 256)),
    ],
)
def test_gpus_choose_the_smallest_gpu_type_covering_them(
    gpus: str, cpu: str, instance_type: str, size: tuple[int, int]
) -> None:
    built = spec.build(_gpu_pod(gpus, cpu=cpu), SOURCES, TARGET)
    assert (built.instance_type, built.cpu, built.memory_gib) == (instance_type, *size)
    assert built.containers[0].gpus == int(gpus)


def test_a_named_gpu_type_is_kept_and_checked_against_the_gpus_asked() -> None:
    named = {"k8s.aliyun.com/eci-use-specs": "ecs.gn6v-c8g1.8xlarge"}
    built = spec.build(_gpu_pod("4", named), SOURCES, TARGET)
    assert (built.instance_type, built.cpu, built.memory_gib) == ("ecs.gn6v-c8g1.8xlarge", 32, 128)
    with pytest.raises(errors.InvalidSpec, match=re.escape("asks for 8 nvidia.com/gpu; ecs.gn6v-c8g1.8xlarge has 4")):
        spec.build(_gpu_pod("8", named), SOURCES, TARGET)
    bare = pod([{"name": "app", "image": "i"}], annotations=named)
    with pytest.raises(errors.InvalidSpec, match=re.escape("must ask for nvidia.com/gpu")):
        spec.build(bare, SOURCES, TARGET)


@pytest.mark.parametrize(
    ("gpus", "target", "named"),
    [
        ("16", TARGET, "no eci GPU type offers 16 nvidia.com/gpu"),
        ("0.5", TARGET, "'0.5' is not a whole number"),
        ("1", dataclasses.replace(TARGET, profile=profile.NEUTRAL), "it sells no GPU type"),
    ],
)
def test_gpus_no_type_offers_fail_naming_the_count(gpus: str, target: spec.Target, named: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=named):
        spec.build(_gpu_pod(gpus), SOURCES, target)


def test_a_downward_api_volume_carries_resource_fields_as_files() -> None:
    """As the kubelet writes them: the limit (or the request, or the instance's size) over the divisor."""
    items = [
        {"path": "cpu_limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}},
        {"path": "mem_request", "resourceFieldRef": {"containerName": "app", "resource": "requests.memory",
                                                     "divisor": "1Mi"}},
        {"path": "side_cpu", "resourceFieldRef": {"containerName": "side", "resource": "limits.cpu"}},
    ]  # fmt: skip
    p = pod(
        [
            {"name": "app", "image": "i", "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "256Mi"}}},
            {"name": "side", "image": "i"},
        ],
        [
            {"name": "res", "downwardAPI": {"items": items}},
            {"name": "proj", "projected": {"sources": [{"downwardAPI": {"items": items[:1]}}]}},
        ],
    )
    built = spec.build(p, SOURCES, TARGET)
    volumes = {v.name: {f.path: f.content for f in v.files} for v in built.volumes}
    assert volumes["res"]["cpu_limit"] == b"500"
    assert volumes["res"]["mem_request"] == b"256"
    assert volumes["res"]["side_cpu"] == str(math.ceil(built.cpu)).encode(), "no limit: the instance's vCPU, rounded up"
    assert volumes["proj"] == {"cpu_limit": b"500"}


def test_a_volume_of_a_type_vnode_does_not_know_is_refused_saying_so() -> None:
    """Found by tests/fuzz/test_pod_translation.py: the refusal read "this volumes are not supported"."""
    p = pod([{"name": "app", "image": "nginx"}], volumes=[{"name": "ebs", "awsElasticBlockStore": {"volumeID": "v"}}])
    with pytest.raises(errors.InvalidSpec) as caught:
        spec.build(p, SOURCES, TARGET)
    assert caught.value.message.startswith("volume ebs: its type is not supported on virtual nodes (those mounted are ")
    assert "persistentVolumeClaim" in caught.value.message


def test_an_absurd_gpu_count_is_refused_not_a_crash() -> None:
    """Found by tests/fuzz/test_pod_translation.py: formatting the refusal of a 5000-digit count raised ValueError."""
    p = pod([{"name": "app", "image": "nginx", "resources": {"limits": {"nvidia.com/gpu": "9" * 5000}}}])
    with pytest.raises(errors.InvalidSpec, match="larger than Kubernetes allows"):
        spec.build(p, SOURCES, TARGET)


@pytest.mark.parametrize("value", ["5", "1441", "ten", "12.5", ""])
def test_a_max_pending_time_out_of_eci_range_refuses_the_pod_naming_the_annotation(value: str) -> None:
    annotations = {"k8s.aliyun.com/eci-max-pending-minute": value}
    with pytest.raises(errors.InvalidSpec, match=r"eci-max-pending-minute: .* minutes from 10 to 1440"):
        spec.build(pod([{"name": "app", "image": "i"}], annotations=annotations), SOURCES, TARGET)
    annotations["k8s.aliyun.com/eci-max-pending-minute"] = "30"
    assert spec.build(pod([{"name": "app", "image": "i"}], annotations=annotations), SOURCES, TARGET)
