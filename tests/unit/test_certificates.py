"""The one certificate builder (vnode/certificates.py): a CA, and certificates it signs as each caller needs."""

from __future__ import annotations

import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vnode import certificates

DAY = datetime.timedelta(days=1)


def test_a_ca_is_self_signed_limited_to_signing_leaves_unless_asked_and_backdated() -> None:
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    ca = x509.load_pem_x509_certificate(certificates.make_ca("test CA", validity=DAY, now=now).cert)
    assert ca.subject == ca.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert ca.not_valid_before_utc == now - certificates.BACKDATE
    assert ca.not_valid_after_utc == now + DAY
    deeper = certificates.make_ca("root", validity=DAY, path_length=None)
    assert (
        x509.load_pem_x509_certificate(deeper.cert)
        .extensions.get_extension_for_class(x509.BasicConstraints)
        .value.path_length
        is None
    )


def test_an_issued_certificate_names_its_hosts_usages_and_issuer() -> None:
    ca = certificates.make_ca("test CA", validity=DAY)
    pem = certificates.issue(
        ca, common_name="admin", organization="system:masters", hosts=("localhost", "127.0.0.1"),
        client=True, server=True, validity=DAY,
    )  # fmt: skip
    cert = x509.load_pem_x509_certificate(pem.cert)
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_a_client_certificate_has_no_sans(tmp_path: pathlib.Path) -> None:
    ca = certificates.make_ca("test CA", validity=DAY)
    pem = certificates.issue(ca, common_name="kube-scheduler", client=True, validity=DAY)
    cert = x509.load_pem_x509_certificate(pem.cert)
    assert not [e for e in cert.extensions if isinstance(e.value, x509.SubjectAlternativeName)]
    certificates.write_pair(pem, tmp_path / "c.crt", tmp_path / "c.key")
    assert (tmp_path / "c.key").stat().st_mode & 0o777 == 0o600
    assert certificates.read_pair(tmp_path / "c.crt", tmp_path / "c.key") == pem
