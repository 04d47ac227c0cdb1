"""The serving certificate's cryptography runs in a child process; the daemon never imports it."""

from __future__ import annotations

import asyncio
import base64
import datetime
import os
import pathlib
import ssl
import subprocess
import sys
from typing import Any

import pytest

from vnode import certificates, errors
from vnode.kubelet import certs, clock, pki

DAEMON = """
import sys
import vnode.daemon_command, vnode.daemon
from vnode.provider import registry
for name in registry.BUILTIN:
    registry.load(name)
print(sorted({m.split(".")[0] for m in sys.modules if m.startswith("cryptography")}))
"""


def test_a_daemon_with_any_builtin_provider_never_imports_cryptography() -> None:
    """About 10 MB of a daemon's resident memory, for its whole life, for a few calls a year."""
    done = subprocess.run([sys.executable, "-c", DAEMON], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_a_request_is_the_nodes_own_and_no_other_nodes() -> None:
    made = pki.new_request("vk-a", ["127.0.0.1", "vk-a.example"])
    request = base64.b64encode(made["csr"].encode()).decode()
    assert made["key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert pki.request_mismatch(request, "vk-a", ["vk-a.example", "127.0.0.1"]) == ""
    assert "is not node vk-b's" in pki.request_mismatch(request, "vk-b", ["127.0.0.1", "vk-a.example"])
    assert "not exactly the node's addresses" in pki.request_mismatch(request, "vk-a", ["127.0.0.1"])
    assert pki.request_mismatch("bm90IGEgQ1NS", "vk-a", ["127.0.0.1"]) == "its request is not a PEM certificate request"


def test_a_certificate_is_due_for_renewal_when_a_fifth_of_its_life_is_left(tmp_path: pathlib.Path) -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert, key = _certificate(tmp_path, now, days=100)

    def due(addresses: list[str]) -> datetime.datetime | None:
        answer = pki.renewal_due(str(cert), str(key), addresses)
        return datetime.datetime.fromisoformat(answer) if answer else None

    # It starts five minutes back (certificates.BACKDATE): due a fifth of 100 days and 5 minutes before its end.
    assert due(["127.0.0.1"]) == now + datetime.timedelta(days=80) - datetime.timedelta(minutes=1)
    assert due(["127.0.0.1", "10.0.0.9"]) is None  # an address it does not name
    key.unlink()
    assert due(["127.0.0.1"]) is None


def _certificate(directory: pathlib.Path, now: datetime.datetime, days: int) -> tuple[pathlib.Path, pathlib.Path]:
    ca = certificates.make_ca("ca", validity=datetime.timedelta(days=days), now=now)
    leaf = certificates.issue(ca, common_name="n", hosts=["127.0.0.1"], server=True,
                              validity=datetime.timedelta(days=days), now=now)  # fmt: skip
    cert, key = directory / certs.CERT_FILE, directory / certs.KEY_FILE
    certificates.write_pair(leaf, cert, key)
    return cert, key


class _Clock(clock.SystemClock):
    def __init__(self, now: datetime.datetime) -> None:
        self.at = now

    def now(self) -> datetime.datetime:
        return self.at


async def test_the_rotator_checks_only_once_the_certificate_is_due_or_its_file_changed(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A year's certificate checked every 10 minutes: not a helper process each time."""
    now = datetime.datetime.now(datetime.UTC)
    cert, key = _certificate(tmp_path, now, days=100)
    checks: list[datetime.datetime] = []

    async def request(*args: Any, clock: clock.Clock, **kwargs: Any) -> certs.ServingFiles:
        checks.append(clock.now())
        return certs.ServingFiles(cert, key, renew_at=now + datetime.timedelta(days=80))

    monkeypatch.setattr(certs, "request_serving_certificate", request)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    at = _Clock(now)
    rotator = certs.Rotator(None, "vk-a", ["127.0.0.1"], tmp_path, context, clock=at)  # type: ignore[arg-type]
    assert not await rotator.renew_once()  # the first check loads it
    at.at = now + datetime.timedelta(days=79)
    assert not await rotator.renew_once()
    assert len(checks) == 1  # not due, the same file: nothing to ask
    certificates.write_pair(certificates.read_pair(cert, key), cert, key)  # rewritten (by hand, by a restart)
    os.utime(cert, ns=(0, 0))
    assert not await rotator.renew_once()
    at.at = now + datetime.timedelta(days=81)
    assert not await rotator.renew_once()
    assert checks == [now, now + datetime.timedelta(days=79), now + datetime.timedelta(days=81)]

    # A daemon's rotator starts from the certificate its kubelet API was just given: nothing to check.
    served = certs.ServingFiles(cert, key, renew_at=now + datetime.timedelta(days=80))
    started = certs.Rotator(None, "vk-a", ["127.0.0.1"], tmp_path, context, clock=_Clock(now), current=served)  # type: ignore[arg-type]
    assert not await started.renew_once()
    assert len(checks) == 3


async def test_the_helper_answers_over_its_pipes_and_names_what_failed() -> None:
    async with certs._Pki() as helper:
        made = await helper.call("new_request", node_name="vk-a", addresses=["127.0.0.1"])
        request = base64.b64encode(made["csr"].encode()).decode()
        assert await helper.call("request_mismatch", request=request, node_name="vk-a", addresses=["127.0.0.1"]) == ""
        with pytest.raises(errors.Unavailable, match="new_request failed: TypeError"):
            await helper.call("new_request", node="vk-a")
        assert await helper.call("renewal_due", cert="/nonexistent", key="/nonexistent", addresses=[]) is None
        proc = helper._proc
    assert proc.returncode == 0  # its input closed, it ended


async def test_a_helper_that_cannot_run_is_an_error_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(errors.Unavailable, match=r"certificate helper \(python -m vnode.kubelet.pki\) ended"):
        async with certs._Pki() as helper:
            await asyncio.wait_for(helper.call("renewal_due", cert="", key="", addresses=[]), 30)
