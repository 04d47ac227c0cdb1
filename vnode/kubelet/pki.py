"""The serving certificate's cryptography, run in a short-lived child process (``python -m vnode.kubelet.pki``).

The daemon needs ``cryptography`` only to make a key and a CSR, to read its certificate's names
and dates, and to check a CSR before approving it: a few times a year. Importing it costs every
daemon about 10 MB of resident memory for its whole life (the library's compiled code, mapped in
as it is imported), a sixth of an idle node. So ``kubelet/certs.py`` runs these few functions in
a child process, when the daemon starts and when its certificate is due for renewal, and the
daemon itself never imports ``cryptography``.

The protocol is one JSON object per line each way: ``{"op": name, "args": {...}}`` in,
``{"result": ...}`` or ``{"error": message}`` out. The functions below are also called directly
by the tests.
"""

from __future__ import annotations

import base64
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from vnode import certificates

__all__ = ["new_request", "renewal_due", "request_mismatch", "subject"]


def renewal_due(cert: str, key: str, addresses: Sequence[str]) -> str | None:
    """When the certificate at path ``cert`` (its key at ``key``) has a fifth of its life left, in
    ISO 8601; None if either is missing or unreadable, or the certificate does not name ``addresses``."""
    try:
        parsed = x509.load_pem_x509_certificate(pathlib.Path(cert).read_bytes())
        pathlib.Path(key).stat()
    except (OSError, ValueError):
        return None
    try:
        present = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    if any(name not in present for name in certificates.sans(addresses)):
        return None
    lifetime = parsed.not_valid_after_utc - parsed.not_valid_before_utc
    return (parsed.not_valid_after_utc - lifetime / 5).isoformat()


def subject(node_name: str) -> x509.Name:
    """A kubelet serving certificate's subject, as the kubelet-serving signer wants it."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}"),
        ]
    )


def new_request(node_name: str, addresses: Sequence[str]) -> dict[str, str]:
    """A new ECDSA key and a PEM CSR for it: the node's name as subject, its addresses as SANs."""
    key = certificates.new_key()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject(node_name))
        .add_extension(x509.SubjectAlternativeName(certificates.sans(addresses)), critical=False)
        .sign(key, hashes.SHA256())
    )
    return {"key": certificates.key_pem(key).decode(), "csr": request.public_bytes(serialization.Encoding.PEM).decode()}


def request_mismatch(request: str, node_name: str, addresses: Sequence[str]) -> str:
    """Why the base64 PEM CSR ``request`` is not ``node_name``'s serving request ('' if it is)."""
    try:
        parsed = x509.load_pem_x509_csr(base64.b64decode(request, validate=True))
    except ValueError:
        return "its request is not a PEM certificate request"
    if parsed.subject != subject(node_name):
        return f"its subject {parsed.subject.rfc4514_string()!r} is not node {node_name}'s"
    try:
        names = list(parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = []
    if sorted(map(str, names)) != sorted(map(str, certificates.sans(addresses))):
        return f"its names {[str(n.value) for n in names]} are not exactly the node's addresses {list(addresses)}"
    return ""


_OPS: dict[str, Any] = {"renewal_due": renewal_due, "new_request": new_request, "request_mismatch": request_mismatch}


def serve(lines: Any = sys.stdin, out: Any = sys.stdout) -> None:
    """Answer requests, one JSON line each, until the input ends."""
    for line in lines:
        try:
            request = json.loads(line)
            answer = {"result": _OPS[request["op"]](**request["args"])}
        except Exception as exc:  # one bad request is answered, not the child's end
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
