"""A pod in a review whose scheduling fields have the wrong JSON type is a malformed review (HTTP 400
naming the field), not a 500: found by tests/fuzz/test_webhook_review.py (``"metadata": true`` was
an AttributeError; an integer ``ownerReferences`` or ``values`` a TypeError)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from vnode.webhook import admission, metrics, namespaces, review


def body(obj: dict[str, Any]) -> bytes:
    request = {
        "uid": "u-1",
        "operation": "CREATE",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": "forced",
        "object": obj,
    }
    return json.dumps({"apiVersion": review.API_VERSION, "kind": "AdmissionReview", "request": request}).encode()


def answer(obj: dict[str, Any]) -> dict[str, Any]:
    labels = namespaces.StaticNamespaces({"forced": {"virtual-node-affinity-injection": "enabled"}})
    handler = admission.Handler(labels, metrics=metrics.Metrics())
    return asyncio.run(handler.answer(body(obj)))


EXPRESSION_VALUES_NOT_A_LIST = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "type", "operator": "In", "values": 3}]}]
        }
    }
}


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"metadata": True, "spec": {}}, "$.metadata"),
        ({"metadata": {"ownerReferences": 5}, "spec": {}}, "$.metadata.ownerReferences"),
        ({"metadata": {"labels": ["a"]}, "spec": {}}, "$.metadata.labels"),
        ({"metadata": {}, "spec": {"tolerations": "abc"}}, "$.spec.tolerations"),
        ({"metadata": {}, "spec": {"affinity": EXPRESSION_VALUES_NOT_A_LIST}}, "values"),
    ],
)
def test_a_pod_with_wrongly_typed_fields_is_malformed_naming_the_field(obj: dict[str, Any], where: str) -> None:
    with pytest.raises(review.MalformedReview, match=r"request\.object is not a Pod") as caught:
        answer(obj)
    assert where in str(caught.value)


def test_a_well_typed_pod_is_still_patched() -> None:
    got = answer({"metadata": {"name": "p", "labels": {"app": "a"}}, "spec": {"containers": [], "tolerations": []}})
    assert got["response"]["allowed"] is True
    assert got["response"]["patch"]
