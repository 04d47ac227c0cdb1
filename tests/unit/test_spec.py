"""Pod → instance spec: env resolution (every source, optional refs, $(VAR)), volumes, tags, failures."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vnode import errors, models
from vnode.kube import objects
from vnode.node import spec
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
