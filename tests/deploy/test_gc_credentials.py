"""``vnode gc`` finds the cloud's keys where ``vnode run`` does: in the Secret the settings name.

The chart's uninstall hook runs ``vnode gc`` with the daemon's settings; with ECI's keys in
ack-virtual-node's ``kube-system/alibaba-addon-secret`` (or any ``ECI_CREDENTIALS_SECRET``) it
used to run with no keys at all, and collected nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.deploy.test_gc import instance_spec
from tests.provider.eci_fixtures import eci_settings
from vnode.cluster import launcher
from vnode.provider.eci import provider as eci

pytestmark = pytest.mark.cluster


@pytest.fixture
def sim(tmp_path: pathlib.Path) -> Iterator[Sim]:
    with running(tmp_path / "sim", profile="fast") as sim:
        yield sim


@pytest.fixture
def keys_secret(core: k8s.CoreV1Api, namespace: str, sim: Sim) -> Iterator[str]:
    name = f"eci-keys-{secrets.token_hex(3)}"
    data = {
        "access-key-id": sim.info["eci"]["access_key_id"],
        "access-key-secret": sim.info["eci"]["access_key_secret"],
    }
    core.create_namespaced_secret(namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), string_data=data))
    try:
        yield f"{namespace}/{name}"
    finally:
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespaced_secret(name, namespace)


async def test_gc_reads_the_eci_keys_from_the_secret_the_settings_name(
    cluster: launcher.Info, sim: Sim, keys_secret: str
) -> None:
    cloud = eci.EciProvider(eci_settings(sim))
    try:
        orphan = await cloud.create(instance_spec("t", cluster="gc-keys", node="gone-node", uid="gone-uid"))
    finally:
        await cloud.close()
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "ECI_REGION": sim.region,
        "ECI_ENDPOINT": sim.info["eci"]["endpoint"],
        "ECI_CREDENTIALS_SECRET": keys_secret,
    }
    env.pop("ECI_ACCESS_KEY", None), env.pop("ECI_SECRET_KEY", None)
    cmd = [sys.executable, "-m", "vnode", "gc", "--provider", "eci", "--cluster-id", "gc-keys", "--dry-run"]
    done = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"would delete {orphan.id}" in done.stdout
