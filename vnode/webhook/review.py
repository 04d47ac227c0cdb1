"""Read an AdmissionReview v1 request and write its response.

The API server sends ``{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
"request": {...}}`` and expects the same envelope back with ``response.uid`` equal to
``request.uid``. Anything else is a malformed review: the server answers it with HTTP 400
and a message naming what is wrong, rather than guessing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from vnode.webhook import mutation

API_VERSION = "admission.k8s.io/v1"
# The API server truncates longer warnings; keep ours readable in kubectl's output.
MAX_WARNING_CHARS = 256


class MalformedReview(ValueError):
    """The body is not an AdmissionReview v1 request; the message says what is missing or wrong."""


@dataclasses.dataclass(frozen=True)
class Request:
    uid: str
    operation: str
    group: str
    version: str
    kind: str
    namespace: str
    object: Mapping[str, Any]
    dry_run: bool

    @property
    def is_pod_create(self) -> bool:
        return self.operation == "CREATE" and self.group == "" and self.kind == "Pod"


# The parts of a pod the mutation reads, with the API server's types: a pod that has them otherwise
# is malformed (the API server never sends one; anyone else reaching the port may). Other fields
# are not looked at. Fuzzing found that ``"metadata": true`` was an AttributeError and a 500.
class _Expression(msgspec.Struct):
    key: str = ""
    operator: str = ""
    values: list[str] = []


class _Term(msgspec.Struct, rename="camel"):
    match_expressions: list[_Expression] = []
    match_fields: list[_Expression] = []


class _Required(msgspec.Struct, rename="camel"):
    node_selector_terms: list[_Term] = []


class _NodeAffinity(msgspec.Struct):
    requiredDuringSchedulingIgnoredDuringExecution: _Required | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[dict[str, Any]] = []


class _Affinity(msgspec.Struct, rename="camel"):
    node_affinity: _NodeAffinity | None = None


class _Toleration(msgspec.Struct):
    key: str = ""
    operator: str = ""
    effect: str = ""


class _Owner(msgspec.Struct):
    kind: str = ""
    controller: bool | None = None


class _Spec(msgspec.Struct, rename="camel"):
    node_name: str = ""
    tolerations: list[_Toleration] | None = None
    node_selector: dict[str, str] | None = None
    affinity: _Affinity | None = None


class _Meta(msgspec.Struct, rename="camel"):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[_Owner] = []


class _PodShape(msgspec.Struct):
    metadata: _Meta | None = None
    spec: _Spec | None = None


def _check_pod(obj: Any) -> None:
    try:
        msgspec.convert(obj, _PodShape)
    except msgspec.ValidationError as exc:  # "Expected `object`, got `bool` - at `$.metadata`"
        raise MalformedReview(f"request.object is not a Pod: {exc}") from None


def parse(body: bytes) -> Request:
    """Parse and check an AdmissionReview body; raises MalformedReview."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedReview(f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedReview("body is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != "AdmissionReview":
        found = f"{document.get('apiVersion')!r}/{document.get('kind')!r}"
        raise MalformedReview(f"expected apiVersion {API_VERSION} kind AdmissionReview, got {found}")
    request = document.get("request")
    if not isinstance(request, dict):
        raise MalformedReview("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("request.uid is missing")
    operation = request.get("operation")
    if not isinstance(operation, str) or not operation:
        raise MalformedReview("request.operation is missing")
    kind = request.get("kind")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind"), str):
        raise MalformedReview("request.kind is missing or not a GroupVersionKind")
    obj = request.get("object")
    if operation in ("CREATE", "UPDATE") and not isinstance(obj, dict):
        raise MalformedReview(f"request.object is missing for a {operation}")
    namespace = request.get("namespace") or ""
    if not isinstance(namespace, str):
        raise MalformedReview("request.namespace is not a string")
    group = kind.get("group") or ""
    if operation == "CREATE" and group == "" and kind["kind"] == "Pod":  # what the mutation reads
        _check_pod(obj)
    return Request(
        uid=uid,
        operation=operation,
        group=str(group),
        version=str(kind.get("version") or ""),
        kind=kind["kind"],
        namespace=namespace,
        object=obj if isinstance(obj, dict) else {},
        dry_run=bool(request.get("dryRun")),
    )


def response(uid: str, patch: Sequence[mutation.PatchOp] = (), warnings: Sequence[str] = ()) -> dict[str, Any]:
    """An allowing AdmissionReview response, with a JSONPatch when there is one."""
    body: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        body["patchType"] = "JSONPatch"
        body["patch"] = base64.b64encode(json.dumps(list(patch)).encode()).decode()
    if warnings:
        body["warnings"] = [w[:MAX_WARNING_CHARS] for w in warnings]
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": body}
