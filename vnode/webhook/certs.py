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
which fails on OpenSSL 3), by ``vnode/certificates.py``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import ssl
from collections.abc import Sequence

from cryptography import x509

from vnode import certificates

CA_VALIDITY = datetime.timedelta(days=3650)
SERVING_VALIDITY = datetime.timedelta(days=365)

Pem = certificates.Pem  # a certificate and its private key, PEM-encoded
write_pair = certificates.write_pair


@dataclasses.dataclass(frozen=True)
class Files:
    """Where the server reads its certificate and key, and the CA bundle to register."""

    cert: pathlib.Path
    key: pathlib.Path
    ca: pathlib.Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(common_name: str = "vnode-webhook-ca", *, now: datetime.datetime | None = None) -> Pem:
    """A new self-signed CA."""
    return certificates.make_ca(common_name, validity=CA_VALIDITY, now=now)


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
    return certificates.issue(ca, common_name=hosts[0], hosts=hosts, server=True, validity=validity, now=now)


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
