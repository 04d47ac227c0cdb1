"""The kubelet API's serving certificate: requested from the cluster's signer, or given.

The API server verifies a kubelet's serving certificate against the cluster CA
(``--kubelet-certificate-authority``) and the node's address, so a self-signed certificate
makes ``kubectl logs`` fail on TLS (a complaint users of other virtual kubelets know well).
The real kubelet solves it with a CertificateSigningRequest to the ``kubernetes.io/kubelet-serving``
signer, and so does :func:`request_serving_certificate`: an ECDSA key made here, a CSR with
subject ``O=system:nodes, CN=system:node:<node>`` and the node's addresses as SANs, usages
digital signature and server auth (exactly what the signer accepts). The daemon approves its
own request when RBAC lets it (``approve`` on ``signers`` named ``kubernetes.io/kubelet-serving``,
``update`` on ``certificatesigningrequests/approval``), else it waits for an administrator or
an approver (``kubectl certificate approve``); the controller-manager signs it with the cluster CA.
RBAC cannot narrow that grant to one node, so :func:`approve_own` approves only a CSR whose
requester, subject and names are exactly this daemon's and its node's.

The fallback is a certificate and key given by path (``ServingFiles``), e.g. issued by
cert-manager from the cluster CA.

The cryptography itself (the key, the CSR, reading names and dates) runs in a child process,
``kubelet/pki.py``, when the daemon starts and when the certificate is due for renewal, so that the
daemon never imports ``cryptography``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import json
import logging
import pathlib
import secrets
import ssl
import sys
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from vnode import errors
from vnode.kube import api, client
from vnode.kubelet import clock as clock_mod

__all__ = [
    "SIGNER",
    "USAGES",
    "Rotator",
    "ServingFiles",
    "approve_own",
    "client_ca_from_cluster",
    "request_serving_certificate",
    "server_ssl_context",
]

log = logging.getLogger(__name__)

SIGNER = "kubernetes.io/kubelet-serving"
USAGES = ("digital signature", "server auth")
CERT_FILE, KEY_FILE = "kubelet-serving.crt", "kubelet-serving.key"  # in the certificate directory


@dataclasses.dataclass(frozen=True, slots=True)
class ServingFiles:
    """A PEM certificate (chain) and its key, as files; for one from a CSR, when it is due for renewal."""

    cert: pathlib.Path
    key: pathlib.Path
    renew_at: datetime.datetime | None = dataclasses.field(default=None, compare=False)


async def client_ca_from_cluster(kube: client.Client) -> str:
    """The CA bundle that signs client certificates, as the API server publishes it.

    ``kube-system/extension-apiserver-authentication`` holds the API server's ``--client-ca-file``
    (what aggregated API servers trust too); reading it needs the Role
    ``extension-apiserver-authentication-reader`` in kube-system.
    """
    name = "extension-apiserver-authentication"
    bundle = (await api.read(kube, api.config_maps("kube-system"), name)).data.get("client-ca-file", "")
    if not bundle:
        raise errors.NotFound(f"kube-system/{name} has no client-ca-file: the API server runs without --client-ca-file")
    return str(bundle)


def server_ssl_context(serving: ServingFiles, client_ca: pathlib.Path | str) -> ssl.SSLContext:
    """TLS for the kubelet API: our certificate; client certificates optional, checked against
    ``client_ca`` (a PEM file, or the PEM text itself)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if isinstance(client_ca, pathlib.Path):
        context.load_verify_locations(cafile=str(client_ca))
    else:
        context.load_verify_locations(cadata=client_ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(serving.cert, serving.key)
    context.verify_mode = ssl.CERT_OPTIONAL  # no certificate: the middleware tries a token, then says 401
    return context


class _Pki:
    """A child process doing the serving certificate's cryptography (``kubelet/pki.py``), for one check."""

    _proc: asyncio.subprocess.Process
    _to: asyncio.StreamWriter
    _from: asyncio.StreamReader
    _said: asyncio.StreamReader

    async def __aenter__(self) -> _Pki:
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "vnode.kubelet.pki",
                                                    stdin=pipe, stdout=pipe, stderr=pipe)  # fmt: skip
        if proc.stdin is None or proc.stdout is None or proc.stderr is None:  # pragma: no cover (all three piped)
            raise errors.Unavailable("the certificate helper started without its pipes")
        self._proc, self._to, self._from, self._said = proc, proc.stdin, proc.stdout, proc.stderr
        return self

    async def call(self, op: str, **args: Any) -> Any:
        try:
            self._to.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
            await self._to.drain()
        except ConnectionError:  # it has ended already: its stderr says why
            pass
        line = await self._from.readline()
        if not line:
            said = (await self._said.read()).decode(errors="replace").strip()[-500:]
            raise errors.Unavailable(f"the certificate helper (python -m vnode.kubelet.pki) ended: {said}")
        answer = json.loads(line)
        if "error" in answer:
            raise errors.Unavailable(f"the certificate helper's {op} failed: {answer['error']}")
        return answer["result"]

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._to.close()  # its input ends: it exits
        try:
            async with asyncio.timeout(5.0 if kind is None else 0.1):  # not wait_for: see vnode/waits.py
                await self._proc.wait()
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()


async def request_serving_certificate(
    kube: client.Client,
    node_name: str,
    addresses: Sequence[str],
    directory: pathlib.Path,
    *,
    clock: clock_mod.Clock,
    approve: bool = True,
    wait_seconds: float = 300.0,
    poll_interval: float = 0.5,
    as_node: client.Client | None = None,
) -> ServingFiles:
    """A serving certificate for ``node_name`` signed by the cluster CA, written into ``directory``.

    Reuses the one written before if it still covers ``addresses`` and is not near its end.
    With ``as_node`` (the daemon acting as its node, kube/identity.py) the CSR is asked and read
    as the node, as a kubelet's is: its requester is ``system:node:<node_name>``, NodeRestriction
    refuses it unless its subject names that node, and the cluster's approvers of kubelets'
    serving CSRs see it as one. ``kube`` approves it.
    Raises ``errors.Forbidden`` if the CSR is denied or fails, ``errors.Unavailable`` if nobody
    approves or signs it within ``wait_seconds``.
    """
    files = ServingFiles(directory / CERT_FILE, directory / KEY_FILE)
    asker = as_node or kube
    async with _Pki() as pki:
        due = await _renewal_due(pki, files, addresses)
        if due is not None and clock.now() < due:
            return dataclasses.replace(files, renew_at=due)
        made = await pki.call("new_request", node_name=node_name, addresses=list(addresses))
        name = f"vnode-serving-{node_name}-{secrets.token_hex(4)}"[:253]
        body = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name, "labels": {"vnode.io/node": node_name[:63]}},
            "spec": {
                "request": base64.b64encode(made["csr"].encode()).decode(),
                "signerName": SIGNER,
                "usages": list(USAGES),
            },
        }
        created = await api.create_certificate_signing_request(asker, body)
        if approve:
            requester = str(created.get("spec", {}).get("username", ""))
            await approve_own(kube, name, requester=requester, node_name=node_name, addresses=addresses,
                              read_as=asker, pki=pki)  # fmt: skip
    # The helper is not kept while an approver may take minutes: another one reads the new certificate.
    signed = await _signed(asker, name, clock=clock, wait_seconds=wait_seconds, poll_interval=poll_interval)
    _write(files, made["key"].encode(), signed)
    async with _Pki() as pki:
        return dataclasses.replace(files, renew_at=await _renewal_due(pki, files, addresses))


async def _renewal_due(pki: _Pki, files: ServingFiles, addresses: Sequence[str]) -> datetime.datetime | None:
    """When the certificate in ``files`` has a fifth of its life left; None: none there that names ``addresses``."""
    due = await pki.call("renewal_due", cert=str(files.cert), key=str(files.key), addresses=list(addresses))
    return datetime.datetime.fromisoformat(due) if due else None


async def _signed(
    asker: client.Client, name: str, *, clock: clock_mod.Clock, wait_seconds: float, poll_interval: float
) -> bytes:
    """The certificate of CSR ``name`` (PEM) once approved and signed."""
    deadline = clock.monotonic() + wait_seconds
    while True:
        status = (await api.read(asker, api.CERTIFICATE_SIGNING_REQUESTS, name)).status
        for condition in status.conditions:
            if condition.type in ("Denied", "Failed") and condition.status == "True":
                raise errors.Forbidden(f"CSR {name} {condition.type.lower()}: {condition.message}")
        if status.certificate:
            return base64.b64decode(status.certificate)
        if clock.monotonic() > deadline:
            raise errors.Unavailable(f"CSR {name} was not approved and signed within {wait_seconds:.0f}s")
        await asyncio.sleep(poll_interval)


async def approve_own(
    kube: client.Client,
    name: str,
    *,
    requester: str,
    node_name: str,
    addresses: Sequence[str],
    read_as: client.Client | None = None,
    pki: _Pki | None = None,
) -> bool:
    """Approve the CSR ``name`` if, and only if, it is this node's own request; True if approved.

    RBAC lets whoever may approve ``kubelet-serving`` CSRs approve any of them, whoever asked
    and whatever node they name; so the CSR, as read, must be asked by ``requester`` (the
    daemon's own identity, as the API server recorded it), for the signer and usages the
    daemon asks, with the subject of ``node_name`` and exactly ``addresses`` as its names. The
    approval sends back the resourceVersion read: a CSR changed since is a Conflict, never
    approved. Anything else is left, with a warning, to the cluster's approvers. The CSR is read as
    ``read_as`` (the node that asked it), else as ``kube``. ``pki``: the renewal's helper process, if one runs.
    """
    current = await api.read_certificate_signing_request(read_as or kube, name)
    why = _not_own(current, requester)
    if not why:
        async with contextlib.AsyncExitStack() as stack:
            helper = pki if pki is not None else await stack.enter_async_context(_Pki())
            why = await helper.call("request_mismatch", request=current.get("spec", {}).get("request", ""),
                                    node_name=node_name, addresses=list(addresses))  # fmt: skip
    if why:
        log.warning("not approving CSR %s: %s", name, why, extra={"node": node_name})
        return False
    approved = {
        "type": "Approved",
        "status": "True",
        "reason": "VnodeSelfApproved",
        "message": f"vnode approved the serving certificate of its virtual node {node_name}",
    }
    try:
        await api.approve_certificate_signing_request(kube, current, approved)
    except (errors.Forbidden, errors.Conflict) as exc:
        log.warning("cannot approve own CSR %s (%s); waiting for an approver", name, exc, extra={"node": node_name})
        return False
    return True


def _not_own(csr: Mapping[str, Any], requester: str) -> str:
    """Why ``csr`` is not a serving request by ``requester`` still open ('' if it is); its
    subject and names are for the helper process to check."""
    spec = csr.get("spec", {})
    if not requester or spec.get("username") != requester:
        return f"requested by {spec.get('username')!r}, not by this daemon ({requester!r})"
    if spec.get("signerName") != SIGNER or sorted(spec.get("usages", [])) != sorted(USAGES):
        return f"signer {spec.get('signerName')!r} and usages {spec.get('usages')} are not the ones asked"
    if csr.get("status", {}).get("conditions"):
        return "it is already approved or denied"
    return ""


def _write(files: ServingFiles, key_pem: bytes, cert_pem: bytes) -> None:
    files.key.parent.mkdir(parents=True, exist_ok=True)
    files.key.touch(mode=0o600)
    files.key.write_bytes(key_pem)
    files.cert.write_bytes(cert_pem)


class Rotator:
    """Keeps a CSR-issued serving certificate fresh in a live ``SSLContext``.

    Every ``check_interval`` seconds it looks whether the certificate is due: once it has a fifth
    of its life left (the signer gives a year by default, ``--cluster-signing-duration``), or its
    file changed, it asks :func:`request_serving_certificate`, which reuses the certificate on disk
    if it is still good and else requests a new one. A new certificate is
    loaded into ``context``: new connections get it, open ones (a long ``logs -f``) keep theirs.
    A failed renewal is logged and retried at the next check; the old certificate serves until
    it expires. ``ready`` is set after the first check. ``current``: the certificate ``context``
    serves already, as :func:`request_serving_certificate` gave it (checked: the first look is free).
    """

    def __init__(
        self,
        kube: client.Client,
        node_name: str,
        addresses: Sequence[str],
        directory: pathlib.Path,
        context: ssl.SSLContext,
        *,
        clock: clock_mod.Clock,
        check_interval: float = 600.0,
        wait_seconds: float = 300.0,
        as_node: client.Client | None = None,
        current: ServingFiles | None = None,
    ) -> None:
        self.kube, self.node_name, self.addresses, self.directory = kube, node_name, tuple(addresses), directory
        self.as_node = as_node
        self.context, self.clock = context, clock
        self.check_interval, self.wait_seconds = check_interval, wait_seconds
        self.ready = asyncio.Event()
        self._loaded: bytes | None = None
        self._renew_at: datetime.datetime | None = None
        self._checked: tuple[int, int] | None = None  # the certificate file's (mtime, size) then
        if current is not None and current.renew_at is not None:  # ``context`` serves it: checked already
            self._loaded, self._renew_at, self._checked = current.cert.read_bytes(), current.renew_at, self._stamp()

    async def renew_once(self) -> bool:
        """Check once; True if a new certificate was loaded.

        Until the certificate checked last is due for renewal, and while its file is unchanged,
        there is nothing to check (and no helper process to start)."""
        if self._renew_at is not None and self.clock.now() < self._renew_at and self._stamp() == self._checked:
            return False
        files = await request_serving_certificate(self.kube, self.node_name, self.addresses, self.directory,
                                                  clock=self.clock, wait_seconds=self.wait_seconds,
                                                  as_node=self.as_node)  # fmt: skip
        self._renew_at, self._checked = files.renew_at, self._stamp()
        pem = files.cert.read_bytes()
        if pem == self._loaded:
            return False
        self.context.load_cert_chain(files.cert, files.key)
        changed = self._loaded is not None
        self._loaded = pem
        if changed:
            log.info("kubelet serving certificate renewed", extra={"node": self.node_name})
        return changed

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = (self.directory / CERT_FILE).stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    async def run(self) -> None:
        while True:
            try:
                await self.renew_once()
            except Exception as exc:  # never the daemon's end: the old certificate serves until it expires
                log.warning("kubelet serving certificate: renewal failed: %s", exc, extra={"node": self.node_name})
            self.ready.set()
            await asyncio.sleep(self.check_interval)
