"""Kubeconfig and in-cluster configuration; HTTP failures mapped onto the error tree."""

from __future__ import annotations

import os
import pathlib

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
    assert cfg.credentials.token() == "abc"
    assert cfg.namespace == "ns"


def test_kubeconfig_errors_name_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("current-context: missing\ncontexts: []\n")
    with pytest.raises(errors.ConfigError, match="no context named 'missing'"):
        config.load_kubeconfig(path)


def test_in_cluster_token_is_reread_when_rotated(tmp_path: pathlib.Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(_self_signed_pem(tmp_path))
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "namespace").write_text("kube-system")
    cfg = config.in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert cfg.server == "https://10.96.0.1:443"
    assert cfg.namespace == "kube-system"
    assert cfg.credentials.token() == "first"
    (tmp_path / "token").write_text("second\n")
    stat = (tmp_path / "token").stat()
    os.utime(tmp_path / "token", (stat.st_atime, stat.st_mtime + 5))
    assert cfg.credentials.token() == "second"


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


def _self_signed_pem(directory: pathlib.Path) -> bytes:
    import datetime

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
