"""The Helm chart: lint and template clean, least-privilege RBAC, plain manifests in step, installs for real."""

from __future__ import annotations

import contextlib
import pathlib
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.waiting import wait_for
from vnode.cluster import build, launcher

CHART = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "helm" / "vnode"
PLAIN = CHART.parents[1] / "statefulset.yaml"
# How deploy/statefulset.yaml is made (its header says the same).
PLAIN_ARGS = ("template", "vnode", str(CHART), "--namespace", "kube-system", "--set", "uninstallHook.enabled=false",
              "--include-crds")  # fmt: skip


@pytest.fixture(scope="session")
def helm() -> pathlib.Path:
    """helm v3, built from the Go module proxy into the cache on first use."""
    return build.ensure_go_tool("helm", "helm.sh/helm/v3/cmd/helm", build.HELM_VERSION)


def run_helm(helm: pathlib.Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, **kwargs)


def render(helm: pathlib.Path, *sets: str) -> list[dict[str, Any]]:
    args = [arg for s in sets for arg in ("--set", s)]
    done = run_helm(helm, "template", "vnode", str(CHART), "--namespace", "kube-system", *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_lint_and_template_are_clean(helm: pathlib.Path) -> None:
    lint = run_helm(helm, "lint", "--strict", str(CHART))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "[WARNING]" not in lint.stdout
    assert "[ERROR]" not in lint.stdout
    for provider in ("eci", "aci", "process"):
        kinds = {doc["kind"] for doc in render(helm, f"provider={provider}")}
        assert {"StatefulSet", "ServiceAccount", "ClusterRole", "Secret", "ConfigMap", "Deployment", "Job"} <= kinds


def test_the_playground_values_put_the_replicas_on_vnode_host(helm: pathlib.Path) -> None:
    values = str(PLAIN.parent / "playground-values.yaml")
    lint = run_helm(helm, "lint", "--strict", str(CHART), "-f", values)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    done = run_helm(helm, "template", "vnode", str(CHART), "-n", "kube-system", "-f", values,
                    "--set", "eci.endpoint=127.0.0.1:9", "--set-json", 'eci.vSwitches=["vsw-a","vsw-b"]')  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert "Deployment" not in {d["kind"] for d in docs}, "the playground runs its own webhook"
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "vnode-host"}
    assert pod["tolerations"][0]["value"] == "process"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert (env["ECI_ENDPOINT"], env["ECI_VSWITCH"], env["KUBELET_PORT"]) == ("127.0.0.1:9", "vsw-a,vsw-b", "0")
    assert env["VNODE_NODE_IP"] == "auto", "the node proxy refuses the process provider's 127.0.0.1"


def test_capacity_gpus_reaches_the_daemon_even_as_zero(helm: pathlib.Path) -> None:
    def gpus(*sets: str) -> str | None:
        (sts,) = [d for d in render(helm, *sets) if d["kind"] == "StatefulSet"]
        env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        return env.get("ECI_QUOTA_GPU")

    assert (gpus(), gpus("capacity.gpus=0"), gpus("capacity.gpus=8")) == (None, "0", "8")


def test_the_plain_manifests_are_the_chart_rendered(helm: pathlib.Path) -> None:
    rendered = run_helm(helm, *PLAIN_ARGS)
    assert rendered.returncode == 0, rendered.stderr
    plain = PLAIN.read_text()
    body = plain[plain.index("\n---\n") + 1 :]
    assert body.strip() == rendered.stdout.strip(), "deploy/statefulset.yaml is stale: regenerate it (see its header)"
    assert "helm.sh/hook" not in body, "kubectl apply would run the uninstall hook at once"


def test_the_statefulset_names_nodes_after_pods_and_drains_within_its_grace(helm: pathlib.Path) -> None:
    docs = render(helm, "replicas=3", "eci.vSwitches={vsw-a,vsw-b}", "eci.securityGroup=sg-1")
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    assert (sts["metadata"]["name"], sts["metadata"]["namespace"]) == ("virtual-node-eci", "kube-system")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    pod = sts["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 300
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["ECI_VSWITCH"]["value"] == "vsw-a,vsw-b"
    assert env["ECI_SECURITY_GROUP"]["value"] == "sg-1"
    assert env["ECI_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "access-key-id"
    assert env["ECI_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "access-key-secret"
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert set(secret["stringData"]) == {"access-key-id", "access-key-secret"}
    (profile,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert profile["metadata"]["name"] == "eci-profile"


def test_an_aci_ca_configmap_is_mounted_and_named_by_aci_ca_file_wherever_the_cloud_is_called(
    helm: pathlib.Path,
) -> None:
    docs = render(helm, "provider=aci", "aci.caConfigMap=sim-ca", "aci.endpoint=https://127.0.0.1:9")
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("StatefulSet", "Job")]
    assert len(pods) == 2  # the daemon and the uninstall hook's gc both talk to the cloud
    for pod in pods:
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ACI_CA_FILE"] == "/etc/vnode/aci-ca/ca.pem"
        assert {"name": "aci-ca", "mountPath": "/etc/vnode/aci-ca", "readOnly": True} in container["volumeMounts"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "aci-ca"]
        assert volume["configMap"] == {"name": "sim-ca", "items": [{"key": "ca.pem", "path": "ca.pem"}]}
    plain = next(d for d in render(helm, "provider=aci") if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    assert "ACI_CA_FILE" not in {e["name"] for e in plain["containers"][0]["env"]}


def test_aci_credentials_come_from_the_secret_as_a_client_secret_or_a_token(helm: pathlib.Path) -> None:
    docs = render(helm, "provider=aci", "aci.subscriptionId=sub", "aci.resourceGroup=rg")
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("StatefulSet", "Job")]
    assert len(pods) == 2  # the daemon and the uninstall hook's gc both talk to the cloud
    for pod in pods:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        refs = {name: env[name]["valueFrom"]["secretKeyRef"] for name in ("ACI_CLIENT_SECRET", "ACI_TOKEN")}
        assert {name: (ref["key"], ref["optional"]) for name, ref in refs.items()} == {
            "ACI_CLIENT_SECRET": ("client-secret", True),
            "ACI_TOKEN": ("token", True),
        }
        assert {ref["name"] for ref in refs.values()} == {secret["metadata"]["name"]}


def test_rbac_has_no_wildcard_and_no_cluster_admin(helm: pathlib.Path) -> None:
    docs = render(helm)
    rules = [(d["metadata"]["name"], r) for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    for name, rule in rules:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), f"{name}: wildcard in {field}"
    for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")

    def granted(role: str, resource: str, verb: str) -> bool:
        return any(n == role and resource in r["resources"] and verb in r["verbs"] for n, r in rules)

    for resource, verb in [("nodes", "create"), ("nodes/status", "patch"), ("leases", "patch"), ("pods", "watch"),
                           ("pods", "patch"), ("pods/status", "patch"), ("pods/eviction", "create"),
                           ("events", "create"),
                           ("users", "impersonate"), ("groups", "impersonate"),
                           ("tokenreviews", "create"), ("subjectaccessreviews", "create"),
                           ("statefulsets", "get")]:  # fmt: skip
        assert granted("virtual-node-eci", resource, verb), f"the daemon lacks {verb} {resource}"
    assert granted("virtual-node-eci-config", "configmaps", "watch"), "the live profile, in kube-system"
    # Its pods' Secrets, tokens and its CSR are the node's to read and ask (daemon.nodeIdentity), not its own.
    for resource, verb in [("secrets", "get"), ("secrets", "create"), ("secrets", "delete"), ("secrets", "list"),
                           ("secrets", "watch"), ("serviceaccounts/token", "create"), ("configmaps", "get"),
                           ("configmaps", "list"), ("configmaps", "watch"),
                           ("certificatesigningrequests", "create"), ("pods", "create"),
                           ("configmaps", "update")]:  # fmt: skip
        assert not granted("virtual-node-eci", resource, verb), f"the daemon should not {verb} {resource}"


@pytest.fixture
def release(cluster: launcher.Info, helm: pathlib.Path, namespace: str) -> Iterator[tuple[str, str]]:
    """A release of the chart in the test's namespace, with unique cluster-wide names; uninstalled afterwards."""
    name = f"vn-{secrets.token_hex(3)}"
    try:
        yield name, namespace
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            run_helm(helm, "uninstall", name, "--namespace", namespace, "--no-hooks", "--kubeconfig",
                     str(cluster.kubeconfig))  # fmt: skip


@pytest.mark.cluster
def test_helm_install_on_the_local_control_plane(
    cluster: launcher.Info, helm: pathlib.Path, release: tuple[str, str]
) -> None:
    name, namespace = release
    sets = [f"name={name}", "webhook.configurationName=" + name, "replicas=2",
            "nodeSelector.vnode\\.io/test=nowhere"]  # fmt: skip
    install = run_helm(helm, "install", name, str(CHART), "--namespace", namespace, "--kubeconfig",
                       str(cluster.kubeconfig), *[a for s in sets for a in ("--set", s)])  # fmt: skip
    assert install.returncode == 0, install.stderr
    assert "kubectl label namespace" in install.stdout  # the notes

    def statefulset_pods() -> bool:
        out = cluster.kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/component=virtual-node",
                              "-o", "jsonpath={.items[*].metadata.name}").stdout  # fmt: skip
        return sorted(out.split()) == [f"{name}-0", f"{name}-1"]

    wait_for(statefulset_pods, timeout=30, what="the StatefulSet's two pods")
    account = f"system:serviceaccount:{namespace}:{name}"

    def can(*args: str) -> bool:
        return cluster.kubectl("auth", "can-i", "--as", account, *args, check=False).stdout.strip() == "yes"

    assert can("create", "pods", "--subresource=eviction", "-n", "default")
    assert can("patch", "nodes", "--subresource=status")
    assert can("patch", "leases", "-n", "kube-node-lease")
    assert can("get", f"statefulsets/{name}", "-n", namespace)
    assert not can("get", "statefulsets/other", "-n", namespace)
    assert not can("patch", "leases", "-n", "default")
    assert not can("create", "pods", "-n", "default")
    assert not can("delete", "secrets", "-n", namespace)
