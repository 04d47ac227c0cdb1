"""Fuzz the webhook's AdmissionReview bodies: a 400 naming the problem or an allowing answer, never a 500.

In-process through ``admission.Handler.answer`` (what ``POST /mutate`` calls; any exception but
``MalformedReview`` becomes the server's 500 "internal error"), with namespaces whose labels ask
for force or burst mode. Reviews are random JSON, reviews with a random ``object``, and reviews
of well-typed pods with random scheduling fields; for those, the answer's JSONPatch must apply
to the pod (the API server applies it) and be idempotent (a second review of the patched pod
adds nothing).
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import jsonpatch
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz import strategies as hs
from vnode.webhook import admission, metrics, mutation, namespaces, review

NAMESPACES = {
    "force": {mutation.INJECTION_LABEL: "enabled"},
    "burst": {mutation.INJECTION_LABEL: "burst"},
    "plain": {},
    "kube-system": {mutation.INJECTION_LABEL: "enabled"},
}

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hs.tricky, hs.any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(hs.any_text, inner, max_size=3)),
    max_leaves=10,
)
labels = st.dictionaries(
    st.sampled_from(("app", mutation.OPT_OUT_LABEL, mutation.BURST_LABEL, "alibabacloud.com/eci", "type")),
    st.sampled_from(("true", "disabled", "x", "")),
    max_size=3,
)
expression = st.fixed_dictionaries(
    {
        "key": st.sampled_from(("type", "kubernetes.io/os", "kubernetes.io/role", "zone")),
        "operator": st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Near")),
    },
    optional={"values": st.lists(st.one_of(st.sampled_from(("virtual-kubelet", "linux", "1")), hs.tricky), max_size=2)},
)
typed_spec = st.fixed_dictionaries(
    {"containers": st.just([{"name": "app", "image": "nginx"}])},
    optional={
        "tolerations": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "key": st.sampled_from(("", mutation.TAINT_KEY, "other")),
                    "operator": st.sampled_from(("Exists", "Equal")),
                    "effect": st.sampled_from(("", "NoSchedule", "NoExecute")),
                },
            ),
            max_size=2,
        ),
        "nodeSelector": st.dictionaries(
            st.sampled_from(("type", "kubernetes.io/os", "disk", "a/b~c")), hs.any_text, max_size=2
        ),
        "affinity": st.fixed_dictionaries(
            {},
            optional={
                "nodeAffinity": st.fixed_dictionaries(
                    {},
                    optional={
                        "requiredDuringSchedulingIgnoredDuringExecution": st.fixed_dictionaries(
                            {
                                "nodeSelectorTerms": st.lists(
                                    st.fixed_dictionaries(
                                        {}, optional={"matchExpressions": st.lists(expression, max_size=2)}
                                    ),
                                    max_size=2,
                                )
                            }
                        ),
                        "preferredDuringSchedulingIgnoredDuringExecution": st.lists(
                            st.just(dict(mutation.AWAY_FROM_VIRTUAL)), max_size=1
                        ),
                    },
                )
            },
        ),
    },
)
typed_pod = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {"name": st.just("p")},
            optional={"labels": labels, "annotations": st.dictionaries(hs.any_text, hs.any_text)},
        ),
        "spec": typed_spec,
    }
)


def envelope(obj: Any, namespace: Any = "force", **request: Any) -> bytes:
    body = {
        "apiVersion": review.API_VERSION,
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": namespace,
            "object": obj,
            **request,
        },
    }
    return json.dumps(body).encode()


def answer(body: bytes) -> dict[str, Any] | None:
    """The handler's answer, or None for a malformed review; any other exception fails the test."""
    handler = admission.Handler(namespaces.StaticNamespaces(NAMESPACES), metrics=metrics.Metrics())
    refusal = ""
    try:
        got = asyncio.run(asyncio.wait_for(handler.answer(body), timeout=10))
    except review.MalformedReview as exc:
        refusal = str(exc) or "(no reason)"
    if refusal:
        assert refusal != "(no reason)"
        event("malformed")
        return None
    assert got["response"]["allowed"] is True
    event("patched" if "patch" in got["response"] else "unchanged")
    return got


def patch_of(got: dict[str, Any]) -> list[dict[str, Any]]:
    raw = got["response"].get("patch")
    return json.loads(base64.b64decode(raw)) if raw else []


@given(raw=st.one_of(st.binary(max_size=100), json_values.map(lambda v: json.dumps(v).encode())))
def test_random_bodies_are_malformed_or_answered(raw: bytes) -> None:
    answer(raw)


@given(
    obj=st.one_of(json_values, st.fixed_dictionaries({"metadata": json_values, "spec": json_values})),
    namespace=st.one_of(st.sampled_from(sorted(NAMESPACES)), json_values),
    uid=st.one_of(st.just("u-1"), json_values),
    operation=st.one_of(st.just("CREATE"), json_values),
)
def test_reviews_of_any_object_are_malformed_or_answered(obj: Any, namespace: Any, uid: Any, operation: Any) -> None:
    got = answer(envelope(obj, namespace, uid=uid, operation=operation))
    if got is not None:
        assert got["response"]["uid"] == uid


@given(pod=typed_pod, namespace=st.sampled_from(sorted(NAMESPACES)))
def test_the_patch_of_a_typed_pod_applies_and_is_idempotent(pod: dict[str, Any], namespace: str) -> None:
    got = answer(envelope(pod, namespace))
    assert got is not None
    assert got["response"]["uid"] == "u-1"
    patched = jsonpatch.apply_patch(pod, patch_of(got))
    again = answer(envelope(patched, namespace))
    assert again is not None
    assert patch_of(again) == []
