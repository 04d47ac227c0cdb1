"""The kubectl compatibility matrix (``tests/kubelet/kubectl_matrix.py``) against the real control plane.

Two virtual nodes, one pod each, shared by every cell: a ``vnode run --provider process`` node
(its pod's commands run on this host: real ``sh``, ``tar``, ``python3 -m http.server``) and a
``vnode run --provider eci`` node on the simulated cloud (whose exec runs the workload model's
shell over ECI's interactive WebSocket). Each cell runs a real kubectl release as a
subprocess: stdin through a pipe for ``-i``, a pseudo-terminal for ``-t``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import os
import pathlib
import pty
import random
import re
import select
import socket
import struct
import subprocess
import termios
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import running
from tests.daemons import vnode_run
from tests.kubelet import kubectl_matrix as matrix
from tests.waiting import wait_for
from vnode.cluster import kubectl_build, launcher
from vnode.provider.process import provider as process

pytestmark = pytest.mark.cluster

DATA = "from the pod\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Target:
    provider: str
    namespace: str
    pod: str
    port: int  # where the pod's HTTP server listens (process only)
    kubeconfig: pathlib.Path


def _pod(name: str, node: str, containers: list[dict[str, object]]) -> dict[str, object]:
    spec = {"nodeName": node, "containers": containers, "terminationGracePeriodSeconds": 2}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {**spec, "tolerations": [{"operator": "Exists"}]},
    }


@pytest.fixture(scope="module")
def binaries() -> Callable[[str], pathlib.Path]:
    """kubectl of a release (cached builds: the first run builds each, once, when a cell needs it)."""
    return functools.cache(kubectl_build.ensure_kubectl)


@contextlib.contextmanager
def _namespace(core: k8s.CoreV1Api, prefix: str) -> Iterator[str]:
    name = f"{prefix}-{os.getpid()}-{random.Random().randrange(1 << 20):x}"
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


def _restarted(core: k8s.CoreV1Api, namespace: str, pod: str, container: str) -> bool:
    statuses = core.read_namespaced_pod(pod, namespace).status.container_statuses or []
    return any(s.name == container and s.restart_count >= 1 for s in statuses)


FLAKY = {"name": "flaky", "image": "busybox", "command": ["sh", "-c", 'echo "run of flaky"; sleep 1; exit 1']}


def _start(core: k8s.CoreV1Api, namespace: str, body: dict[str, object], what: str) -> None:
    """Create the matrix's pod and wait until it runs and its ``flaky`` container has restarted once."""
    core.create_namespaced_pod(namespace, body)
    wait_for(lambda: core.read_namespaced_pod("app", namespace).status.phase == "Running", timeout=60,
             what=f"the {what} pod Running")  # fmt: skip
    wait_for(lambda: _restarted(core, namespace, "app", "flaky"), timeout=60, what="flaky restarted once")


@pytest.fixture(scope="module")
def process_target(
    cluster: launcher.Info, kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    core = k8s.CoreV1Api(kube_api)
    state = tmp_path_factory.mktemp("matrix-process")
    env = {"VNODE_PROCESS_DIR": str(state / "instances"), "VNODE_PROCESS_LIFELINE": str(os.getpid())}
    port = _free_port()
    app = (
        f"printf {DATA!r} > data.txt; python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 & "
        'i=0; while :; do echo "line $i"; i=$((i+1)); sleep 1; done'
    )
    containers = [{"name": "app", "image": "busybox", "command": ["sh", "-c", app]}, FLAKY]
    try:
        with vnode_run("process", env, cluster, state) as node, _namespace(core, "kmx") as namespace:
            _start(core, namespace, _pod("app", node, containers), "process")
            yield Target("process", namespace, "app", port, cluster.kubeconfig)
    finally:
        process.stop_all(state / "instances")


@contextlib.contextmanager
def _cloud_node(
    provider: str, cluster: launcher.Info, core: k8s.CoreV1Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A ``vnode run --provider <provider>`` node on a simulated cloud of its own (its clock 10x), and a
    namespace: (node, namespace)."""
    with running(tmp_path_factory.mktemp(f"matrix-{provider}-cloud"), profile="fast") as sim:
        status, body = sim.admin("POST", "clock", {"scale": 10})
        assert status == 200, body
        env = sim.eci_env() if provider == "eci" else sim.aci_env()
        with (
            vnode_run(provider, env, cluster, tmp_path_factory.mktemp(f"matrix-{provider}")) as node,
            _namespace(core, f"kmx-{provider}") as namespace,
        ):
            yield node, namespace


@pytest.fixture(scope="module")
def eci_target(
    cluster: launcher.Info, kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    core = k8s.CoreV1Api(kube_api)
    with _cloud_node("eci", cluster, core, tmp_path_factory) as (node, namespace):
        # What `kubectl cp pod:data.txt` copies out: a ConfigMap's file in the working directory.
        data = {"metadata": {"name": "matrix-data"}, "data": {"data.txt": DATA}}
        core.create_namespaced_config_map(namespace, data)
        app = {"name": "app", "image": "nginx:alpine", "workingDir": "/srv",
               "volumeMounts": [{"name": "data", "mountPath": "/srv"}]}  # fmt: skip
        body = _pod("app", node, [app, FLAKY])
        body["spec"]["volumes"] = [{"name": "data", "configMap": {"name": "matrix-data"}}]  # type: ignore[index]
        _start(core, namespace, body, "ECI")
        yield Target("eci", namespace, "app", 0, cluster.kubeconfig)


@pytest.fixture(scope="module")
def aci_target(
    cluster: launcher.Info, kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """A ``vnode run --provider aci`` node on the simulated cloud's ARM dialect: its exec is a terminal."""
    core = k8s.CoreV1Api(kube_api)
    with _cloud_node("aci", cluster, core, tmp_path_factory) as (node, namespace):
        _start(core, namespace, _pod("app", node, [{"name": "app", "image": "nginx:alpine"}, FLAKY]), "ACI")
        yield Target("aci", namespace, "app", 0, cluster.kubeconfig)


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    provider = request.node.callspec.params["provider"]
    fixture: Target = request.getfixturevalue(f"{provider}_target")
    return fixture


class Kubectl:
    """One kubectl release (and its transport settings) aimed at one pod."""

    def __init__(self, path: pathlib.Path, client: matrix.Client, target: Target) -> None:
        self.argv = [str(path), f"--kubeconfig={target.kubeconfig}", "-n", target.namespace]
        self.env = {**os.environ, **dict(client.env)}
        self.target = target

    def run(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], input=input, capture_output=True, text=True, timeout=timeout,
                              env=self.env, check=False)  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env)  # fmt: skip


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def _first_lines(proc: subprocess.Popen[str], count: int, pattern: str, timeout: float = 60) -> list[str]:
    """Read ``count`` lines matching ``pattern`` from a running kubectl, then stop it."""
    assert proc.stdout is not None
    found: list[str] = []
    deadline = time.monotonic() + timeout
    ended = False
    try:
        while len(found) < count and not ended:
            ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            line = proc.stdout.readline() if ready else ""
            ended = not line
            if re.search(pattern, line):
                found.append(line)
    finally:
        proc.kill()
        _, stderr = proc.communicate(timeout=30)
    if len(found) < count:
        raise AssertionError(f"kubectl gave {found} then nothing: {stderr}")
    return found


# -- the operations --------------------------------------------------------------------------


def op_logs(k: Kubectl) -> None:
    if k.target.provider == "process":
        assert "line 0\n" in _ok(k.run("logs", k.target.pod, "-c", "app"))
    else:
        assert _ok(k.run("logs", k.target.pod))


def op_logs_tail(k: Kubectl) -> None:
    assert len(_ok(k.run("logs", k.target.pod, "-c", "app", "--tail=1")).splitlines()) == 1


def op_logs_timestamps(k: Kubectl) -> None:
    first = _ok(k.run("logs", k.target.pod, "-c", "app", "--timestamps")).splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ", first), first


def op_logs_since(k: Kubectl) -> None:
    assert _ok(k.run("logs", k.target.pod, "-c", "app", "--since=1h")).strip()


def op_logs_follow(k: Kubectl) -> None:
    pattern = r"^line \d+" if k.target.provider == "process" else r"."
    proc = k.popen("logs", "-f", k.target.pod, "-c", "app", "--tail=1")
    assert len(_first_lines(proc, 2, pattern)) == 2


def op_logs_previous(k: Kubectl) -> None:
    assert "run of flaky" in _ok(k.run("logs", k.target.pod, "-c", "flaky", "--previous"))


def op_exec_args(k: Kubectl) -> None:
    if k.target.provider == "process":
        argv = ["sh", "-c", 'printf "[%s]" "$@"', "_", "a  b", "it's", 'say "hi"']
        assert _ok(k.run("exec", k.target.pod, "-c", "app", "--", *argv)) == '[a  b][it\'s][say "hi"]'
    else:  # the simulator's model shell: echo joins its arguments with one space
        assert _ok(k.run("exec", k.target.pod, "--", "echo", "a  b", "it's", 'say "hi"')) == 'a  b it\'s say "hi"\n'


def op_exec_exit_code(k: Kubectl) -> None:
    result = k.run("exec", k.target.pod, "-c", "app", "--", "sh", "-c", "exit 3")
    assert result.returncode == 3, result.stderr


def op_exec_stdin(k: Kubectl) -> None:
    command = ["tr", "a-z", "A-Z"] if k.target.provider == "process" else ["cat"]
    out = _ok(k.run("exec", "-i", k.target.pod, "-c", "app", "--", *command, input="hello\nworld\n"))
    assert out == ("HELLO\nWORLD\n" if k.target.provider == "process" else "hello\nworld\n")


def _read_until(fd: int, seen: bytearray, wanted: bytes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise AssertionError(f"no {wanted!r} on the terminal; it shows {bytes(seen)[-400:]!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            raise AssertionError(f"the terminal closed before {wanted!r}: {bytes(seen)[-400:]!r}")
        seen += chunk


def _winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def op_exec_tty(k: Kubectl) -> None:
    argv = [*k.argv, "exec", "-it", k.target.pod, "-c", "app", "--", "sh"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal of its own (its controlling terminal)
        os.execve(argv[0], argv, k.env)
    try:
        _winsize(fd, 30, 100)
        seen = bytearray()
        _read_until(fd, seen, b"# ")
        os.write(fd, b"stty size\n")
        _read_until(fd, seen, b"30 100")
        _winsize(fd, 40, 120)  # the kernel signals SIGWINCH; kubectl sends a resize

        def resized() -> bool:
            os.write(fd, b"stty size\n")
            with contextlib.suppress(AssertionError):
                _read_until(fd, seen, b"40 120", timeout=2)
            return b"40 120" in seen

        try:
            # Where the matrix says no resize reaches the terminal (ACI), a shorter wait shows it still does not.
            tty = next(o for o in matrix.OPS if o.name == "exec -it")
            carried = not dict(tty.fails).get(k.target.provider)
            wait_for(resized, timeout=30 if carried else 8, what="the resize to reach the terminal")
        except pytest.fail.Exception as exc:  # a known failure is an AssertionError (the matrix's signatures)
            raise AssertionError(str(exc)) from None
        os.write(fd, b"exit\n")
        with contextlib.suppress(AssertionError):
            _read_until(fd, seen, b"\x00never", timeout=30)  # to EOF
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0, bytes(seen)[-400:]
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def op_attach(k: Kubectl) -> None:
    proc = k.popen("attach", k.target.pod, "-c", "app")
    assert len(_first_lines(proc, 2, r"^line \d+")) == 2


def op_port_forward(k: Kubectl) -> None:
    remote = k.target.port or 80
    proc = k.popen("port-forward", f"pod/{k.target.pod}", f":{remote}")
    try:
        line = _first_lines_keep(proc, r"Forwarding from 127\.0\.0\.1:(\d+)")
        local = int(re.search(r":(\d+) ->", line).group(1))  # type: ignore[union-attr]
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/data.txt", timeout=30) as response:
            assert response.read().decode() == DATA
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def _first_lines_keep(proc: subprocess.Popen[str], pattern: str, timeout: float = 60) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            raise AssertionError(f"kubectl port-forward said nothing more: {proc.communicate(timeout=30)[1]}")
        if re.search(pattern, line):
            return line


def op_cp_to(k: Kubectl, tmp_path: pathlib.Path) -> None:
    source = tmp_path / "upload.txt"
    source.write_text("uploaded by kubectl\n")
    name = f"copied-{random.Random().randrange(1 << 30):x}.txt"
    _ok(k.run("cp", "-c", "app", str(source), f"{k.target.pod}:{name}"))
    assert _ok(k.run("exec", k.target.pod, "-c", "app", "--", "cat", name)) == "uploaded by kubectl\n"


def op_cp_from(k: Kubectl, tmp_path: pathlib.Path) -> None:
    target = tmp_path / "downloaded.txt"
    _ok(k.run("cp", "-c", "app", f"{k.target.pod}:data.txt", str(target)))
    assert target.read_text() == DATA


OPERATIONS: dict[str, Callable[..., None]] = {
    "logs": op_logs,
    "logs --tail": op_logs_tail,
    "logs --timestamps": op_logs_timestamps,
    "logs --since": op_logs_since,
    "logs -f": op_logs_follow,
    "logs --previous": op_logs_previous,
    "exec args": op_exec_args,
    "exec exit code": op_exec_exit_code,
    "exec -i": op_exec_stdin,
    "exec -it": op_exec_tty,
    "attach": op_attach,
    "port-forward": op_port_forward,
    "cp to pod": op_cp_to,
    "cp from pod": op_cp_from,
}


def _params() -> list[object]:
    return [pytest.param(p, op.name, c, id=f"{p}-{op.name}-{c.label}") for p, op, c in matrix.cells()]


def test_every_operation_has_a_runner() -> None:
    assert set(OPERATIONS) == {op.name for op in matrix.OPS}


@pytest.mark.parametrize(("provider", "operation", "client"), _params())
def test_kubectl_matrix(
    provider: str,
    operation: str,
    client: matrix.Client,
    target: Target,
    binaries: Callable[[str], pathlib.Path],
    tmp_path: pathlib.Path,
) -> None:
    kubectl = Kubectl(binaries(client.version), client, target)
    run = OPERATIONS[operation]
    args = (kubectl, tmp_path) if operation.startswith("cp ") else (kubectl,)
    why = next(op for op in matrix.OPS if op.name == operation).failure(provider, client)
    if not why:
        run(*args)
        return
    # A known failure: it must still fail, and for the reason the matrix gives.
    with pytest.raises(AssertionError, match=matrix.SIGNATURES[why]):
        run(*args)
