"""The kubelet API's serving certificate: issued by the cluster's signer through a CSR, and renewed."""

from __future__ import annotations

import datetime
import socket
import ssl

import pytest
from cryptography import x509

from tests.kubelet.conftest import Kubelet
from vnode.kube import client as kube_client
from vnode.kube import config as kube_config
from vnode.kubelet import certs, clock

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
    before = _served(kubelet)

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
