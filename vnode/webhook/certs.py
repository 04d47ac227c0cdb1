"""The webhook's TLS: its own CA and serving certificate, or files given to it; reloaded when they change.

Two ways to get a certificate:

* **self-managed** (default): a CA kept in ``--cert-dir`` (or, for several replicas, in a
  Secret they share, so one caBundle trusts them all) signs a serving certificate for the
  webhook's host names. The serving certificate is re-issued when it is missing, names other
  hosts, or has less than a third of its life left.
* **given** (cert-manager or any other issuer): ``--tls-cert-file``, ``--tls-key-file`` and
  ``--ca-file``; the issuer rotates them on disk.

Either way the server's ``ssl.SSLContext`` is reloaded in place when the files change: new
handshakes get the new certificate, established connections keep theirs, nothing restarts.
Certificates are made with ``cryptography`` (kopf's self-signed path needs ``oscrypto``,
which fails on OpenSSL 3), in the style of ``vnode/cluster/pki.py``.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pathlib
import ssl
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
SERVING_VALIDITY = datetime.timedelta(days=365)


@dataclasses.dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes


@dataclasses.dataclass(frozen=True)
class Files:
    """Where the server reads its certificate and key, and the CA bundle to register."""

    cert: pathlib.Path
    key: pathlib.Path
    ca: pathlib.Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(common_name: str = "vnode-webhook-ca", *, now: datetime.datetime | None = None) -> Pem:
    """A new self-signed CA."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = x509.KeyUsage(
        digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_serving(
    ca: Pem,
    hosts: Sequence[str],
    *,
    validity: datetime.timedelta = SERVING_VALIDITY,
    now: datetime.datetime | None = None,
) -> Pem:
    """A serving certificate signed by ``ca`` for ``hosts`` (DNS names or IP addresses)."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host name")
    now = now or _now()
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the webhook CA key must be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def needs_reissue(
    cert_pem: bytes, hosts: Sequence[str], ca_pem: bytes, *, now: datetime.datetime | None = None
) -> bool:
    """True if the serving certificate names other hosts, comes from another CA, or is in its last third."""
    now = now or _now()
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return True
    named = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} | set(sans.get_values_for_type(x509.DNSName))
    if named != set(hosts) or cert.issuer != ca.subject:
        return True
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < life / 3


def write_pair(pem: Pem, cert_path: pathlib.Path, key_path: pathlib.Path) -> None:
    """Write key then certificate, each atomically (rename), so a reader never sees half a file."""
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    for path, data, mode in ((key_path, pem.key, 0o600), (cert_path, pem.cert, 0o644)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(mode)
        tmp.replace(path)


def ensure_self_managed(cert_dir: pathlib.Path, hosts: Sequence[str], ca: Pem | None = None) -> Files:
    """Make (or keep) the CA and serving certificate in ``cert_dir``; ``ca`` comes from a shared Secret if given."""
    files = Files(cert_dir / "tls.crt", cert_dir / "tls.key", cert_dir / "ca.crt")
    ca_key = cert_dir / "ca.key"
    if ca is None:
        if files.ca.exists() and ca_key.exists():
            ca = Pem(files.ca.read_bytes(), ca_key.read_bytes())
        else:
            ca = make_ca()
            write_pair(ca, files.ca, ca_key)
    elif not files.ca.exists() or files.ca.read_bytes() != ca.cert:
        write_pair(ca, files.ca, ca_key)
    current = files.cert.read_bytes() if files.cert.exists() and files.key.exists() else b""
    if needs_reissue(current, hosts, ca.cert):
        write_pair(issue_serving(ca, hosts), files.cert, files.key)
    return files


class ServingContext:
    """The server's SSLContext, reloaded in place when the certificate or key file changes."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp = self._fingerprint()
        self.context.load_cert_chain(files.cert, files.key)

    def _fingerprint(self) -> tuple[int, ...]:
        stamp: list[int] = []
        for path in (self.files.cert, self.files.key, self.files.ca):
            try:
                st = os.stat(path)
            except OSError:
                stamp += [0, 0, 0]
                continue
            stamp += [st.st_mtime_ns, st.st_size, st.st_ino]
        return tuple(stamp)

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed since the last load; True if the context now serves new ones.

        A half-rotated pair (a key that does not match the certificate yet) fails to load; the
        old certificate keeps serving and the next call tries again.
        """
        stamp = self._fingerprint()
        if stamp == self._stamp:
            return False
        # Try the pair on a scratch context first: a failed load can leave a context half-updated.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.files.cert, self.files.key)
        self.context.load_cert_chain(self.files.cert, self.files.key)
        self._stamp = stamp
        return True

    def ca_bundle(self) -> bytes:
        return self.files.ca.read_bytes()
