"""The kubelet API's serving certificate: issued by the cluster's signer through a CSR, and renewed."""

from __future__ import annotations

import asyncio
import base64
import datetime
import http.client
import json
import pathlib
import secrets
import socket
import ssl

import pytest
from cryptography import x509

from tests.kubelet.conftest import Kubelet
from vnode import errors
from vnode.cluster import launcher
from vnode.kube import api, identity
from vnode.kube import client as kube_client
from vnode.kube import config as kube_config
from vnode.kubelet import certs, clock, pki

pytestmark = pytest.mark.cluster


def _served(kubelet: Kubelet) -> x509.Certificate:
    """The certificate a new TLS connection gets, verified against the cluster CA and 127.0.0.1."""
    context = ssl.create_default_context(cafile=str(kubelet.ca_file))
    with (
        socket.create_connection(("127.0.0.1", kubelet.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_the_serving_certificate_comes_from_the_kubelet_serving_signer(kubelet: Kubelet) -> None:
    cert = _served(kubelet)
    assert cert.subject.rfc4514_string() == f"CN=system:node:{kubelet.node},O=system:nodes"
    ca = x509.load_pem_x509_certificate(kubelet.ca_file.read_bytes())
    assert cert.issuer == ca.subject


class _Shifted(clock.SystemClock):
    def __init__(self) -> None:
        self.offset = datetime.timedelta()

    def now(self) -> datetime.datetime:
        return super().now() + self.offset


def test_a_certificate_near_its_end_is_renewed_in_the_live_server(kubelet: Kubelet) -> None:
    """New connections get the new certificate; one open across the renewal (a `logs -f`, a
    keep-alive) goes on with the old one."""
    before = _served(kubelet)
    context = ssl.create_default_context(cafile=str(kubelet.ca_file))
    context.load_cert_chain(kubelet.pki / "apiserver-kubelet-client.crt", kubelet.pki / "apiserver-kubelet-client.key")
    open_before = http.client.HTTPSConnection("127.0.0.1", kubelet.port, context=context, timeout=30)
    open_before.request("GET", "/healthz")
    assert open_before.getresponse().read() == b"ok"

    async def renew() -> tuple[bool, bool]:
        shifted = _Shifted()
        async with kube_client.Client(kube_config.load_kubeconfig(kubelet.kubeconfig)) as api:
            rotator = certs.Rotator(
                api, kubelet.node, ["127.0.0.1"], kubelet.serving.cert.parent, kubelet.server.ssl_context,
                clock=shifted, wait_seconds=60,
            )  # fmt: skip
            fresh = await rotator.renew_once()
            shifted.offset = datetime.timedelta(days=330)  # less than a fifth of the year left
            return fresh, await rotator.renew_once()

    assert kubelet.call(renew(), timeout=90) == (False, True)
    after = _served(kubelet)
    assert after.serial_number != before.serial_number
    assert after.subject == before.subject
    try:
        open_before.request("GET", "/healthz")  # the same connection, after the renewal
        assert open_before.getresponse().read() == b"ok"
        assert open_before.sock is not None
        der = open_before.sock.getpeercert(binary_form=True)
        assert der is not None
        assert x509.load_der_x509_certificate(der).serial_number == before.serial_number
    finally:
        open_before.close()


def _foreign_csr(name: str, node: str, addresses: list[str]) -> str:
    """A kubelet-serving CSR for ``node`` naming ``addresses``, made as the daemon makes its own."""
    pem = pki.new_request(node, addresses)["csr"].encode()
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64.b64encode(pem).decode(), "signerName": certs.SIGNER, "usages": list(certs.USAGES)},
    }
    return json.dumps(body)


OWN = "vk-own-node"
# (who asks, the node the CSR names, the addresses it names): none of these is the daemon's own.
FOREIGN = {
    "another requester": ("vnode-test-intruder", OWN, ["127.0.0.1"]),
    "another node's name": (None, "vk-other-node", ["127.0.0.1"]),
    "another node's DNS name too": (None, OWN, ["127.0.0.1", "vk-other-node.example"]),
    "another node's IP too": (None, OWN, ["127.0.0.1", "10.9.8.7"]),
    "another node's IP instead": (None, OWN, ["10.9.8.7"]),
}


def test_the_daemon_approves_only_its_own_nodes_csr(cluster: launcher.Info) -> None:
    """RBAC lets the daemon approve every kubelet-serving CSR; its code approves only its own node's."""
    made: list[str] = []

    def create(case: str, requester: str | None, node: str, addresses: list[str]) -> str:
        name = f"vnode-test-{secrets.token_hex(4)}"
        as_user = ["--as", requester, "--as-group", "system:masters"] if requester else []
        cluster.kubectl("create", "-f", "-", *as_user, input=_foreign_csr(name, node, addresses))
        made.append(name)
        return name

    def conditions(name: str) -> str:
        return cluster.kubectl("get", "csr", name, "-o", "jsonpath={.status.conditions[*].type}").stdout

    async def approve_each(names: dict[str, str], own: str) -> dict[str, bool]:
        async with kube_client.Client(kube_config.load_kubeconfig(cluster.kubeconfig)) as kube:
            # The daemon's identity, as the API server records it for what the daemon creates.
            requester = (await api.read_certificate_signing_request(kube, own))["spec"]["username"]
            approved = {}
            for case, name in [*names.items(), ("own", own)]:
                approved[case] = await certs.approve_own(
                    kube, name, requester=requester, node_name=OWN, addresses=["127.0.0.1"]
                )
            return approved

    try:
        foreign = {case: create(case, *args) for case, args in FOREIGN.items()}
        own = create("own", None, OWN, ["127.0.0.1"])
        approved = asyncio.run(approve_each(foreign, own))
        assert approved == {**dict.fromkeys(FOREIGN, False), "own": True}
        assert {case: conditions(name) for case, name in foreign.items()} == dict.fromkeys(FOREIGN, "")
        assert conditions(own) == "Approved"
    finally:
        if made:
            cluster.kubectl("delete", "csr", *made, "--ignore-not-found")


def test_the_daemons_csr_is_its_nodes_own_and_names_no_other_node(
    cluster: launcher.Info, tmp_path: pathlib.Path
) -> None:
    """Asked as the node (settings.node_identity), the CSR's requester is ``system:node:<node>``, as a
    kubelet's is; and NodeRestriction refuses a CSR the node asks for another node's name."""
    node = f"vk-as-node-{secrets.token_hex(3)}"
    made: list[str] = []

    async def ask() -> tuple[dict[str, object], str]:
        async with kube_client.Client(kube_config.load_kubeconfig(cluster.kubeconfig)) as kube:
            as_node = identity.as_node(kube, node)
            await certs.request_serving_certificate(kube, node, ["127.0.0.1"], tmp_path, clock=clock.SystemClock(),
                                                    wait_seconds=60, as_node=as_node)  # fmt: skip
            listed = json.loads(await kube.request("GET", api.CERTIFICATE_SIGNING_REQUESTS.path,
                                                   params={"labelSelector": f"vnode.io/node={node}"}))  # fmt: skip
            made.extend(item["metadata"]["name"] for item in listed["items"])
            (own,) = listed["items"]
            foreign = json.loads(_foreign_csr(f"vnode-test-{secrets.token_hex(4)}", "vk-other-node", ["127.0.0.1"]))
            with pytest.raises(errors.Forbidden) as refused:
                await api.create_certificate_signing_request(as_node, foreign)
            return own["spec"], refused.value.message

    try:
        spec, refusal = asyncio.run(ask())
        assert spec["username"] == f"system:node:{node}"
        assert "system:nodes" in spec["groups"]  # type: ignore[operator]
        assert f"can only create a node CSR with CN=system:node:{node}" in refusal, refusal
    finally:
        if made:
            cluster.kubectl("delete", "csr", *made, "--ignore-not-found")
