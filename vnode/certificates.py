"""Certificates with ``cryptography``: a self-signed CA and the certificates it signs, as PEM bytes.

One builder for every TLS endpoint of vnode (the local control plane's PKI, the webhook's
self-managed certificate, the simulated ACI cloud's HTTPS). Keys are ECDSA P-256: cheap to make
and to sign with. Certificates start five minutes in the past, so that a clock a little behind
still accepts a certificate made a moment ago. kopf's self-signed path needs ``oscrypto``, which
fails on OpenSSL 3; this needs nothing but ``cryptography``.

A leaf module: it imports nothing of vnode, so the simulated cloud may use it too.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BACKDATE = datetime.timedelta(minutes=5)

_CA_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def sans(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """Subject alternative names: an IP address SAN for each address, a DNS SAN for each other name."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now or datetime.datetime.now(datetime.UTC)


def make_ca(
    common_name: str,
    *,
    validity: datetime.timedelta,
    path_length: int | None = 0,
    now: datetime.datetime | None = None,
) -> Pem:
    """A new self-signed CA (``path_length`` None: it may sign intermediate CAs)."""
    now = _now(now)
    key = new_key()
    subject = name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


def issue(
    ca: Pem,
    *,
    common_name: str,
    validity: datetime.timedelta,
    organization: str | None = None,
    hosts: Sequence[str] = (),
    client: bool = False,
    server: bool = False,
    now: datetime.datetime | None = None,
) -> Pem:
    """A certificate signed by ``ca``: ``hosts`` become SANs, ``client``/``server`` its extended key usages."""
    now = _now(now)
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the CA key must be an EC or RSA key")
    key = new_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans(hosts)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


def write_pair(pem: Pem, cert_path: pathlib.Path, key_path: pathlib.Path) -> None:
    """Write key (mode 0600) then certificate, each atomically (rename), so a reader never sees half a file."""
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    for path, data, mode in ((key_path, pem.key, 0o600), (cert_path, pem.cert, 0o644)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(mode)
        tmp.replace(path)


def read_pair(cert_path: pathlib.Path, key_path: pathlib.Path) -> Pem:
    return Pem(cert_path.read_bytes(), key_path.read_bytes())
