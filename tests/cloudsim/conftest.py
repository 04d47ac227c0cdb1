"""Fixtures for the simulated cloud: the simulator as a child process, the official ECI SDK against it.

The simulator runs with a paused clock (``--clock-scale 0``): tests move simulated time through
the admin API, so lifecycle and billing checks are exact and take no real time. Children get
``PR_SET_PDEATHSIG`` (they die with pytest even on SIGKILL) and are stopped in teardown.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as eci_models
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import models as openapi_models

from tests import daemons
from tests.waiting import wait_for
from vnode.cloudsim import acs3

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Sim:
    """One simulator process over a state directory; can be killed and started again on it."""

    def __init__(self, state_dir: pathlib.Path, *, profile: str = "fast", seed: int = 7) -> None:
        self.state_dir = state_dir
        self.profile = profile
        self.seed = seed
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> Sim:
        cloud_json = self.state_dir / "cloud.json"
        cloud_json.unlink(missing_ok=True)
        command = [sys.executable, "-m", "vnode.cloudsim", "--state-dir", str(self.state_dir), "--port", "0"]
        command += ["--profile", self.profile, "--seed", str(self.seed), "--clock-scale", "0"]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / "sim.log").open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, preexec_fn=_die_with_parent)
        proc = self.proc

        def ready() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError(f"simulator exited with {proc.returncode}; see {self.state_dir / 'sim.log'}")
            if cloud_json.exists():
                info: dict[str, Any] = json.loads(cloud_json.read_text())
                return info if info["pid"] == proc.pid else None
            return None

        self.info = wait_for(ready, timeout=30, what="the simulator's cloud.json")
        return self

    def eci_env(self) -> dict[str, str]:
        """The field's ECI_* settings that point a daemon at this simulator's ECI dialect."""
        info = self.info
        return {
            "ECI_REGION": info["region"],
            "ECI_ENDPOINT": info["eci"]["endpoint"],
            "ECI_ACCESS_KEY": info["eci"]["access_key_id"],
            "ECI_SECRET_KEY": info["eci"]["access_key_secret"],
            "ECI_VSWITCH": ",".join(v["id"] for v in info["vswitches"]),
            "ECI_SECURITY_GROUP": info["security_group_id"],
        }

    def aci_env(self) -> dict[str, str]:
        """The ACI_* settings that point a daemon at this simulator's ACI dialect (with its bearer token)."""
        info = self.info["aci"]
        return {
            "ACI_REGION": info["location"],
            "ACI_ENDPOINT": info["endpoint"],
            "ACI_CA_FILE": info["ca_file"],
            "ACI_SUBSCRIPTION_ID": info["subscription_id"],
            "ACI_RESOURCE_GROUP": info["resource_group"],
            "ACI_TOKEN": info["token"],
        }

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            daemons.stop(self.proc, timeout=10)

    # -- clients ----------------------------------------------------------------------------

    @property
    def region(self) -> str:
        return str(self.info["region"])

    @property
    def vswitches(self) -> list[dict[str, str]]:
        return list(self.info["vswitches"])

    def client(self, *, key_id: str | None = None, secret: str | None = None) -> Client:
        eci = self.info["eci"]
        config = openapi_models.Config(
            access_key_id=key_id or eci["access_key_id"],
            access_key_secret=secret or eci["access_key_secret"],
            endpoint=eci["endpoint"],
            protocol="http",
            region_id=eci["region"],
        )
        return Client(config)

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        url = self.info["admin_url"] + path.lstrip("/")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def advance(self, seconds: float) -> None:
        status, body = self.admin("POST", "clock", {"advance": seconds})
        assert status == 200, body

    def totals(self) -> dict[str, Any]:
        status, body = self.admin("GET", "totals")
        assert status == 200, body
        return dict(body)

    def raw(
        self,
        action: str,
        params: dict[str, str],
        *,
        nonce: str | None = None,
        secret: str | None = None,
        sent_at: float | None = None,
        altered: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """A signed RPC call built by hand (for replays and parameters the SDK's types would refuse);
        ``sent_at`` dates it, ``altered`` changes parameters after it was signed (a tampered request)."""
        eci = self.info["eci"]
        query = urllib.parse.urlencode({**params, **(altered or {})})
        headers = {
            "host": eci["endpoint"],
            "x-acs-action": action,
            "x-acs-version": "2018-08-08",
            "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent_at)),
            "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
            "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
        }
        signed = tuple(sorted(headers))
        canonical = acs3.canonical_request(
            "POST", "/", params.items(), headers, signed, headers["x-acs-content-sha256"]
        )
        signature = acs3.sign(secret or eci["access_key_secret"], canonical)
        headers["Authorization"] = (
            f"{acs3.ALGORITHM} Credential={eci['access_key_id']},SignedHeaders={';'.join(signed)},Signature={signature}"
        )
        request = urllib.request.Request(f"http://{eci['endpoint']}/?{query}", data=b"", method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@contextlib.contextmanager
def running(state_dir: pathlib.Path, **options: Any) -> Iterator[Sim]:
    sim = Sim(state_dir, **options)
    try:
        yield sim.start()
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def fast_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("cloudsim-fast"), profile="fast") as sim:
        yield sim


@pytest.fixture
def sim(fast_sim: Sim) -> Sim:
    """The shared fast simulator, reset to an empty world (no instances, faults or used tokens)."""
    status, body = fast_sim.admin("POST", "reset", {})
    assert status == 200, body
    return fast_sim


@pytest.fixture
def eci(sim: Sim) -> Client:
    return sim.client()


def container(name: str = "app", image: str = "nginx", *command: str, **fields: Any) -> Any:
    return eci_models.CreateContainerGroupRequestContainer(
        name=name, image=image, command=list(command) or None, **fields
    )


def create_request(sim: Sim, name: str, *containers: Any, **fields: Any) -> Any:
    fields.setdefault("v_switch_id", ",".join(v["id"] for v in sim.vswitches))
    fields.setdefault("security_group_id", sim.info["security_group_id"])
    return eci_models.CreateContainerGroupRequest(
        region_id=sim.region,
        container_group_name=name,
        container=list(containers) or [container()],
        **fields,
    )


def tags(**pairs: str) -> list[Any]:
    """``cloudsim_exit__code="3"`` -> tag ``cloudsim/exit-code=3`` (``_`` is ``/``, ``__`` is ``-``)."""
    return [
        eci_models.CreateContainerGroupRequestTag(key=k.replace("__", "-").replace("_", "/"), value=v)
        for k, v in pairs.items()
    ]


@pytest.fixture(scope="session")
def realistic_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("cloudsim-realistic"), profile="realistic") as sim:
        yield sim
