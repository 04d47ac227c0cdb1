"""Missing ConfigMaps and Secrets as virtual-kubelet's Events: the Mandatory* and Optional* reasons and messages."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vnode.kube import objects
from vnode.node import absent, spec


def pod(env: list[dict[str, Any]], env_from: list[dict[str, Any]] | None = None, **extra: Any) -> objects.Pod:
    body = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1"},
        "spec": {"containers": [{"name": "app", "image": "nginx", "env": env, "envFrom": env_from or []}], **extra},
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


def ref(kind: str, name: str, key: str, optional: bool) -> dict[str, Any]:
    field = "configMapKeyRef" if kind == "configmap" else "secretKeyRef"
    return {"name": "X", "valueFrom": {field: {"name": name, "key": key, "optional": optional}}}


SOURCES = spec.Sources(configmaps={"cfg": {"a": b"1"}, "config-map-0": None}, secrets={"secret-0": None})


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        (spec.Missing("configmap", "config-map-0"), "MandatoryConfigMapNotFound"),
        (spec.Missing("secret", "secret-0"), "MandatorySecretNotFound"),
        (spec.Missing("configmap", "cfg", "nokey"), "MandatoryConfigMapKeyNotFound"),
        (spec.Missing("secret", "s", "k"), "MandatorySecretKeyNotFound"),
        (spec.Missing("serviceaccount", "default"), ""),
    ],
)
def test_mandatory_reasons(missing: spec.Missing, reason: str) -> None:
    assert absent.mandatory_reason(missing) == reason


def test_the_suites_mandatory_references_raise_with_virtual_kubelets_message() -> None:
    for kind, name in (("configmap", "config-map-0"), ("secret", "secret-0")):
        with pytest.raises(spec.Missing) as raised:
            spec.build(pod([ref(kind, name, "key_0", False)]), SOURCES, spec.Target("c", "n"))
        assert str(raised.value) == f'{kind} "{name}" not found'


@pytest.mark.parametrize(
    ("env", "reason", "message"),
    [
        (
            ref("configmap", "config-map-0", "key_0", True),
            "OptionalConfigMapNotFound",
            'skipping optional envvar "X": configmap "config-map-0" not found',
        ),
        (
            ref("secret", "secret-0", "key_0", True),
            "OptionalSecretNotFound",
            'skipping optional envvar "X": secret "secret-0" not found',
        ),
        (
            ref("configmap", "cfg", "nokey", True),
            "OptionalConfigMapKeyNotFound",
            'skipping optional envvar "X": key "nokey" does not exist in configmap "cfg"',
        ),
    ],
)
def test_optional_references_that_are_missing_are_reported(env: dict[str, Any], reason: str, message: str) -> None:
    p = pod([env])
    spec.build(p, SOURCES, spec.Target("c", "n"))  # the pod starts without them
    [event] = absent.optional(p, SOURCES)
    assert (event.reason, event.message, event.type) == (reason, message, "Warning")


def test_env_from_and_volumes_once_each_and_present_ones_not_at_all() -> None:
    p = pod(
        [ref("configmap", "cfg", "a", True), ref("configmap", "cfg", "a", False)],
        [{"secretRef": {"name": "secret-0", "optional": True}}, {"configMapRef": {"name": "cfg"}}],
        volumes=[
            {"name": "v", "configMap": {"name": "config-map-0", "optional": True}},
            {"name": "w", "secret": {"secretName": "secret-0", "optional": True}},
        ],
    )
    found = [(e.reason, e.message) for e in absent.optional(p, SOURCES)]
    assert found == [
        ("OptionalSecretNotFound", 'secret "secret-0" not found'),
        ("OptionalConfigMapNotFound", 'volume "v": configmap "config-map-0" not found'),
        ("OptionalSecretNotFound", 'volume "w": secret "secret-0" not found'),
    ]
