"""Who may call a virtual node's kubelet API: the API server yes, anonymous and unauthorized users no."""

from __future__ import annotations

import http.client
import pathlib
import secrets
import ssl
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.kubelet.conftest import Kubelet
from vnode.cluster import pki
from vnode.kubelet import pods

pytestmark = pytest.mark.cluster


def get(kubelet: Kubelet, path: str, *, cert: tuple[pathlib.Path, pathlib.Path] | None = None,
         token: str = "") -> tuple[int, str]:  # fmt: skip
    context = ssl.create_default_context(cafile=str(kubelet.ca_file))  # also checks the serving cert's SAN
    if cert:
        context.load_cert_chain(*cert)
    connection = http.client.HTTPSConnection("127.0.0.1", kubelet.port, context=context, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _logs_path(pod: pods.PodInstance) -> str:
    return f"/containerLogs/{pod.namespace}/{pod.name}/app"


def test_the_api_servers_client_certificate_is_accepted(kubelet: Kubelet, pod: pods.PodInstance) -> None:
    cert = (kubelet.pki / "apiserver-kubelet-client.crt", kubelet.pki / "apiserver-kubelet-client.key")
    assert get(kubelet, "/healthz", cert=cert) == (200, "ok")
    status, body = get(kubelet, "/pods", cert=cert)
    assert status == 200
    assert pod.uid in body


def test_anonymous_and_bad_tokens_are_refused(kubelet: Kubelet, pod: pods.PodInstance) -> None:
    assert get(kubelet, _logs_path(pod))[0] == 401
    assert get(kubelet, "/stats/summary")[0] == 401
    assert get(kubelet, _logs_path(pod), token="not-a-token")[0] == 401


def test_a_certificate_user_without_rbac_is_forbidden(kubelet: Kubelet, pod: pods.PodInstance,
                                                      tmp_path: pathlib.Path) -> None:  # fmt: skip
    ca = pki.Pair(kubelet.pki / "ca.crt", kubelet.pki / "ca.key")
    nobody = pki.issue(ca, tmp_path, "nobody", common_name="nobody", client=True)
    status, body = get(kubelet, _logs_path(pod), cert=(nobody.cert, nobody.key))
    assert status == 403
    assert "user=nobody" in body
    assert "proxy" in body
    assert get(kubelet, "/metrics/resource", cert=(nobody.cert, nobody.key))[0] == 403


@pytest.fixture
def node_proxy_role(kube_api: k8s.ApiClient, kubelet: Kubelet) -> Iterator[str]:
    """A ClusterRole allowing get on nodes/proxy of the test node (cluster-scoped: deleted after)."""
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    name = f"vk-test-proxy-{secrets.token_hex(3)}"
    rule = {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"], "resourceNames": [kubelet.node]}
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": [rule]})
    try:
        yield name
    finally:
        rbac.delete_cluster_role(name)


def _token(core: k8s.CoreV1Api, namespace: str, account: str) -> str:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    request = core.create_namespaced_service_account_token(account, namespace, {"spec": {"expirationSeconds": 600}})
    return str(request.status.token)


def test_service_account_tokens_are_reviewed_and_authorized(
    kubelet: Kubelet, pod: pods.PodInstance, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str,
    node_proxy_role: str,
) -> None:  # fmt: skip
    denied = _token(core, namespace, "no-rights")
    status, body = get(kubelet, _logs_path(pod), token=denied)
    assert status == 403
    assert f"system:serviceaccount:{namespace}:no-rights" in body

    allowed = _token(core, namespace, "node-proxy")
    binding = f"{node_proxy_role}-binding"
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    rbac.create_cluster_role_binding({
        "metadata": {"name": binding},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": node_proxy_role},
        "subjects": [{"kind": "ServiceAccount", "name": "node-proxy", "namespace": namespace}],
    })  # fmt: skip
    kubelet.call(kubelet.provider.append(pod.instance_id, "app", "visible to node-proxy"))
    try:
        assert get(kubelet, _logs_path(pod), token=allowed) == (200, "visible to node-proxy\n")
        # nodes/proxy does not grant nodes/stats: the kubelet's subresource mapping.
        assert get(kubelet, "/stats/summary", token=allowed)[0] == 403
    finally:
        rbac.delete_cluster_role_binding(binding)
