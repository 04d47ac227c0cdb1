"""The chart's least privilege, rendered with helm for each combination of its switches.

Every Role and ClusterRole is exactly the table below (a wider grant fails the test as much as
a missing one), no rule has a wildcard, every binding names one of the chart's own roles
(never cluster-admin, admin or edit), every container runs non-root, read-only, without
capabilities or privilege escalation under the runtime's seccomp profile, and credentials
reach the containers from a Secret only: the canary values given for them appear in no
object but the Secret. The playground runs these pods through the process provider: none of
them sets a field it refuses.
"""

from __future__ import annotations

import itertools
import pathlib
import re
from typing import Any

import msgspec
import pytest
import yaml

from tests.deploy.test_chart import CHART, PLAIN, render, run_helm
from vnode.cluster import build
from vnode.kube import objects
from vnode.node import fields
from vnode.provider import registry

NAME, RELEASE, NAMESPACE = "virtual-node-eci", "vnode", "kube-system"
WEBHOOK, UNINSTALL, OPERATOR = f"{RELEASE}-webhook", f"{NAME}-uninstall", f"{RELEASE}-operator"


def grants(*rules: str) -> frozenset[str]:
    """``group/resource verb [name]`` for each rule; the core group is the empty one."""
    return frozenset(rules)


# What each role grants, and why: docs/security.md says the same in prose.
DAEMON = grants(
    "/nodes get", "/nodes list", "/nodes create", "/nodes patch", "/nodes delete",
    "/nodes/status patch",
    "/pods get", "/pods list", "/pods watch", "/pods delete", "/pods patch",
    "/pods/status patch", "/pods/eviction create",
    "/services get", "/events create", "/events patch",
    "authentication.k8s.io/tokenreviews create", "authorization.k8s.io/subjectaccessreviews create",
)  # fmt: skip
# The pods' Secrets, claims, volumes and tokens are read, and the serving CSR asked, as the node
# (daemon.nodeIdentity): the daemon may act as its StatefulSet's nodes only (daemon.maxReplicas of
# them), and the Node authorizer grants each exactly its pods' objects. No Secret, no token and no
# CSR for the daemon's own account.
MAX_REPLICAS = 50
AS_NODES = grants(
    *(f"/users impersonate system:node:{NAME}-{i}" for i in range(MAX_REPLICAS)), "/groups impersonate system:nodes"
)
# daemon.nodeIdentity=false: the same reads as the daemon's own account, for the whole cluster.
OWN_READS = grants(
    "/configmaps get", "/secrets get",  # never list or watch
    "/persistentvolumeclaims get", "/persistentvolumes get", "/serviceaccounts/token create",
    "certificates.k8s.io/certificatesigningrequests create", "certificates.k8s.io/certificatesigningrequests get",
)  # fmt: skip
APPROVAL = grants(
    "certificates.k8s.io/certificatesigningrequests/approval update",
    "certificates.k8s.io/signers approve kubernetes.io/kubelet-serving",
)
# kube-system's live profile and the API server's client CA, by name.
KUBE_SYSTEM_CONFIG = grants(
    *(f"/configmaps {verb} eci-profile" for verb in ("get", "list", "watch")),
    "/configmaps get extension-apiserver-authentication",
)
LEASES = grants(*(f"coordination.k8s.io/leases {verb}" for verb in ("get", "create", "patch", "delete")))
OWN_STATEFULSET = grants(f"apps/statefulsets get {NAME}")
WEBHOOK_CLUSTER = grants(
    "admissionregistration.k8s.io/mutatingwebhookconfigurations create",
    "admissionregistration.k8s.io/mutatingwebhookconfigurations patch vnode-webhook",
    "/namespaces get", "/namespaces list", "/namespaces watch",
    "/nodes list", "/nodes watch", "/pods list", "/pods watch", "/pods patch",
)  # fmt: skip
WEBHOOK_CA = grants("/secrets create", f"/secrets get {WEBHOOK}-ca")
OPERATOR_CLUSTER = grants(
    "eci.alibabacloud.com/imagecaches list", "eci.alibabacloud.com/imagecaches watch",
    "eci.alibabacloud.com/imagecaches patch", "eci.alibabacloud.com/imagecaches/status patch",
    "apiextensions.k8s.io/customresourcedefinitions list", "apiextensions.k8s.io/customresourcedefinitions watch",
    "/events create",
)  # fmt: skip
UNINSTALL_CLUSTER = grants("/pods list", "/nodes list", "/nodes delete")
UNINSTALL_WEBHOOK = grants("admissionregistration.k8s.io/mutatingwebhookconfigurations delete vnode-webhook")
UNINSTALL_SCALE = grants(f"apps/statefulsets/scale patch {NAME}")

SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Canary credentials: they may appear in the Secret the chart makes, nowhere else.
CANARIES = {
    "credentials.accessKeyId": "canary-akid-5b1e",
    "credentials.accessKeySecret": "canary-aksecret-7c2f",
    "credentials.clientSecret": "canary-clientsecret-9d3a",
}
CREDENTIAL_NAME = re.compile(r"SECRET|KEY|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)


def expected(provider: str, webhook: bool, approve: bool, operator: bool, hook: bool) -> dict[str, frozenset[str]]:
    """The rules of each role the chart renders with these switches, by ``Kind namespace/name``."""
    table = {
        f"ClusterRole {NAME}": DAEMON | AS_NODES | (APPROVAL if approve else frozenset()),
        f"Role kube-node-lease/{NAME}": LEASES,
        f"Role kube-system/{NAME}-config": KUBE_SYSTEM_CONFIG,
        f"Role {NAMESPACE}/{NAME}": OWN_STATEFULSET,
    }
    if webhook:
        table |= {f"ClusterRole {WEBHOOK}": WEBHOOK_CLUSTER, f"Role {NAMESPACE}/{WEBHOOK}": WEBHOOK_CA}
    if operator and provider == "eci":
        table[f"ClusterRole {OPERATOR}"] = OPERATOR_CLUSTER
    if hook:
        table[f"ClusterRole {UNINSTALL}"] = UNINSTALL_CLUSTER | (UNINSTALL_WEBHOOK if webhook else frozenset())
        table[f"Role {NAMESPACE}/{UNINSTALL}"] = UNINSTALL_SCALE
    return table


def key(doc: dict[str, Any]) -> str:
    meta = doc["metadata"]
    return (
        f"{doc['kind']} {meta['namespace']}/{meta['name']}" if "namespace" in meta else f"{doc['kind']} {meta['name']}"
    )


def rules_of(role: dict[str, Any]) -> frozenset[str]:
    found = set()
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert "*" not in rule.get(field, []), f"{key(role)}: a wildcard in {field}: {rule}"
        assert "nonResourceURLs" not in rule, f"{key(role)}: {rule}"
        names = rule.get("resourceNames") or [None]
        for group, resource, verb, name in itertools.product(
            rule["apiGroups"], rule["resources"], rule["verbs"], names
        ):
            found.add(f"{group}/{resource} {verb}" + (f" {name}" if name else ""))
    return frozenset(found)


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key(d): d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("StatefulSet", "Deployment", "Job")}


COMBINATIONS = [
    (provider, webhook, approve, operator, hook)
    for provider in ("eci", "aci", "process")
    for webhook, approve, operator, hook in itertools.product((True, False), repeat=4)
    if provider == "eci" or (webhook, operator) == (True, True)  # the other providers: two switches are enough
]


@pytest.fixture(scope="module")
def helm() -> pathlib.Path:
    return build.ensure_go_tool("helm", "helm.sh/helm/v3/cmd/helm", build.HELM_VERSION)


@pytest.mark.parametrize(("provider", "webhook", "approve", "operator", "hook"), COMBINATIONS)
def test_roles_containers_and_credentials(
    helm: pathlib.Path, provider: str, webhook: bool, approve: bool, operator: bool, hook: bool
) -> None:
    switches = {"provider": provider, "webhook.enabled": webhook, "daemon.approveServingCertificate": approve,
                "operator.enabled": operator, "uninstallHook.enabled": hook}  # fmt: skip
    sets = [f"{k}={str(v).lower()}" for k, v in switches.items()]
    canaries = {k: v for k, v in CANARIES.items() if (provider == "aci") == (k == "credentials.clientSecret")}
    docs = render(helm, *sets, *(f"{k}={v}" for k, v in canaries.items()))

    roles = {key(d): d for d in docs if d["kind"] in ("ClusterRole", "Role")}
    assert {k: rules_of(role) for k, role in roles.items()} == expected(provider, webhook, approve, operator, hook)
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        ref = binding["roleRef"]
        scope = "" if ref["kind"] == "ClusterRole" else f"{binding['metadata']['namespace']}/"
        role_key = f"{ref['kind']} {scope}{ref['name']}"
        assert role_key in roles, f"{key(binding)} binds a role the chart does not make: {ref}"
        assert {(s["kind"], s["namespace"]) for s in binding["subjects"]} == {("ServiceAccount", NAMESPACE)}
        assert {s["name"] for s in binding["subjects"]} <= accounts

    pods = pod_specs(docs)
    assert len(pods) == 1 + webhook + (operator and provider == "eci") + hook
    for where, pod in pods.items():
        assert not pod.get("securityContext"), f"{where}: pod-level, the process provider would refuse it"
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod), where
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["securityContext"] == SECURITY_CONTEXT, f"{where}: {container['name']}"
            for env in container.get("env", []):
                if CREDENTIAL_NAME.search(env["name"]):
                    assert "value" not in env, f"{where}: {env['name']} is a plain value"
                    assert set(env["valueFrom"]) == {"secretKeyRef"}, f"{where}: {env['name']}"

    secrets = [d for d in docs if d["kind"] == "Secret"]
    assert len(secrets) == 1
    assert set(canaries.values()) == set(secrets[0]["stringData"].values())
    elsewhere = str([d for d in docs if d["kind"] != "Secret"])
    assert not [k for k, v in canaries.items() if v in elsewhere], "a credential outside the Secret"


def test_the_daemon_acts_as_its_own_nodes_only_or_reads_as_itself_when_told(helm: pathlib.Path) -> None:
    def daemon_role(*sets: str) -> frozenset[str]:
        (role,) = [d for d in render(helm, *sets) if key(d) == f"ClusterRole {NAME}"]
        return rules_of(role)

    def env(*sets: str) -> dict[str, str]:
        (sts,) = [d for d in render(helm, *sets) if d["kind"] == "StatefulSet"]
        return {e["name"]: e.get("value", "") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}

    three = grants(
        *(f"/users impersonate system:node:{NAME}-{i}" for i in range(3)), "/groups impersonate system:nodes"
    )
    assert daemon_role("daemon.maxReplicas=3") == DAEMON | three | APPROVAL
    assert env("daemon.maxReplicas=3")["VNODE_NODE_IDENTITY"] == "true"
    assert daemon_role("daemon.nodeIdentity=false") == DAEMON | OWN_READS | APPROVAL
    assert daemon_role("daemon.csiDriverSecrets=true") == DAEMON | AS_NODES | grants("/secrets get") | APPROVAL
    assert env("daemon.nodeIdentity=false")["VNODE_NODE_IDENTITY"] == "false"
    done = run_helm(helm, "template", "vnode", str(CHART), "--set", "replicas=4", "--set", "daemon.maxReplicas=3")
    assert done.returncode != 0
    assert f"replicas 4 is more than daemon.maxReplicas 3: the daemons may act as nodes {NAME}-0 to {NAME}-2" in (
        done.stderr
    )
    assert render(helm, "replicas=4", "daemon.maxReplicas=3", "daemon.nodeIdentity=false")


def test_aci_credentials_from_values_go_into_the_secret_one_at_a_time(helm: pathlib.Path) -> None:
    def secret_data(*sets: str) -> dict[str, str]:
        (secret,) = [d for d in render(helm, "provider=aci", *sets) if d["kind"] == "Secret"]
        return dict(secret.get("stringData") or {})

    assert secret_data("credentials.clientSecret=s") == {"client-secret": "s"}
    assert secret_data("credentials.token=t") == {"token": "t"}
    assert secret_data() == {}
    assert "Secret" not in {d["kind"] for d in render(helm, "provider=aci", "credentials.existingSecret=mine")}


def test_the_playground_runs_every_chart_pod_through_the_process_provider(helm: pathlib.Path) -> None:
    """The hardened containers must not make the process provider refuse the chart's pods."""
    values = str(PLAIN.parent / "playground-values.yaml")
    done = run_helm(helm, "template", "vnode", str(CHART), "-n", NAMESPACE, "-f", values,
                    "--set", "webhook.enabled=true", "--set", "operator.enabled=true")  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    process = registry.profile_of("process")
    pods = pod_specs(docs)
    assert len(pods) == 4
    for where, spec in pods.items():
        body = {"metadata": {"name": "p", "namespace": NAMESPACE}, "spec": spec}
        pod = msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)
        assert fields.refusals(pod, process.pod_fields, process.ignored_fields) == [], where
