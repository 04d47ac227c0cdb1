"""The mutation rules as tables: each case is a pod, its namespace's labels, and the pod we expect back.

The expected pod is what applying the returned JSONPatch (with the RFC 6902 implementation
``jsonpatch``) gives, so every case also checks that the patch is valid whether the fields it
touches are absent (parents are created) or present (lists are appended to).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from vnode.webhook import mutation

TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}
AWAY = {
    "weight": 100,
    "preference": {"matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]},
}
FORCE_NS = {"virtual-node-affinity-injection": "enabled"}
BURST_NS = {"virtual-node-affinity-injection": "burst"}
ECI_NS = {"alibabacloud.com/eci": "true"}
ON_ECI = {"type": "virtual-kubelet", "vnode.io/provider": "eci"}


def pod(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-", **meta},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **(spec or {})},
    }


def applied(original: dict[str, Any], outcome: mutation.Outcome) -> dict[str, Any]:
    return jsonpatch.apply_patch(copy.deepcopy(original), list(outcome.patch))  # type: ignore[no-any-return]


def with_spec(original: dict[str, Any], **fields: Any) -> dict[str, Any]:
    result = copy.deepcopy(original)
    result["spec"].update(fields)
    return result


FORCE_CASES = [
    pytest.param(pod(), FORCE_NS, {"tolerations": [TOLERATION], "nodeSelector": {"type": "virtual-kubelet"}},
                 id="namespace-enabled-bare-pod"),
    pytest.param(pod(), ECI_NS, {"tolerations": [TOLERATION], "nodeSelector": ON_ECI}, id="namespace-eci"),
    pytest.param(pod(labels={"alibabacloud.com/eci": "true"}), {},
                 {"tolerations": [TOLERATION], "nodeSelector": ON_ECI}, id="pod-eci-label"),
    pytest.param(pod(labels={"alibabacloud.com/eci": "true"}), BURST_NS,
                 {"tolerations": [TOLERATION], "nodeSelector": ON_ECI}, id="pod-label-beats-burst-namespace"),
    # The provider's label pins the pod to that provider's virtual nodes, not an ACI node beside them.
    pytest.param(pod({"nodeSelector": {"disk": "ssd"}}), ECI_NS,
                 {"tolerations": [TOLERATION], "nodeSelector": {"disk": "ssd", **ON_ECI}}, id="eci-pin-appended"),
    pytest.param(pod({"nodeSelector": {"vnode.io/provider": "aci"}}), ECI_NS,
                 {"tolerations": [TOLERATION], "nodeSelector": {"vnode.io/provider": "aci", "type": "virtual-kubelet"}},
                 id="a-provider-the-user-named-is-kept"),
    pytest.param(pod({"tolerations": [{"key": "gpu", "operator": "Exists"}], "nodeSelector": {"disk": "ssd"}}),
                 FORCE_NS,
                 {"tolerations": [{"key": "gpu", "operator": "Exists"}, TOLERATION],
                  "nodeSelector": {"disk": "ssd", "type": "virtual-kubelet"}},
                 id="appends-to-existing-tolerations-and-selector"),
    pytest.param(pod({"nodeSelector": {"kubernetes.io/os": "linux", "topology.kubernetes.io/zone": "a"}}), FORCE_NS,
                 {"tolerations": [TOLERATION],
                  "nodeSelector": {"kubernetes.io/os": "linux", "topology.kubernetes.io/zone": "a",
                                   "type": "virtual-kubelet"}},
                 id="selector-keys-with-slashes-kept"),
    pytest.param(pod({"tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Equal",
                                       "value": "azure", "effect": "NoSchedule"}]}), FORCE_NS,
                 {"tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "azure",
                                   "effect": "NoSchedule"}, TOLERATION],
                  "nodeSelector": {"type": "virtual-kubelet"}},
                 id="one-provider-toleration-is-not-enough"),
    pytest.param(pod({"tolerations": None, "nodeSelector": None}), FORCE_NS,
                 {"tolerations": [TOLERATION], "nodeSelector": {"type": "virtual-kubelet"}}, id="explicit-nulls"),
    pytest.param(pod({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                     "nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}]}}}}),
                 FORCE_NS,
                 {"tolerations": [TOLERATION], "nodeSelector": {"type": "virtual-kubelet"},
                  "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                      "nodeSelectorTerms": [{"matchExpressions": [
                          {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}]}}}},
                 id="compatible-required-affinity-kept"),
]  # fmt: skip


@pytest.mark.parametrize(("original", "namespace_labels", "expected_spec"), FORCE_CASES)
def test_force_mode_adds_toleration_and_selector_keeping_the_users(
    original: dict[str, Any], namespace_labels: dict[str, str], expected_spec: dict[str, Any]
) -> None:
    outcome = mutation.mutate(original, "apps", namespace_labels)
    assert outcome.mode is mutation.Mode.FORCE
    assert outcome.result is mutation.Result.MUTATED
    assert applied(original, outcome) == with_spec(original, **expected_spec)
    assert not outcome.warnings


ALREADY_FORCED = [
    pytest.param(pod({"tolerations": [TOLERATION], "nodeSelector": {"type": "virtual-kubelet"}}), id="exact"),
    pytest.param(pod({"tolerations": [{"operator": "Exists"}], "nodeSelector": {"type": "virtual-kubelet"}}),
                 id="tolerates-everything"),
    pytest.param(pod({"tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                      "nodeSelector": {"type": "virtual-kubelet"}}), id="any-effect"),
]  # fmt: skip


@pytest.mark.parametrize("original", ALREADY_FORCED)
def test_force_mode_is_idempotent_no_duplicate_toleration(original: dict[str, Any]) -> None:
    outcome = mutation.mutate(original, "apps", FORCE_NS)
    assert outcome.result is mutation.Result.UNCHANGED
    assert outcome.patch == ()


def test_force_mode_applied_twice_changes_nothing_more() -> None:
    once = applied(pod(), mutation.mutate(pod(), "apps", FORCE_NS))
    assert mutation.mutate(once, "apps", FORCE_NS).patch == ()


IMPOSSIBLE = [
    pytest.param({"nodeSelector": {"type": "gpu"}}, "nodeSelector type=gpu", id="selector-other-type"),
    pytest.param({"nodeSelector": {"kubernetes.io/os": "windows"}}, "kubernetes.io/os=windows", id="selector-windows"),
    pytest.param({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                 "nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]}]}}}},
                 "required node affinity", id="required-not-in-virtual"),
    pytest.param({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                 "nodeSelectorTerms": [
                     {"matchExpressions": [{"key": "type", "operator": "In", "values": ["gpu"]}]},
                     {"matchExpressions": [{"key": "type", "operator": "DoesNotExist"}]}]}}}},
                 "required node affinity", id="every-term-excludes"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "named"), IMPOSSIBLE)
def test_force_mode_leaves_impossible_pods_unchanged_with_a_warning(spec: dict[str, Any], named: str) -> None:
    outcome = mutation.mutate(pod(spec), "apps", FORCE_NS)
    assert outcome.result is mutation.Result.CONFLICT
    assert outcome.patch == ()
    assert len(outcome.warnings) == 1
    assert named in outcome.warnings[0]


POSSIBLE_AFFINITY = [
    pytest.param([{"matchExpressions": [{"key": "type", "operator": "In", "values": ["gpu"]}]},
                  {"matchExpressions": [{"key": "type", "operator": "In", "values": ["virtual-kubelet"]}]}],
                 id="one-term-allows-virtual"),
    pytest.param([{"matchExpressions": [{"key": "node.example.com/pool", "operator": "In", "values": ["x"]}]}],
                 id="unknown-label-may-match"),
    pytest.param([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}],
                 id="fields-cannot-be-judged"),
]  # fmt: skip


@pytest.mark.parametrize("terms", POSSIBLE_AFFINITY)
def test_force_mode_only_warns_when_the_exclusion_is_certain(terms: list[dict[str, Any]]) -> None:
    spec = {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}
    }
    outcome = mutation.mutate(pod(spec), "apps", FORCE_NS)
    assert outcome.result is mutation.Result.MUTATED
    assert not outcome.warnings


BURST_CASES = [
    pytest.param(pod(), {"tolerations": [TOLERATION], "affinity": {"nodeAffinity": {
                     "preferredDuringSchedulingIgnoredDuringExecution": [AWAY]}}}, id="bare"),
    pytest.param(pod({"affinity": {"podAntiAffinity": {"x": 1}}}),
                 {"tolerations": [TOLERATION], "affinity": {"podAntiAffinity": {"x": 1}, "nodeAffinity": {
                     "preferredDuringSchedulingIgnoredDuringExecution": [AWAY]}}}, id="affinity-without-node-affinity"),
    pytest.param(pod({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                     "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Exists"}]}]}}}}),
                 {"tolerations": [TOLERATION], "affinity": {"nodeAffinity": {
                     "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                         {"matchExpressions": [{"key": "k", "operator": "Exists"}]}]},
                     "preferredDuringSchedulingIgnoredDuringExecution": [AWAY]}}},
                 id="node-affinity-without-preferred"),
    pytest.param(pod({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                     {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "In",
                                                                        "values": ["ssd"]}]}}]}}}),
                 {"tolerations": [TOLERATION], "affinity": {"nodeAffinity": {
                     "preferredDuringSchedulingIgnoredDuringExecution": [
                         {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "In",
                                                                            "values": ["ssd"]}]}}, AWAY]}}},
                 id="appends-to-preferred"),
]  # fmt: skip


@pytest.mark.parametrize(("original", "expected_spec"), BURST_CASES)
def test_burst_mode_tolerates_and_prefers_regular_nodes(
    original: dict[str, Any], expected_spec: dict[str, Any]
) -> None:
    outcome = mutation.mutate(original, "apps", BURST_NS)
    assert outcome.mode is mutation.Mode.BURST
    result = applied(original, outcome)
    expected = with_spec(original, **expected_spec)
    expected["metadata"]["labels"] = {"vnode.io/burst": "true"}
    assert result == expected
    assert "nodeSelector" not in result["spec"]


def test_burst_mode_adds_its_label_beside_existing_ones_and_is_idempotent() -> None:
    original = pod(labels={"app": "web"})
    once = applied(original, mutation.mutate(original, "apps", BURST_NS))
    assert once["metadata"]["labels"] == {"app": "web", "vnode.io/burst": "true"}
    again = mutation.mutate(once, "apps", BURST_NS)
    assert again.result is mutation.Result.UNCHANGED


DAEMONSET_OWNER = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "uid": "u", "controller": True}
UNTOUCHED = [
    pytest.param(pod(), "apps", {}, mutation.Result.NOT_SELECTED, id="unlabelled-namespace"),
    pytest.param(pod(), "apps", {"virtual-node-affinity-injection": "disabled"}, mutation.Result.NOT_SELECTED,
                 id="other-label-value"),
    pytest.param(pod(labels={"alibabacloud.com/eci": "true"}), "kube-system", FORCE_NS, mutation.Result.SKIPPED,
                 id="kube-system"),
    pytest.param(pod(ownerReferences=[DAEMONSET_OWNER]), "apps", FORCE_NS, mutation.Result.SKIPPED, id="daemonset"),
    pytest.param(pod(annotations={"kubernetes.io/config.mirror": "abc"}), "apps", FORCE_NS, mutation.Result.SKIPPED,
                 id="mirror-pod"),
    pytest.param(pod(labels={"vnode.io/virtual-node": "disabled", "alibabacloud.com/eci": "true"}), "apps", FORCE_NS,
                 mutation.Result.SKIPPED, id="opted-out"),
    pytest.param(pod({"nodeName": "worker-1"}), "apps", FORCE_NS, mutation.Result.SKIPPED, id="already-bound"),
    pytest.param(pod(ownerReferences=[DAEMONSET_OWNER]), "apps", BURST_NS, mutation.Result.SKIPPED,
                 id="daemonset-burst"),
]  # fmt: skip


@pytest.mark.parametrize(("original", "namespace", "namespace_labels", "result"), UNTOUCHED)
def test_pods_that_must_not_be_touched_get_no_patch(
    original: dict[str, Any], namespace: str, namespace_labels: dict[str, str], result: mutation.Result
) -> None:
    outcome = mutation.mutate(original, namespace, namespace_labels)
    assert outcome.result is result
    assert outcome.patch == ()
    assert not outcome.warnings


def test_replicaset_owned_pods_are_mutated() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": True}
    assert mutation.mutate(pod(ownerReferences=[owner]), "apps", FORCE_NS).result is mutation.Result.MUTATED
