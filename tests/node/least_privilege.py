"""A daemon's API client with the chart's grants and nothing more: a ServiceAccount bound to the rules of
tests/deploy/test_chart_security.py (which that module compares with the rendered chart, rule by rule),
so that a test shows the daemon does its work without a wider grant."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

from kubernetes import client as k8s

from tests.deploy import test_chart_security as chart
from vnode.cluster import launcher
from vnode.kube import client, config


def rules(grants: Iterable[str]) -> list[dict[str, Any]]:
    """``group/resource verb [name]`` as RBAC rules, one each."""
    made = []
    for grant in sorted(grants):
        what, verb, *name = grant.split()
        group, _, resource = what.partition("/")
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
        if name:
            rule["resourceNames"] = name
        made.append(rule)
    return made


def as_node(node_name: str) -> frozenset[str]:
    """The chart's impersonation grants, for the node ``node_name``."""
    return frozenset({f"/users impersonate system:node:{node_name}", "/groups impersonate system:nodes"})


@contextlib.asynccontextmanager
async def daemon_client(
    cluster: launcher.Info, kube_api: k8s.ApiClient, namespace: str, node_name: str
) -> AsyncIterator[client.Client]:
    """A client authenticated as a ServiceAccount of ``namespace`` with the daemon's cluster grants, acting
    as the node ``node_name`` (the chart names its StatefulSet's nodes instead), and its Leases in
    kube-node-lease; the roles and bindings are removed afterwards."""
    rbac, core = k8s.RbacAuthorizationV1Api(kube_api), k8s.CoreV1Api(kube_api)
    name = f"vnode-daemon-{secrets.token_hex(3)}"
    account = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_cluster_role(
        {
            "metadata": {"name": name},
            "rules": rules(chart.DAEMON | chart.APPROVAL | chart.KUBE_SYSTEM_CONFIG | as_node(node_name)),
        }
    )
    rbac.create_cluster_role_binding({"metadata": {"name": name}, "subjects": account,
                                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                  "name": name}})  # fmt: skip
    rbac.create_namespaced_role("kube-node-lease", {"metadata": {"name": name}, "rules": rules(chart.LEASES)})
    rbac.create_namespaced_role_binding("kube-node-lease", {"metadata": {"name": name}, "subjects": account,
                                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": name}})  # fmt: skip
    try:
        token = core.create_namespaced_service_account_token(name, namespace, {"spec": {"expirationSeconds": 3600}})
        admin = config.load_kubeconfig(cluster.kubeconfig)
        context = ssl.create_default_context(cadata=admin.ca_pem.decode())  # no client certificate: the token counts
        limited = dataclasses.replace(admin, ssl=context, credentials=config.Credentials(token=token.status.token))
        async with client.Client(limited) as api:
            yield api
    finally:
        for delete in (lambda: rbac.delete_cluster_role_binding(name), lambda: rbac.delete_cluster_role(name),
                       lambda: rbac.delete_namespaced_role_binding(name, "kube-node-lease"),
                       lambda: rbac.delete_namespaced_role(name, "kube-node-lease")):  # fmt: skip
            with contextlib.suppress(k8s.ApiException):
                delete()
