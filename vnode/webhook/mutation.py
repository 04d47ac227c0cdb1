"""Decide what a new pod needs to run on virtual nodes, and say it as a JSONPatch.

Pure functions over the pod's JSON, so that every rule is checked by table tests without a
server. Two modes:

* **force**: the pod must run on virtual nodes: it gets the toleration of the
  ``virtual-kubelet.io/provider`` taint and the node selector ``type=virtual-kubelet``; when a
  provider's own label forced it (``alibabacloud.com/eci=true``), also ``vnode.io/provider=<name>``,
  so that it lands on that provider's virtual nodes and not on another's beside them.
* **burst** (AKS style): the pod may overflow to virtual nodes: it gets the toleration and a
  *preferred* node affinity away from them, so the scheduler fills regular nodes first. It is
  also labelled as a burst pod, so that the deletion-cost controller can find it once bound.

What the user wrote is kept: existing tolerations, node selector and affinity are appended to,
never replaced. When the user's own constraints rule virtual nodes out (a ``nodeSelector``
``type=gpu``, a required affinity that excludes ``type=virtual-kubelet``), a force-mode pod is
left as it is and the review carries a warning: changing it would make it unschedulable.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from vnode.provider import registry

# What the virtual nodes advertise (vnode's node package registers them so). Only these keys
# can be judged; a constraint on any other label may or may not match a virtual node.
VIRTUAL_NODE_LABELS: Mapping[str, str] = {
    "type": "virtual-kubelet",
    "kubernetes.io/role": "agent",
    "kubernetes.io/os": "linux",
}
PROVIDER_LABEL = "vnode.io/provider"  # on every virtual node: its provider's name
TAINT_KEY = "virtual-kubelet.io/provider"
TOLERATION: Mapping[str, str] = {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
AWAY_FROM_VIRTUAL: Mapping[str, Any] = {
    "weight": 100,
    "preference": {"matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]},
}

INJECTION_LABEL = "virtual-node-affinity-injection"  # on a namespace: "enabled" (force) or "burst"
OPT_OUT_LABEL = "vnode.io/virtual-node"  # on a pod: "disabled" leaves it alone
BURST_LABEL = "vnode.io/burst"  # set by the webhook on burst pods: "true"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
PROTECTED_NAMESPACES = frozenset({"kube-system"})


@dataclasses.dataclass(frozen=True)
class ForceLabel:
    """A label (on a namespace or a pod) by which a provider's users send pods to virtual nodes."""

    provider: str
    key: str
    value: str


def _force_labels() -> tuple[ForceLabel, ...]:
    return tuple(ForceLabel(found.name, key, value) for found in registry.builtin() for key, value in found.labels)


#: The labels the built-in providers' profiles declare, each forcing pods onto virtual nodes.
FORCE_LABELS = _force_labels()


def forced_by(labels: Mapping[str, str]) -> ForceLabel | None:
    """The first force label ``labels`` carry, if any."""
    return next((f for f in FORCE_LABELS if labels.get(f.key) == f.value), None)


class Mode(enum.StrEnum):
    FORCE = "force"
    BURST = "burst"
    NONE = "none"


class Result(enum.StrEnum):
    """What a review did, for metrics and logs."""

    MUTATED = "mutated"
    UNCHANGED = "unchanged"  # selected, but the pod already had everything
    CONFLICT = "conflict"  # selected, but the user's constraints exclude virtual nodes: warned
    SKIPPED = "skipped"  # never touched: kube-system, DaemonSet, mirror, opted out, already bound
    NOT_SELECTED = "not-selected"  # no label asks for virtual nodes


class PatchOp(TypedDict):
    op: Literal["add"]
    path: str
    value: Any


@dataclasses.dataclass(frozen=True)
class Choice:
    mode: Mode
    skipped: bool
    reason: str
    provider: str = ""  # the provider whose own label forced the pod, if one did


@dataclasses.dataclass(frozen=True)
class Outcome:
    mode: Mode
    result: Result
    reason: str
    patch: tuple[PatchOp, ...] = ()
    warnings: tuple[str, ...] = ()


def choose(pod: Mapping[str, Any], namespace: str, namespace_labels: Mapping[str, str]) -> Choice:
    """Which mode a new pod gets, from its own labels and its namespace's. Exclusions come first."""
    meta = _mapping(pod.get("metadata"))
    labels = _mapping(meta.get("labels"))
    if namespace in PROTECTED_NAMESPACES:
        return Choice(Mode.NONE, True, f"namespace {namespace} is never touched")
    if labels.get(OPT_OUT_LABEL) == "disabled":
        return Choice(Mode.NONE, True, f"pod label {OPT_OUT_LABEL}=disabled")
    if MIRROR_ANNOTATION in _mapping(meta.get("annotations")):
        return Choice(Mode.NONE, True, "mirror pod")
    for owner in meta.get("ownerReferences") or ():
        if isinstance(owner, Mapping) and owner.get("kind") == "DaemonSet" and owner.get("controller"):
            return Choice(Mode.NONE, True, "DaemonSet pod")
    if _mapping(pod.get("spec")).get("nodeName"):
        return Choice(Mode.NONE, True, "already bound to a node")
    forced = forced_by(labels)
    if forced is not None:
        return Choice(Mode.FORCE, False, f"pod label {forced.key}={forced.value}", forced.provider)
    injection = namespace_labels.get(INJECTION_LABEL)
    if injection == "enabled":
        return Choice(Mode.FORCE, False, f"namespace label {INJECTION_LABEL}=enabled")
    forced = forced_by(namespace_labels)
    if forced is not None:
        return Choice(Mode.FORCE, False, f"namespace label {forced.key}={forced.value}", forced.provider)
    if injection == "burst":
        return Choice(Mode.BURST, False, f"namespace label {INJECTION_LABEL}=burst")
    return Choice(Mode.NONE, False, "no label asks for virtual nodes")


def mutate(pod: Mapping[str, Any], namespace: str, namespace_labels: Mapping[str, str]) -> Outcome:
    """The whole decision for one pod: its mode, the patch, and any warning. Idempotent on its own output."""
    choice = choose(pod, namespace, namespace_labels)
    if choice.skipped:
        return Outcome(choice.mode, Result.SKIPPED, choice.reason)
    if choice.mode is Mode.FORCE:
        return _force(pod, choice.reason, choice.provider)
    if choice.mode is Mode.BURST:
        return _burst(pod, choice.reason)
    return Outcome(Mode.NONE, Result.NOT_SELECTED, choice.reason)


def _force(pod: Mapping[str, Any], reason: str, provider: str = "") -> Outcome:
    spec = _mapping(pod.get("spec"))
    if excluded := excludes_virtual_nodes(spec):
        warning = f"vnode: pod left unchanged, not sent to virtual nodes: {excluded}"
        return Outcome(Mode.FORCE, Result.CONFLICT, reason, warnings=(warning,))
    ops = [*_toleration_ops(spec)]
    wanted = {"type": VIRTUAL_NODE_LABELS["type"], **({PROVIDER_LABEL: provider} if provider else {})}
    selector = spec.get("nodeSelector")
    if not isinstance(selector, Mapping):
        ops.append(_add("/spec/nodeSelector", wanted))
    else:  # what the user set is kept (a type other than virtual-kubelet was refused above)
        ops += [_add(_pointer("spec", "nodeSelector", k), v) for k, v in wanted.items() if k not in selector]
    return _outcome(Mode.FORCE, reason, ops)


def _burst(pod: Mapping[str, Any], reason: str) -> Outcome:
    spec = _mapping(pod.get("spec"))
    ops = [*_toleration_ops(spec), *_preference_ops(spec), *_label_ops(_mapping(pod.get("metadata")))]
    return _outcome(Mode.BURST, reason, ops)


def _outcome(mode: Mode, reason: str, ops: list[PatchOp]) -> Outcome:
    return Outcome(mode, Result.MUTATED if ops else Result.UNCHANGED, reason, tuple(ops))


def _toleration_ops(spec: Mapping[str, Any]) -> list[PatchOp]:
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, Sequence):
        return [_add("/spec/tolerations", [dict(TOLERATION)])]
    if any(isinstance(t, Mapping) and _tolerates_every_provider(t) for t in tolerations):
        return []
    return [_add("/spec/tolerations/-", dict(TOLERATION))]


def _tolerates_every_provider(toleration: Mapping[str, Any]) -> bool:
    """True if the toleration already covers ``virtual-kubelet.io/provider=<any>:NoSchedule``."""
    if toleration.get("operator") != "Exists":
        return False  # Equal tolerates one provider's value only
    return toleration.get("key") in (None, "", TAINT_KEY) and toleration.get("effect") in (None, "", "NoSchedule")


def _preference_ops(spec: Mapping[str, Any]) -> list[PatchOp]:
    affinity = spec.get("affinity")
    if not isinstance(affinity, Mapping):
        return [_add("/spec/affinity", {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            dict(AWAY_FROM_VIRTUAL)]}})]  # fmt: skip
    node_affinity = affinity.get("nodeAffinity")
    if not isinstance(node_affinity, Mapping):
        return [_add("/spec/affinity/nodeAffinity", {"preferredDuringSchedulingIgnoredDuringExecution": [
            dict(AWAY_FROM_VIRTUAL)]})]  # fmt: skip
    preferred = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
    path = "/spec/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution"
    if not isinstance(preferred, Sequence):
        return [_add(path, [dict(AWAY_FROM_VIRTUAL)])]
    wanted = AWAY_FROM_VIRTUAL["preference"]
    if any(isinstance(p, Mapping) and p.get("preference") == wanted for p in preferred):
        return []
    return [_add(path + "/-", dict(AWAY_FROM_VIRTUAL))]


def _label_ops(meta: Mapping[str, Any]) -> list[PatchOp]:
    labels = meta.get("labels")
    if not isinstance(labels, Mapping):
        return [_add("/metadata/labels", {BURST_LABEL: "true"})]
    if labels.get(BURST_LABEL) == "true":
        return []
    return [_add(_pointer("metadata", "labels", BURST_LABEL), "true")]


def excludes_virtual_nodes(spec: Mapping[str, Any]) -> str | None:
    """Why the pod's own scheduling constraints rule out every virtual node, or None if they may not.

    Only labels that virtual nodes are known to carry are judged; anything else is assumed to
    possibly match, so a warning is given only when the exclusion is certain.
    """
    selector = spec.get("nodeSelector")
    if isinstance(selector, Mapping):
        for key, value in selector.items():
            expected = VIRTUAL_NODE_LABELS.get(key)
            if expected is not None and value != expected:
                return f"its nodeSelector {key}={value} excludes virtual nodes ({key}={expected})"
    affinity = _mapping(_mapping(spec.get("affinity")).get("nodeAffinity"))
    required = _mapping(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    terms = required.get("nodeSelectorTerms")
    if isinstance(terms, Sequence) and terms and all(_term_excludes(_mapping(term)) for term in terms):
        return "its required node affinity excludes virtual nodes (type=virtual-kubelet)"
    return None


def _term_excludes(term: Mapping[str, Any]) -> bool:
    expressions = term.get("matchExpressions") or ()
    if not expressions and not term.get("matchFields"):
        return True  # an empty term matches no node at all
    for expression in expressions:
        expression = _mapping(expression)
        key = expression.get("key")
        if isinstance(key, str) and key in VIRTUAL_NODE_LABELS and not _requirement_holds(expression, key):
            return True
    return False


def _requirement_holds(expression: Mapping[str, Any], key: str) -> bool:
    value = VIRTUAL_NODE_LABELS[key]
    values = list(expression.get("values") or [])
    match expression.get("operator"):
        case "In":
            return value in values
        case "NotIn":
            return value not in values
        case "Exists":
            return True
        case "DoesNotExist":
            return False
        case "Gt" | "Lt" as operator:
            try:
                ours, theirs = int(value), int(values[0])
            except (ValueError, IndexError):
                return False
            return ours > theirs if operator == "Gt" else ours < theirs
    return True  # an operator we do not know: the API server will judge it


def _add(path: str, value: Any) -> PatchOp:
    return {"op": "add", "path": path, "value": value}


def _pointer(*parts: str) -> str:
    """A JSON Pointer (RFC 6901): ``~`` and ``/`` inside a key are escaped."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
