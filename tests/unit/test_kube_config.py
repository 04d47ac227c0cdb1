"""Kubeconfig and in-cluster configuration; HTTP failures mapped onto the error tree."""

from __future__ import annotations

import base64
import datetime
import json
import os
import pathlib
import ssl
import subprocess
import sys

import pytest

from vnode import errors
from vnode.kube import client, config


def test_kubeconfig_token_and_insecure(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443/', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
    )
    cfg = config.load_kubeconfig(path)
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.ssl is False
    assert cfg.credentials.authorization() == "Bearer abc"
    assert cfg.namespace == "ns"


def test_kubeconfig_errors_name_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("current-context: missing\ncontexts: []\n")
    with pytest.raises(errors.ConfigError, match=r"--kubeconfig=.*kubeconfig: .*name missing in .*contexts"):
        config.load_kubeconfig(path)


def test_exec_plugin_token_is_fetched_and_fetched_again_near_its_expiry(tmp_path: pathlib.Path) -> None:
    """The user of EKS, AKS and ACK kubeconfigs: a command that prints an ExecCredential."""
    plugin = _exec_plugin(tmp_path, expires_in=datetime.timedelta(minutes=1))  # inside the 5-minute skew
    path = tmp_path / "kubeconfig"
    path.write_text(_exec_kubeconfig(plugin))
    now = [0.0]
    cfg = config.load_kubeconfig(path, clock=lambda: now[0])
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.credentials.authorization() == "Bearer token-2"  # the load ran it once
    assert cfg.credentials.authorization() == "Bearer token-2", "not asked again at once"
    now[0] += 10
    assert cfg.credentials.authorization() == "Bearer token-3"


def test_exec_plugin_token_is_kept_until_its_expiry(tmp_path: pathlib.Path) -> None:
    plugin = _exec_plugin(tmp_path, expires_in=datetime.timedelta(hours=1))
    path = tmp_path / "kubeconfig"
    path.write_text(_exec_kubeconfig(plugin))
    now = [0.0]
    cfg = config.load_kubeconfig(path, clock=lambda: now[0])
    assert cfg.credentials.authorization() == "Bearer token-1"
    now[0] += 60
    assert cfg.credentials.authorization() == "Bearer token-1"


def test_a_failing_exec_plugin_is_a_config_error(tmp_path: pathlib.Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.write_text("#!/bin/sh\necho no credentials for you >&2\nexit 1\n")
    plugin.chmod(0o755)
    path = tmp_path / "kubeconfig"
    path.write_text(_exec_kubeconfig(plugin))
    with pytest.raises(errors.ConfigError, match="exec plugin of user 'u' failed"):
        config.load_kubeconfig(path)


def test_token_file_is_reread_when_rotated(tmp_path: pathlib.Path) -> None:
    (tmp_path / "token").write_text("first\n")
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {tokenFile: token}}]\n"  # relative to the kubeconfig
    )
    clock = Clock()
    cfg = config.load_kubeconfig(path, clock=clock)
    assert cfg.credentials.authorization() == "Bearer first"
    _rotate(tmp_path / "token", "second\n")
    assert cfg.credentials.authorization() == "Bearer first"  # looked at once a minute, not per request
    clock.now += config.FILE_INTERVAL
    assert cfg.credentials.authorization() == "Bearer second"


def test_in_cluster_token_is_reread_when_rotated(tmp_path: pathlib.Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(_self_signed_pem(tmp_path))
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "namespace").write_text("kube-system")
    clock = Clock()
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = config.in_cluster(tmp_path, environ, clock=clock)
    assert cfg.server == "https://10.96.0.1:443"
    assert cfg.namespace == "kube-system"
    assert cfg.credentials.authorization() == "Bearer first"
    _rotate(tmp_path / "token", "second\n")
    assert cfg.credentials.authorization() == "Bearer first"
    cfg.credentials.refused()  # a 401: the rotated token is read at once
    assert cfg.credentials.authorization() == "Bearer second"
    _rotate(tmp_path / "token", "third\n")
    clock.now += config.FILE_INTERVAL
    assert cfg.credentials.authorization() == "Bearer third"


def test_in_cluster_without_the_service_host_is_a_config_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.ConfigError, match="KUBERNETES_SERVICE_HOST"):
        config.in_cluster(tmp_path, {})


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, errors.NotFound),
        (409, errors.Conflict),
        (410, errors.Gone),
        (403, errors.Forbidden),
        (422, errors.InvalidSpec),
        (429, errors.Throttled),
        (503, errors.Unavailable),
    ],
)
def test_http_status_maps_onto_the_error_tree(status: int, kind: type[errors.ApiError]) -> None:
    body = b'{"kind":"Status","code":%d,"reason":"R","message":"m"}' % status
    error = client._error(status, body, {"Retry-After": "3"}, "GET /x")
    assert isinstance(error, kind)
    assert error.code == "R"
    if isinstance(error, errors.Retryable):
        assert error.retry_after == 3


class Clock:
    """Monotonic seconds that a test moves on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _rotate(path: pathlib.Path, content: str) -> None:
    """Write ``content`` with an mtime that surely differs (the kubelet swaps a symlink likewise)."""
    stat = path.stat()
    path.write_text(content)
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))


def _exec_plugin(directory: pathlib.Path, *, expires_in: datetime.timedelta) -> pathlib.Path:
    """A plugin that prints token-1, token-2, ... (counting its runs in a file), valid for ``expires_in``."""
    expiry = (datetime.datetime.now(datetime.UTC) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
    plugin = directory / "plugin"
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib\n"
        f"count = pathlib.Path({str(directory / 'runs')!r})\n"
        "runs = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(runs))\n"
        "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        f"                  'status': {{'token': f'token-{{runs}}', 'expirationTimestamp': {expiry!r}}}}}))\n"
    )
    plugin.chmod(0o755)
    return plugin


def _exec_kubeconfig(plugin: pathlib.Path) -> str:
    exec_ = {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "interactiveMode": "Never"}
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "clusters": [
                {"name": "k", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}
            ],
            "users": [{"name": "u", "user": {"exec": exec_}}],
        }
    )


def _self_signed_pem(directory: pathlib.Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    del directory
    return cert.public_bytes(serialization.Encoding.PEM)


def test_a_ca_that_is_no_certificate_is_a_config_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443', certificate-authority: ca.crt}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
    )
    with pytest.raises(errors.ConfigError, match=r"--kubeconfig=.*: TLS"):
        config.load_kubeconfig(path)


def test_an_inline_ca_is_kept_as_pem(tmp_path: pathlib.Path) -> None:
    """The process provider hands the CA to the pods' own clients."""
    pem = _self_signed_pem(tmp_path)
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        f"clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:6443', certificate-authority-data: "
        f"{base64.b64encode(pem).decode()}}}}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
    )
    cfg = config.load_kubeconfig(path)
    assert cfg.ca_pem == pem
    assert isinstance(cfg.ssl, ssl.SSLContext)


def test_in_cluster_is_read_without_the_kubernetes_package(tmp_path: pathlib.Path) -> None:
    """A daemon in a pod reads its service account as client-go does; importing the package would hold
    some 10 MB in every daemon for nothing (it is for kubeconfigs: exec plugins, merged lists)."""
    (tmp_path / "ca.crt").write_bytes(_self_signed_pem(tmp_path))
    (tmp_path / "token").write_text("t\n")
    program = (
        "import pathlib, sys\n"
        "from vnode.kube import config\n"
        f"cfg = config.in_cluster(pathlib.Path({str(tmp_path)!r}), {{'KUBERNETES_SERVICE_HOST': 'fd00::1'}})\n"
        "print(cfg.server, cfg.namespace, cfg.credentials.authorization(), 'kubernetes' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["https://[fd00::1]:443", "default", "Bearer", "t", "False"]


@pytest.mark.parametrize(
    ("files", "environ", "named"),
    [
        ({"ca.crt": None, "token": "t"}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "the cluster's CA"),
        ({"ca.crt": "pem", "token": ""}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "token"),
        ({"ca.crt": "not a PEM", "token": "t"}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "TLS"),
        ({"ca.crt": "pem", "token": "t"}, {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": ""}, "PORT"),
    ],
)
def test_an_unusable_service_account_is_a_config_error_naming_what(
    tmp_path: pathlib.Path, files: dict[str, str | None], environ: dict[str, str], named: str
) -> None:
    for name, text in files.items():
        if text == "pem":
            (tmp_path / name).write_bytes(_self_signed_pem(tmp_path))
        elif text is not None:
            (tmp_path / name).write_text(text)
    with pytest.raises(errors.ConfigError, match=named):
        config.in_cluster(tmp_path, environ)
