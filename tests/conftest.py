"""Suite-wide fixtures: one real control plane for the whole session, a namespace per test.

The control plane's processes are children of this pytest process (``attach=True`` gives them
``PR_SET_PDEATHSIG``), so they die with the session even when it is killed; the session also
stops them explicitly at the end, pass or fail.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
from collections.abc import Generator, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests import hangs
from tests.waiting import wait_for
from vnode.cluster import build, launcher


def pytest_configure(config: pytest.Config) -> None:
    hangs.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """Setup, call and teardown, as pytest-timeout counts them."""
    marker = item.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout") or 0)
    timer = hangs.watchdog(timeout)
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


def _bin_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("VNODE_BIN_DIR") or build.bin_dir())


@pytest.fixture(scope="session")
def bin_dir() -> pathlib.Path:
    path = _bin_dir()
    if not build.is_complete(path) and not (path / "kube-apiserver").exists():
        pytest.fail(f"no control-plane binaries in {path}: run `make binaries` (make test does)")
    return path


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, bin_dir: pathlib.Path) -> Iterator[launcher.Info]:
    """The session's control plane. Node-monitor grace is short so lease-expiry tests take seconds."""
    options = launcher.Options(
        state_dir=tmp_path_factory.mktemp("cluster"),
        bin_dir=bin_dir,
        node_monitor_grace_period=10,
        attach=True,
        # A fresh control plane has no old lease to wait out, so a long one costs nothing; the
        # default 6 s (a renewal deadline of 4 s) let one stall of a shared machine end the
        # controller-manager and the scheduler for the rest of the session.
        leader_lease_seconds=30,
    )
    control_plane = launcher.Cluster(options)
    try:
        yield control_plane.up()
    finally:
        control_plane.down()


@pytest.fixture(scope="session")
def kube_api(cluster: launcher.Info) -> Iterator[k8s.ApiClient]:
    """A synchronous official client for test set-up and assertions."""
    api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def core(kube_api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube_api)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, core: k8s.CoreV1Api) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards whatever the outcome."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    try:
        # Pods are refused until the service-account controller has made the default account.
        wait_for(lambda: bool(core.list_namespaced_service_account(name, field_selector="metadata.name=default").items),
                 timeout=30, what=f"the default service account in {name}")  # fmt: skip
        yield name
    finally:
        core.delete_namespace(name, grace_period_seconds=0, propagation_policy="Background")
