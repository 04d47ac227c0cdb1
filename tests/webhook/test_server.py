"""The HTTPS server on loopback, without an API server: reviews, errors, health, metrics, certificate rotation.

Namespace labels come from a fixed table here (``StaticNamespaces``); everything that needs
the API server's behaviour is in test_cluster.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import pathlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from tests.waiting import until
from vnode.webhook import certs, namespaces, server, service

LABELS = {"forced": {"virtual-node-affinity-injection": "enabled"}, "plain": {}}


def review_body(namespace: str = "forced", **pod_meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "1234-abcd",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": {"metadata": {"generateName": "web-", **pod_meta}, "spec": {"containers": []}},
        },
    }


class Served:
    def __init__(self, webhook: service.Webhook, ca: pathlib.Path) -> None:
        self.webhook = webhook
        self.ssl = ssl.create_default_context(cafile=str(ca))
        self.url = f"https://127.0.0.1:{webhook.port}"

    async def post(self, body: bytes) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/mutate", data=body, ssl=self.ssl) as resp,
        ):
            return resp.status, await resp.json()

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}{path}", ssl=self.ssl) as resp:
            return resp.status, await resp.text()

    async def peer_serial(self) -> int:
        _, writer = await asyncio.open_connection("127.0.0.1", self.webhook.port, ssl=self.ssl)
        try:
            return int(writer.get_extra_info("peercert")["serialNumber"], 16)
        finally:
            writer.close()
            await writer.wait_closed()


async def start(settings: service.Settings) -> tuple[service.Webhook, asyncio.Task[None]]:
    webhook = service.Webhook(settings, kube=None, labels=namespaces.StaticNamespaces(LABELS))
    task = asyncio.create_task(webhook.run())
    ready = asyncio.create_task(webhook.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        task.cancel()
        pytest.fail(f"the webhook did not get ready: {task.exception() if task.done() else 'timeout'}")
    return webhook, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def served(tmp_path: pathlib.Path) -> AsyncIterator[Served]:
    tls = service.SelfManagedTLS(tmp_path / "certs", ("127.0.0.1", "localhost"))
    settings = service.Settings(tls=tls, port=0, deletion_cost=None, cert_check_interval=0.2)
    webhook, task = await start(settings)
    try:
        yield Served(webhook, tmp_path / "certs" / "ca.crt")
    finally:
        await stop(task)


async def test_a_review_gets_a_jsonpatch_for_its_uid(served: Served) -> None:
    status, answer = await served.post(json.dumps(review_body()).encode())
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    response = answer["response"]
    assert response["uid"] == "1234-abcd"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    paths = [op["path"] for op in json.loads(base64.b64decode(response["patch"]))]
    assert paths == ["/spec/tolerations", "/spec/nodeSelector"]


async def test_an_unlabelled_namespace_gets_no_patch(served: Served) -> None:
    status, answer = await served.post(json.dumps(review_body("plain")).encode())
    assert status == 200
    assert answer["response"] == {"uid": "1234-abcd", "allowed": True}


async def test_an_impossible_pod_gets_a_warning_and_no_patch(served: Served) -> None:
    body = review_body()
    body["request"]["object"]["spec"]["nodeSelector"] = {"type": "gpu"}
    _, answer = await served.post(json.dumps(body).encode())
    assert "patch" not in answer["response"]
    assert "type=gpu" in answer["response"]["warnings"][0]


MALFORMED = [
    pytest.param(b"{not json", "not JSON", id="not-json"),
    pytest.param(b"[]", "not a JSON object", id="not-an-object"),
    pytest.param(json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}).encode(),
                 "expected apiVersion admission.k8s.io/v1", id="old-version"),
    pytest.param(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
                 "request is missing", id="no-request"),
    pytest.param(json.dumps({**review_body(), "request": {**review_body()["request"], "uid": ""}}).encode(),
                 "request.uid is missing", id="no-uid"),
    pytest.param(json.dumps({**review_body(), "request": {**review_body()["request"], "object": None}}).encode(),
                 "request.object is missing", id="no-object"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "named"), MALFORMED)
async def test_a_malformed_review_gets_400_naming_the_problem_and_the_server_keeps_serving(
    served: Served, body: bytes, named: str
) -> None:
    status, answer = await served.post(body)
    assert status == 400
    assert named in answer["error"]
    status, _ = await served.post(json.dumps(review_body()).encode())
    assert status == 200
    _, text = await served.get("/metrics")
    assert 'vnode_webhook_reviews_total{mode="none",result="malformed"} 1.0' in text


async def test_healthz_readyz_and_metrics(served: Served) -> None:
    await served.post(json.dumps(review_body()).encode())
    await served.post(json.dumps(review_body("plain")).encode())
    assert await served.get("/healthz") == (200, "ok\n")
    assert await served.get("/readyz") == (200, "ok\n")
    status, text = await served.get("/metrics")
    assert status == 200
    assert 'vnode_webhook_reviews_total{mode="force",result="mutated"} 1.0' in text
    assert 'vnode_webhook_reviews_total{mode="none",result="not-selected"} 1.0' in text
    assert 'vnode_webhook_review_duration_seconds_count{mode="force"} 1.0' in text


async def test_a_rotated_certificate_is_served_without_a_restart(served: Served, tmp_path: pathlib.Path) -> None:
    before = await served.peer_serial()
    cert_dir = tmp_path / "certs"
    ca = certs.Pem((cert_dir / "ca.crt").read_bytes(), (cert_dir / "ca.key").read_bytes())
    rotated = certs.issue_serving(ca, ["127.0.0.1", "localhost"])
    certs.write_pair(rotated, cert_dir / "tls.crt", cert_dir / "tls.key")
    expected = x509.load_pem_x509_certificate(rotated.cert).serial_number

    async def serving_new() -> bool:
        return await served.peer_serial() == expected

    await until(serving_new, within=10, what="the rotated certificate to be served")
    assert before != expected
    status, _ = await served.post(json.dumps(review_body()).encode())
    assert status == 200
    _, text = await served.get("/metrics")
    assert "vnode_webhook_certificate_reloads_total 1.0" in text


async def test_no_review_fails_while_the_certificate_rotates_under_load(served: Served, tmp_path: pathlib.Path) -> None:
    """Reviews keep coming (eight at a time, as the API server sends them) while the certificate is
    replaced on disk and reloaded: every one is answered 200, before, during and after."""
    cert_dir = tmp_path / "certs"
    ca = certs.Pem((cert_dir / "ca.crt").read_bytes(), (cert_dir / "ca.key").read_bytes())
    rotated = certs.issue_serving(ca, ["127.0.0.1", "localhost"])
    expected = x509.load_pem_x509_certificate(rotated.cert).serial_number
    body = json.dumps(review_body()).encode()
    answered: list[int] = []
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            answered.extend(status for status, _ in await asyncio.gather(*(served.post(body) for _ in range(8))))

    loading = asyncio.create_task(load())
    try:
        await until(lambda: len(answered) >= 40, within=30, what="reviews answered before the rotation")
        certs.write_pair(rotated, cert_dir / "tls.crt", cert_dir / "tls.key")

        async def serving_new() -> bool:
            return await served.peer_serial() == expected

        await until(serving_new, within=10, what="the rotated certificate to be served")
        count = len(answered)
        await until(lambda: len(answered) >= count + 40, within=30, what="reviews answered after the rotation")
    finally:
        stop.set()
        await loading
    assert set(answered) == {200}, f"{len(answered)} reviews, answers {sorted(set(answered))}"


async def test_given_certificate_files_are_served(tmp_path: pathlib.Path) -> None:
    ca = certs.make_ca("cert-manager-ca")
    pair = certs.issue_serving(ca, ["127.0.0.1"])
    files = certs.Files(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt")
    certs.write_pair(pair, files.cert, files.key)
    files.ca.write_bytes(ca.cert)
    webhook, task = await start(service.Settings(tls=service.GivenTLS(files), port=0, deletion_cost=None))
    try:
        status, _ = await Served(webhook, files.ca).post(json.dumps(review_body()).encode())
        assert status == 200
    finally:
        await stop(task)


def test_self_managed_certificates_are_kept_until_due(tmp_path: pathlib.Path) -> None:
    first = certs.ensure_self_managed(tmp_path, ("127.0.0.1",))
    cert = first.cert.read_bytes()
    assert certs.ensure_self_managed(tmp_path, ("127.0.0.1",)).cert.read_bytes() == cert
    # Other host names: a new serving certificate from the same CA.
    ca = first.ca.read_bytes()
    second = certs.ensure_self_managed(tmp_path, ("127.0.0.1", "webhook.vnode.svc"))
    assert second.cert.read_bytes() != cert
    assert second.ca.read_bytes() == ca
    assert not certs.needs_reissue(second.cert.read_bytes(), ("127.0.0.1", "webhook.vnode.svc"), ca)


async def test_a_body_over_4_mb_gets_413_and_the_server_keeps_serving(served: Served) -> None:
    status, _ = await _raw_status(served, b"x" * (server.MAX_BODY + 1))
    assert status == 413
    status, _ = await served.post(json.dumps(review_body()).encode())
    assert status == 200


async def _raw_status(served: Served, body: bytes) -> tuple[int, bytes]:
    data = io.BytesIO(body)
    async with aiohttp.ClientSession() as session, session.post(f"{served.url}/mutate", data=data, ssl=served.ssl) as r:
        return r.status, await r.read()


async def test_slow_and_stalled_clients_hold_nothing_up(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fifty connections that send half their headers, and one whose body stalls: a review is answered
    meanwhile, and the stalled body gets 408 once the body's time is up."""
    monkeypatch.setattr(server, "BODY_SECONDS", 0.5)
    port = served.webhook.port
    half: list[asyncio.StreamWriter] = []
    try:
        for _ in range(50):
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=served.ssl)
            writer.write(b"POST /mutate HTTP/1.1\r\nHost: x\r\n")
            half.append(writer)
        reader, stalled = await asyncio.open_connection("127.0.0.1", port, ssl=served.ssl)
        half.append(stalled)
        stalled.write(b'POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"apiVersion"')
        await stalled.drain()
        status, _ = await asyncio.wait_for(served.post(json.dumps(review_body()).encode()), timeout=10)
        assert status == 200
        line = await asyncio.wait_for(reader.readline(), timeout=10)
        assert line.startswith(b"HTTP/1.1 408"), line
    finally:
        for writer in half:
            writer.close()
