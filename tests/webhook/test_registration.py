"""The MutatingWebhookConfiguration's shape: both client configs, and selectors that pick each pod once.

The selector table evaluates the configuration's namespaceSelector and objectSelector the
way the API server does (every requirement must hold; NotIn holds for an absent label), for
every combination of the labels that matter.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from vnode.webhook import registration


def holds(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    value = labels.get(requirement["key"])
    if requirement["operator"] == "In":
        return value in requirement["values"]
    assert requirement["operator"] == "NotIn"
    return value not in requirement["values"]


def matching_entries(config: Mapping[str, Any], namespace: Mapping[str, str], pod: Mapping[str, str]) -> list[str]:
    return [
        hook["name"]
        for hook in config["webhooks"]
        if all(holds(r, namespace) for r in hook["namespaceSelector"]["matchExpressions"])
        and all(holds(r, pod) for r in hook["objectSelector"]["matchExpressions"])
    ]


NAMESPACE_LABELS = [
    {},
    {"virtual-node-affinity-injection": "enabled"},
    {"virtual-node-affinity-injection": "burst"},
    {"virtual-node-affinity-injection": "disabled"},
    {"alibabacloud.com/eci": "true"},
    {"alibabacloud.com/eci": "true", "virtual-node-affinity-injection": "burst"},
]
POD_LABELS = [
    {},
    {"alibabacloud.com/eci": "true"},
    {"alibabacloud.com/eci": "true", "vnode.io/virtual-node": "disabled"},
]


def expected_calls(namespace: Mapping[str, str], pod: Mapping[str, str]) -> int:
    if namespace.get("kubernetes.io/metadata.name") == "kube-system" or pod.get("vnode.io/virtual-node") == "disabled":
        return 0
    asks = (
        namespace.get("virtual-node-affinity-injection") in ("enabled", "burst")
        or namespace.get("alibabacloud.com/eci") == "true"
        or pod.get("alibabacloud.com/eci") == "true"
    )
    return 1 if asks else 0


@pytest.mark.parametrize("namespace_name", ["apps", "kube-system"])
def test_selectors_send_each_pod_that_asks_exactly_once_and_no_other(namespace_name: str) -> None:
    config = registration.configuration(registration.Registration(url="https://127.0.0.1:1/mutate"), b"CA")
    for ns_labels, pod_labels in itertools.product(NAMESPACE_LABELS, POD_LABELS):
        namespace = {**ns_labels, "kubernetes.io/metadata.name": namespace_name}
        hits = matching_entries(config, namespace, pod_labels)
        assert len(hits) == expected_calls(namespace, pod_labels), (namespace, pod_labels, hits)


def test_extra_namespace_labels_confine_every_entry() -> None:
    reg = registration.Registration(url="https://127.0.0.1:1/mutate", namespace_match={"team": "a"})
    config = registration.configuration(reg, b"CA")
    forced = {"virtual-node-affinity-injection": "enabled"}
    assert matching_entries(config, forced, {}) == []
    assert len(matching_entries(config, {**forced, "team": "a"}, {})) == 1


def test_url_and_service_client_configs() -> None:
    by_url = registration.configuration(registration.Registration(url="https://127.0.0.1:8443/mutate"), b"PEM")
    client = by_url["webhooks"][0]["clientConfig"]
    assert client == {"caBundle": base64.b64encode(b"PEM").decode(), "url": "https://127.0.0.1:8443/mutate"}

    service = registration.ServiceRef("vnode-system", "vnode-webhook", 443)
    in_cluster = registration.configuration(registration.Registration(service=service), b"PEM")
    assert in_cluster["webhooks"][0]["clientConfig"]["service"] == {
        "namespace": "vnode-system",
        "name": "vnode-webhook",
        "path": "/mutate",
        "port": 443,
    }
    assert service.hosts()[0] == "vnode-webhook.vnode-system.svc"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="neither-url-nor-service"),
        pytest.param({"url": "https://x/mutate", "service": registration.ServiceRef("a", "b")}, id="both"),
        pytest.param({"url": "https://x/mutate", "timeout_seconds": 31}, id="timeout-too-long"),
    ],
)
def test_bad_registrations_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"url or service|timeoutSeconds"):
        registration.Registration(**kwargs)


def test_every_entry_is_pods_create_only_with_no_side_effects() -> None:
    reg = registration.Registration(url="https://127.0.0.1:1/mutate", failure_policy="Fail", timeout_seconds=5)
    for hook in registration.configuration(reg, b"CA")["webhooks"]:
        assert hook["rules"] == [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
             "scope": "Namespaced"}
        ]  # fmt: skip
        assert (hook["sideEffects"], hook["admissionReviewVersions"]) == ("None", ["v1"])
        assert (hook["failurePolicy"], hook["timeoutSeconds"]) == ("Fail", 5)
