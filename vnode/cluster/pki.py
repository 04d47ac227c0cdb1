"""Certificates and keys for a local control plane: one CA, serving and client certificates, SA keys.

Certificates come from ``vnode/certificates.py`` (``cryptography`` only). Files are written
once and reused, so a restarted cluster keeps trusting the kubeconfigs and service-account tokens it handed out before.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vnode import certificates

_VALIDITY = datetime.timedelta(days=3650)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: pathlib.Path
    key: pathlib.Path


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(certificates.key_pem(key))
    path.chmod(0o600)


def ensure_ca(directory: pathlib.Path, name: str, common_name: str) -> Pair:
    """Create (once) a self-signed CA named ``name`` in ``directory``."""
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    ca = certificates.make_ca(common_name, validity=_VALIDITY, path_length=None)
    certificates.write_pair(ca, pair.cert, pair.key)
    return pair


def issue(
    ca: Pair,
    directory: pathlib.Path,
    name: str,
    *,
    common_name: str,
    organization: str | None = None,
    hosts: tuple[str, ...] = (),
    client: bool = False,
    server: bool = False,
) -> Pair:
    """Create (once) a certificate signed by ``ca``; ``hosts`` become DNS or IP SANs."""
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    pem = certificates.issue(
        certificates.read_pair(ca.cert, ca.key),
        common_name=common_name,
        organization=organization,
        hosts=hosts,
        client=client,
        server=server,
        validity=_VALIDITY,
    )
    certificates.write_pair(pem, pair.cert, pair.key)
    return pair


def ensure_service_account_keys(directory: pathlib.Path) -> Pair:
    """An ECDSA P-256 key pair for signing service-account tokens (``cert`` holds the public key).

    kube-apiserver signs with ES256 for such a key. Every TokenRequest (one per pod that mounts
    the projected service-account token, which is nearly every pod) signs a JWT, and an RSA-2048
    signature costs the API server far more CPU than a P-256 one: on a 2-core machine under a
    10,000-pod burst that signing was the largest single cost a virtual kubelet added per pod
    (docs/benchmarks.md, the scale notes). A key made before (RSA) is kept, as every file here.
    """
    pair = Pair(directory / "sa.pub", directory / "sa.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    directory.mkdir(parents=True, exist_ok=True)
    key = certificates.new_key()
    _write_key(pair.key, key)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pair.cert.write_bytes(public)
    return pair
