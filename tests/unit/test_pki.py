"""The serving certificate's cryptography runs in a child process; the daemon never imports it."""

from __future__ import annotations

import asyncio
import base64
import datetime
import pathlib
import subprocess
import sys

import pytest

from vnode import certificates, errors
from vnode.kubelet import certs, pki

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


def test_a_certificate_is_still_good_while_it_covers_the_addresses_and_a_fifth_of_its_life_is_left(
    tmp_path: pathlib.Path,
) -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    ca = certificates.make_ca("ca", validity=datetime.timedelta(days=10), now=now)
    leaf = certificates.issue(ca, common_name="n", hosts=["127.0.0.1"], server=True,
                              validity=datetime.timedelta(days=100), now=now)  # fmt: skip
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    certificates.write_pair(leaf, cert, key)

    def good(addresses: list[str], at: datetime.datetime) -> bool:
        return pki.still_good(str(cert), str(key), addresses, at.isoformat())

    assert good(["127.0.0.1"], now + datetime.timedelta(days=79))
    assert not good(["127.0.0.1"], now + datetime.timedelta(days=81))  # less than a fifth left: renew
    assert not good(["127.0.0.1", "10.0.0.9"], now)  # an address it does not name
    key.unlink()
    assert not good(["127.0.0.1"], now)


async def test_the_helper_answers_over_its_pipes_and_names_what_failed() -> None:
    async with certs._Pki() as helper:
        made = await helper.call("new_request", node_name="vk-a", addresses=["127.0.0.1"])
        request = base64.b64encode(made["csr"].encode()).decode()
        assert await helper.call("request_mismatch", request=request, node_name="vk-a", addresses=["127.0.0.1"]) == ""
        with pytest.raises(errors.Unavailable, match="new_request failed: TypeError"):
            await helper.call("new_request", node="vk-a")
        assert await helper.call("still_good", cert="/nonexistent", key="/nonexistent", addresses=[], now="x") is False
        proc = helper._proc
    assert proc.returncode == 0  # its input closed, it ended


async def test_a_helper_that_cannot_run_is_an_error_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(errors.Unavailable, match=r"certificate helper \(python -m vnode.kubelet.pki\) ended"):
        async with certs._Pki() as helper:
            await asyncio.wait_for(helper.call("still_good", cert="", key="", addresses=[], now=""), 30)
