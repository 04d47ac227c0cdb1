"""ack-virtual-node's `kube-system/alibaba-addon-secret`: when it exists and no other credentials are given,
the chart's daemons read their ECI keys from it (the install notes say so) and the chart makes no Secret of
its own; given keys or an existing Secret win. Rendered by Helm against the real control plane, whose
`lookup` finds the Secret (`helm install --dry-run=server`)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.deploy.test_chart import CHART, helm, run_helm
from vnode.cluster import launcher

__all__ = ["helm"]  # the fixture, used by name

pytestmark = pytest.mark.cluster

ADDON = "alibaba-addon-secret"


@pytest.fixture
def addon_secret(cluster: launcher.Info) -> Iterator[None]:
    keys = ("--from-literal=access-key-id=LTAIaddon", "--from-literal=access-key-secret=addon-secret")
    cluster.kubectl("-n", "kube-system", "create", "secret", "generic", ADDON, *keys)
    try:
        yield
    finally:
        cluster.kubectl("-n", "kube-system", "delete", "secret", ADDON, "--ignore-not-found", check=False)


def _dry_run(cluster: launcher.Info, helm: pathlib.Path, namespace: str, *sets: str) -> tuple[str, list[Any]]:
    """The install's notes and manifests, as `helm install --dry-run=server` gives them."""
    args = [a for s in sets for a in ("--set", s)]
    done = run_helm(helm, "install", "vn-addon", str(CHART), "--namespace", namespace, "--dry-run=server",
                    "--kubeconfig", str(cluster.kubeconfig), *args)  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest, _, notes = done.stdout.partition("NOTES:")
    docs = [d for d in yaml.safe_load_all(manifest.split("MANIFEST:", 1)[-1]) if d]
    return notes, docs


def _env(docs: list[Any]) -> dict[str, Any]:
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    (daemon,) = sts["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in daemon["env"]}


def test_the_addon_secret_is_used_when_it_exists_and_nothing_else_is_given(
    cluster: launcher.Info, helm: pathlib.Path, namespace: str, addon_secret: None
) -> None:
    notes, docs = _dry_run(cluster, helm, namespace)
    env = _env(docs)
    assert env["ECI_CREDENTIALS_SECRET"] == f"kube-system/{ADDON}"
    assert "ECI_ACCESS_KEY" not in env
    assert not [d for d in docs if d["kind"] == "Secret" and "credentials" in d["metadata"]["name"]]
    assert f"ECI credentials: kube-system/{ADDON}" in notes
    # Its daemons may read that one Secret, and so may the uninstall hook's `vnode gc`; nothing wider.
    (role,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "virtual-node-eci-addon-secret"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [ADDON], "verbs": ["get"]}]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == role["metadata"]["name"]]
    names = {s["name"] for s in binding["subjects"]}
    assert names == {"virtual-node-eci", "virtual-node-eci-uninstall"}

    notes, docs = _dry_run(cluster, helm, namespace, "credentials.accessKeyId=LTAIgiven",
                           "credentials.accessKeySecret=given")  # fmt: skip
    env = _env(docs)
    assert "ECI_CREDENTIALS_SECRET" not in env, "keys given at install win over the add-on Secret"
    assert not [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "virtual-node-eci-addon-secret"]
    assert env["ECI_ACCESS_KEY"]["secretKeyRef"]["key"] == "access-key-id"
    assert f"ECI credentials: kube-system/{ADDON}" not in notes


def test_without_the_addon_secret_the_chart_makes_its_own(
    cluster: launcher.Info, helm: pathlib.Path, namespace: str
) -> None:
    probe = cluster.kubectl("-n", "kube-system", "get", "secret", ADDON, check=False)
    if probe.returncode == 0:
        pytest.fail(f"kube-system/{ADDON} was left behind by another test")
    notes, docs = _dry_run(cluster, helm, namespace)
    assert "ECI_CREDENTIALS_SECRET" not in _env(docs)
    assert [d for d in docs if d["kind"] == "Secret" and "credentials" in d["metadata"]["name"]]
    assert f"ECI credentials: kube-system/{ADDON}" not in notes
