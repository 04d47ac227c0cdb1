"""The pod-spec catalogue as tables: what each provider maps, emulates, ignores or refuses, and the refusal message."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest

from vnode import models
from vnode.kube import objects
from vnode.node import fields, status
from vnode.provider import registry

T = fields.Treatment
#: What the API server gives every pod that omits these: none of it counts as set.
DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "serviceAccountName": "default",
    "securityContext": {},
    "schedulerName": "default-scheduler",
    "enableServiceLinks": True,
    "priority": 0,
    "preemptionPolicy": "PreemptLowerPriority",
    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
}
CONTAINER_DEFAULTS: dict[str, Any] = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "imagePullPolicy": "IfNotPresent",
    "resources": {},
}


def pod(container: dict[str, Any] | None = None, **spec: Any) -> objects.Pod:
    app = {"name": "app", "image": "nginx", **CONTAINER_DEFAULTS, **(container or {})}
    body = {"metadata": {"name": "p", "namespace": "n"}, "spec": {**DEFAULTS, "containers": [app], **spec}}
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


def refused(p: objects.Pod, provider: str = "eci") -> list[str]:
    found = registry.profile_of(provider)
    return [line.split(":")[0] for line in fields.refusals(p, found.pod_fields, found.ignored_fields)]


def test_paths_are_unique_and_containers_fields_are_under_containers() -> None:
    paths = [f.path for f in fields.POD + fields.POD_SUB + fields.CONTAINER]
    assert len(paths) == len(set(paths))
    assert all("." not in f.path for f in fields.POD)
    assert all(f.path.startswith("containers.") for f in fields.CONTAINER)
    assert all(f.path.split(".")[0] in fields.PARENTS for f in fields.POD_SUB)


@pytest.mark.parametrize("provider", [p.name for p in registry.builtin()])
def test_every_field_a_profile_names_has_a_row(provider: str) -> None:
    found = registry.profile_of(provider)
    assert set(found.pod_fields) | set(found.ignored_fields) <= set(fields.BY_PATH)


@pytest.mark.parametrize("provider", ["eci", "aci", "process", "fake"])
def test_a_pod_with_only_defaults_is_not_refused(provider: str) -> None:
    assert refused(pod()) == []


# (spec, container, provider, the refused fields)
TABLE = [
    ({"hostNetwork": True}, {}, "eci", ["spec.hostNetwork"]),
    ({"hostPID": True, "hostIPC": True}, {}, "eci", ["spec.hostPID", "spec.hostIPC"]),
    ({}, {"securityContext": {"privileged": True}}, "eci", ["spec.containers[0].securityContext.privileged"]),
    ({}, {"securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_ADMIN"]}}}, "eci", []),
    ({}, {"securityContext": {"capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}},
     "eci", ["spec.containers[0].securityContext.capabilities.drop",
             "spec.containers[0].securityContext.seccompProfile"]),
    ({}, {"securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_ADMIN"]}}}, "aci", []),
    ({"securityContext": {"runAsUser": 1000, "runAsGroup": 1000}}, {}, "aci", []),
    ({}, {"securityContext": {"capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}}, "aci",
     ["spec.containers[0].securityContext.readOnlyRootFilesystem"]),
    # The restricted Pod Security Standard's container shape, with its user named: it runs on ACI.
    ({}, {"securityContext": {"allowPrivilegeEscalation": False, "runAsUser": 1000, "runAsGroup": 1000,
                              "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}, "aci", []),
    ({}, {"securityContext": {"allowPrivilegeEscalation": False, "runAsGroup": 1000}}, "eci",
     ["spec.containers[0].securityContext.runAsGroup",
      "spec.containers[0].securityContext.allowPrivilegeEscalation"]),
    ({}, {"securityContext": {"privileged": True}}, "process", ["spec.containers[0].securityContext.privileged"]),
    ({}, {"securityContext": {"privileged": False}}, "process", []),
    # The chart's own containers, which the playground runs through the process provider.
    ({}, {"securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                              "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}},
     "process", []),
    ({"securityContext": {"runAsUser": 1000, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}}, {},
     "eci", []),
    ({"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}}, {}, "eci", []),  # checked, not refused
    ({}, {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}}, "aci", []),
    ({"securityContext": {"fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}}}, {}, "eci",
     ["spec.securityContext.fsGroup", "spec.securityContext.seccompProfile"]),
    ({"securityContext": {}}, {}, "aci", []),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}, {}, "eci", []),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["corp.example"],
                                         "options": [{"name": "ndots", "value": "2"}]}}, {}, "aci", []),
    ({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}]}, {}, "eci", []),
    ({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}]}, {}, "aci", ["spec.hostAliases"]),
    ({"imagePullSecrets": [{"name": "reg"}]}, {}, "eci", []),
    ({"imagePullSecrets": [{"name": "reg"}]}, {}, "aci", []),
    ({"activeDeadlineSeconds": 60}, {}, "eci", []),
    ({"activeDeadlineSeconds": 60}, {}, "process", []),
    ({"terminationGracePeriodSeconds": 60}, {}, "eci", []),
    ({"terminationGracePeriodSeconds": 60}, {}, "aci", []),  # accepted, not applied: docs/pod-spec.md says why
    ({"hostname": "web-0", "subdomain": "web"}, {}, "eci", []),
    ({"hostname": "web-0"}, {}, "aci", ["spec.hostname"]),
    ({"ephemeralContainers": [{"name": "debug", "image": "busybox"}]}, {}, "eci", ["spec.ephemeralContainers"]),
    ({"readinessGates": [{"conditionType": "x"}], "nodeSelector": {"a": "b"}}, {}, "eci", []),
    ({}, {"lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}, "eci", []),
    ({}, {"lifecycle": {"postStart": {"exec": {"command": ["true"]}}}}, "aci", ["spec.containers[0].lifecycle"]),
    ({}, {"startupProbe": {"exec": {"command": ["true"]}}}, "eci", []),  # folded into liveness and readiness
    ({}, {"startupProbe": {"exec": {"command": ["true"]}}}, "aci", []),
    ({}, {"livenessProbe": {"exec": {"command": ["true"]}}}, "eci", []),
    ({}, {"livenessProbe": {"exec": {"command": ["true"]}}}, "process", []),
    ({}, {"startupProbe": {"exec": {"command": ["true"]}}}, "process", []),
    ({}, {"terminationMessagePolicy": "FallbackToLogsOnError"}, "eci", []),
    ({}, {"terminationMessagePolicy": "FallbackToLogsOnError"}, "aci",
     ["spec.containers[0].terminationMessagePolicy"]),
    ({}, {"stdin": True, "tty": True}, "eci", []),
    ({}, {"stdin": True, "tty": True}, "aci", ["spec.containers[0].stdin", "spec.containers[0].tty"]),
    ({"initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "Always"}]}, {}, "eci",
     ["spec.initContainers[0].restartPolicy"]),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "container", "provider", "expected"), TABLE)
def test_refused_fields(spec: dict[str, Any], container: dict[str, Any], provider: str, expected: list[str]) -> None:
    assert refused(pod(container, **spec), provider) == expected


def test_never_fields_are_refused_even_if_a_profile_declares_them() -> None:
    for path in fields.NEVER:
        assert fields.treatment(fields.BY_PATH[path], frozenset({path})) is T.REFUSED
    assert fields.treatment(fields.BY_PATH["hostname"], frozenset({"hostname"})) is T.MAPPED


def test_one_message_names_every_refused_field_and_the_provider() -> None:
    p = pod({"securityContext": {"privileged": True}}, hostNetwork=True, hostPID=True)
    found = registry.profile_of("eci")
    text = fields.message(fields.refusals(p, found.pod_fields, found.ignored_fields), "eci")
    assert text.startswith("spec.hostNetwork: virtual nodes have no host network; spec.hostPID: ")
    assert "spec.containers[0].securityContext.privileged: virtual nodes run no privileged containers" in text
    assert text.endswith("(provider eci)")


def test_a_readiness_gate_holds_ready_until_its_condition_is_true() -> None:
    now = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    running = models.ContainerStatus("app", models.ContainerState.RUNNING, started_at=now, ready=True)
    state = models.InstanceState(id="i-1", status=models.InstanceStatus.RUNNING, containers=(running,))

    def ready(conditions: list[dict[str, str]]) -> dict[str, Any]:
        p = pod(readinessGates=[{"conditionType": "example.com/lb"}])
        p.status = msgspec.convert({"conditions": conditions}, objects.PodStatus)
        wanted = status.from_instance(p, state, scheme="x", host_ip="", now=now)
        return {c["type"]: c for c in wanted["conditions"]}["Ready"]

    missing = ready([])
    assert (missing["status"], missing["reason"]) == ("False", "ReadinessGatesNotReady")
    assert missing["message"] == 'corresponding condition of pod readiness gate "example.com/lb" does not exist.'
    false = ready([{"type": "example.com/lb", "status": "False"}])
    assert false["message"] == 'the status of pod readiness gate "example.com/lb" is not "True", but False'
    gate_true = {"type": "example.com/lb", "status": "True"}
    assert ready([gate_true])["status"] == "True"
    # The reason the pod shows from before is cleared: a strategic merge keeps a key the patch omits.
    was = {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady", "message": "x"}
    now_ready = ready([gate_true, was])
    assert (now_ready["status"], now_ready["reason"], now_ready["message"]) == ("True", "", "")
