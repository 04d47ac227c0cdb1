"""A SIGTERM during `vnode run`'s start-up is acted on once the daemon is up, not fatal.

A scale-in can signal a replica that has just restarted and is still importing; Python's
default action would kill it before it could drain its node.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.waiting import wait_for
from vnode.cluster import launcher, procs

pytestmark = pytest.mark.cluster


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (``SigCgt`` in /proc/PID/status)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@contextlib.contextmanager
def vnode_run(
    cluster: launcher.Info, core: k8s.CoreV1Api, log: pathlib.Path, name: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`vnode run --provider fake` for node ``name`` (its stderr in ``log``); killed and its Node deleted at the end."""
    env = {**os.environ, "VNODE_NODE_NAME": name, "KUBECONFIG": str(cluster.kubeconfig), **env}
    cmd = [sys.executable, "-m", "vnode", "run", "--provider", "fake", "--http-address", "127.0.0.1",
           "--http-port", "0", "--kubelet-port", "0"]  # fmt: skip
    with log.open("w") as sink:
        process = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=sink, preexec_fn=procs.die_with_parent
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        with contextlib.suppress(k8s.ApiException):
            core.delete_node(name)


def test_sigterm_while_importing_stops_the_daemon_cleanly(
    cluster: launcher.Info, core: k8s.CoreV1Api, tmp_path: pathlib.Path
) -> None:
    log = tmp_path / "daemon.log"
    with vnode_run(cluster, core, log, f"vn-early-{os.getpid()}") as process:
        wait_for(lambda: _catches_sigterm(process.pid), timeout=30, what="SIGTERM captured at start-up", interval=0.005)
        process.send_signal(signal.SIGTERM)  # the daemon's modules are still being imported
        assert process.wait(timeout=60) == 0, log.read_text()
        assert "received during start-up" in log.read_text()


def test_the_kubelet_apis_key_is_removed_when_the_daemon_stops(
    cluster: launcher.Info, core: k8s.CoreV1Api, tmp_path: pathlib.Path
) -> None:
    """Every `vnode run` left a directory with the kubelet API's private key in /tmp."""
    name = f"vn-keys-{os.getpid()}"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    log = tmp_path / "daemon.log"
    with vnode_run(cluster, core, log, name, TMPDIR=str(scratch)) as process:

        def keys() -> list[pathlib.Path]:
            return list(scratch.glob("vnode-kubelet-*/*.key"))

        wait_for(lambda: bool(keys()) and _registered(core, name), timeout=60, what="the node up, its key on disk")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert keys() == [], "the kubelet API's key outlived the daemon"


def _registered(core: k8s.CoreV1Api, name: str) -> bool:
    with contextlib.suppress(k8s.ApiException):
        return bool(core.read_node(name))
    return False
