"""Every path of the kubelet API against every kind of caller: exactly the kubelet's answers.

The kubelet authenticates a client certificate of the cluster CA or a bearer token (TokenReview),
else answers 401; it authorizes with a SubjectAccessReview on ``nodes/<node>`` whose subresource
follows the path (``/stats`` → stats, ``/metrics`` → metrics, ``/logs`` → log, the rest → proxy),
else 403 (``vnode/kubelet/auth.py``). A path the virtual node does not serve answers 404 only to a
caller who may reach it. A certificate of another CA never gets past the TLS handshake.
"""

from __future__ import annotations

import contextlib
import http.client
import pathlib
import secrets
import ssl
import warnings
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.kubelet import test_security
from tests.kubelet.conftest import Kubelet
from vnode.cluster import pki
from vnode.kubelet import pods

pytestmark = pytest.mark.cluster

REFUSED = "refused"  # the TLS handshake fails: no HTTP answer at all


def _paths(pod: pods.PodInstance) -> dict[str, str]:
    """Each path the matrix calls -> the kubelet's subresource for it."""
    where = f"{pod.namespace}/{pod.name}"
    return {
        "/pods": "proxy",
        "/runningpods/": "proxy",
        f"/containerLogs/{where}/app": "proxy",
        f"/exec/{where}/app?command=true&output=1": "proxy",
        f"/attach/{where}/app?output=1": "proxy",
        f"/portForward/{where}": "proxy",
        f"/run/{where}/app": "proxy",
        "/configz": "proxy",
        "/debug/pprof/": "proxy",
        "/healthz": "proxy",
        "/stats/summary": "stats",
        "/metrics": "metrics",
        "/metrics/resource": "metrics",
        "/logs/": "log",
    }


def _call(kubelet: Kubelet, path: str, *, cert: tuple[pathlib.Path, pathlib.Path] | None, token: str) -> int | str:
    try:
        return test_security.get(kubelet, path, cert=cert, token=token)[0]
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return REFUSED


def _verdict(status: int | str) -> str:
    if status in (401, 403, REFUSED):
        return str(status)
    return "allowed"


@pytest.fixture
def roles(kube_api: k8s.ApiClient, kubelet: Kubelet) -> Iterator[dict[str, str]]:
    """ClusterRoles granting get on one subresource of the test node each (deleted after)."""
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    made: dict[str, str] = {}
    try:
        for sub in ("stats", "log", "proxy"):
            name = f"vk-matrix-{sub}-{secrets.token_hex(3)}"
            rule = {"apiGroups": [""], "resources": [f"nodes/{sub}"], "verbs": ["get"], "resourceNames": [kubelet.node]}
            rbac.create_cluster_role({"metadata": {"name": name}, "rules": [rule]})
            made[sub] = name
        yield made
    finally:
        for name in made.values():
            rbac.delete_cluster_role(name)
            for binding in rbac.list_cluster_role_binding().items:
                if binding.role_ref.name == name:
                    rbac.delete_cluster_role_binding(binding.metadata.name)


def _account(core: k8s.CoreV1Api, namespace: str, name: str, audiences: list[str] | None = None) -> str:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    spec: dict[str, object] = {"expirationSeconds": 600, **({"audiences": audiences} if audiences else {})}
    return str(core.create_namespaced_service_account_token(name, namespace, {"spec": spec}).status.token)


def _bind(kube_api: k8s.ApiClient, role: str, namespace: str, account: str) -> None:
    k8s.RbacAuthorizationV1Api(kube_api).create_cluster_role_binding({
        "metadata": {"name": f"{role}-{account}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    })  # fmt: skip


def test_every_path_answers_every_caller_as_the_kubelet_does(
    kubelet: Kubelet, pod: pods.PodInstance, core: k8s.CoreV1Api, kube_api: k8s.ApiClient, namespace: str,
    roles: dict[str, str], tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    ca = pki.Pair(kubelet.pki / "ca.crt", kubelet.pki / "ca.key")
    nobody = pki.issue(ca, tmp_path, "nobody", common_name="nobody", client=True)
    (tmp_path / "other-ca").mkdir()
    stranger_ca = pki.ensure_ca(tmp_path / "other-ca", "ca", "not-the-cluster-ca")
    stranger = pki.issue(stranger_ca, tmp_path / "other-ca", "admin", common_name="admin", client=True)
    apiserver = (kubelet.pki / "apiserver-kubelet-client.crt", kubelet.pki / "apiserver-kubelet-client.key")
    tokens = {sub: _account(core, namespace, f"only-{sub}") for sub in roles}
    for sub, role in roles.items():
        _bind(kube_api, role, namespace, f"only-{sub}")
    gone = _account(core, namespace, "deleted")
    core.delete_namespaced_service_account("deleted", namespace)
    callers: dict[str, tuple[tuple[pathlib.Path, pathlib.Path] | None, str, set[str]]] = {
        # name -> (certificate, token, the subresources it may reach); None/"" below: none given
        "nobody at all": (None, "", set()),
        "a garbage token": (None, "not-a-token", set()),
        "a token of another audience": (None, _account(core, namespace, "elsewhere", ["https://vault.example"]), set()),
        "a token of a deleted account": (None, gone, set()),
        "an account without rights": (None, _account(core, namespace, "no-rights"), set()),
        "nodes/stats only": (None, tokens["stats"], {"stats"}),
        "nodes/log only": (None, tokens["log"], {"log"}),
        "nodes/proxy": (None, tokens["proxy"], {"proxy"}),
        "the API server's kubelet-client certificate": (apiserver, "", {"stats", "metrics", "log", "proxy"}),
        "a certificate of the cluster CA without RBAC": ((nobody.cert, nobody.key), "", set()),
        "a certificate of another CA": ((stranger.cert, stranger.key), "", set()),
    }
    unauthenticated = {
        "nobody at all",
        "a garbage token",
        "a token of another audience",
        "a token of a deleted account",
    }
    got, wanted = {}, {}
    for caller, (cert, token, reaches) in callers.items():
        for path, sub in _paths(pod).items():
            got[caller, path] = _verdict(_call(kubelet, path, cert=cert, token=token))
            if caller == "a certificate of another CA":
                wanted[caller, path] = REFUSED
            elif caller in unauthenticated:
                wanted[caller, path] = "401"
            else:
                wanted[caller, path] = "allowed" if sub in reaches else "403"
    wrong = {f"{caller} GET {path}": f"{got[caller, path]} (the kubelet: {w})" for (caller, path), w in wanted.items()
             if got[caller, path] != w}  # fmt: skip
    assert wrong == {}


def test_only_tls_1_2_and_later_is_spoken(kubelet: Kubelet) -> None:
    """A client limited to TLS 1.1 gets no connection; TLS 1.2 and 1.3 do."""
    for version, works in (
        (ssl.TLSVersion.TLSv1_1, False),
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, True),
    ):
        context = ssl.create_default_context(cafile=str(kubelet.ca_file))
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = (
                min(version, ssl.TLSVersion.TLSv1_2) if works else ssl.TLSVersion.MINIMUM_SUPPORTED
            )
            context.maximum_version = version
        with contextlib.suppress(ValueError, ssl.SSLError):
            context.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
        connection = http.client.HTTPSConnection("127.0.0.1", kubelet.port, context=context, timeout=30)
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            spoke = True
        except (ssl.SSLError, ConnectionResetError):
            spoke = False
        finally:
            connection.close()
        assert spoke == works, version
