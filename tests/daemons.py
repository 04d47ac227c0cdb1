"""``vnode run`` as a child process of the test session, for the tests of the installed command.

The process dies with the session (``PR_SET_PDEATHSIG``), and whoever starts one stops it in
teardown, pass or fail: :func:`vnode_run` does both for a daemon that runs through a test;
:class:`VnodeRun` is for tests that kill it with ``-9`` and start it again on the same node.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.waiting import wait_for
from vnode.cluster import launcher, procs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def stop(proc: subprocess.Popen[Any], timeout: float = 15) -> int:
    """Stop a child process of the session: SIGTERM, SIGKILL if it is still there after ``timeout``
    seconds. Returns its exit code (that of an earlier exit if it had already ended)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


class VnodeRun:
    """``vnode run --provider <provider>`` for one node name, configured by ``settings_env``."""

    def __init__(
        self,
        provider: str,
        settings_env: dict[str, str],
        cluster: launcher.Info,
        log_dir: pathlib.Path,
        *,
        cluster_id: str = "e2e",
    ) -> None:
        self.name = f"vn-{provider}-{secrets.token_hex(3)}"
        self.log_path = log_dir / "vnode-run.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "VNODE_NODE_NAME": self.name,
            "VNODE_PROVIDER": provider,
            "VNODE_CLUSTER_ID": cluster_id,
            **settings_env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *flags: str) -> None:
        command = [sys.executable, "-m", "vnode", "run", "--http-port", "0", "--http-address", "127.0.0.1"]
        command += ["--kubelet-port", "0", "--status-interval", "0.5", *flags]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=log, preexec_fn=procs.die_with_parent
            )

    def ready(self, api: k8s.CoreV1Api) -> bool:
        """Whether its node is Ready; fails at once, with the log's end, if the process exited."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"vnode run exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
        node = api.read_node(self.name)
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or ())

    def wait_ready(self, api: k8s.CoreV1Api, timeout: float = 60) -> None:
        wait_for(lambda: self.ready(api), timeout=timeout, what=f"node {self.name} Ready (log: {self.log_path})")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@contextlib.contextmanager
def vnode_run(
    provider: str, settings_env: dict[str, str], cluster: launcher.Info, log_dir: pathlib.Path, *flags: str
) -> Iterator[str]:
    """A started :class:`VnodeRun` (``flags`` after the defaults: they win); yields its node's name once
    Ready; stops it and deletes its Node."""
    run = VnodeRun(provider, settings_env, cluster, log_dir)
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    try:
        run.start(*flags)
        run.wait_ready(api)
        yield run.name
    finally:
        run.stop()
        with contextlib.suppress(k8s.ApiException):
            api.delete_node(run.name)
        api.api_client.close()
