"""A process instance's directory: its volumes' files, the mounts linked into its root, and a
kubeconfig from its service-account token so that in-cluster clients work on the host."""

from __future__ import annotations

import base64
import functools
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from vnode import errors, models
from vnode.provider.process import records

__all__ = [
    "IP",
    "SERVICE_ACCOUNT_MOUNT",
    "binds_of",
    "check_commands",
    "check_mounts",
    "host_paths_to_keep",
    "in_mount_namespace",
    "kubeconfig",
    "lay_out",
    "mount_namespace_available",
    "pythonpath",
    "server_of",
]

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
IP = "127.0.0.1"


def check_commands(spec: models.InstanceSpec) -> None:
    for c in (*spec.init_containers, *spec.containers):
        if not c.command and not c.args:
            raise errors.InvalidSpec(
                f"container {c.name}: the process provider runs commands on the host and needs a command "
                "(there is no image to take an entrypoint from)",
                code="NoCommand",
            )


# Run inside `unshare -m --propagation private` (as `python -I -S -c`, stdlib only): bind each
# volume at its mount path, then exec the command. Every source is opened (O_PATH) before the first
# mount and bound from its descriptor, so a mount over one of its ancestors (the chart's emptyDir at
# /tmp while the state dir is under /tmp) cannot hide a source bound after it; a source that is
# missing fails the container rather than leaving a stray mount point. Parents are bound before
# children. Each host path to keep (the first argument, joined by os.pathsep) that a mount covers is
# bound back at its own path inside that mount: the state dir (the container's kubeconfig, token and
# CA), the Python whose bin leads PATH and the code it runs (a checkout under /tmp while the chart
# mounts an emptyDir at /tmp: `vnode run` must still be found). The mounts live
# in the process's own mount namespace (what it starts inherits them); the host sees none of them,
# only the empty mount points that had to be created.
_BIND_PY = """
import ctypes, os, stat, sys
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
libc = ctypes.CDLL(None, use_errno=True)
keeps, args = sys.argv[1].split(os.pathsep), sys.argv[2:]
end = args.index("--")
binds = sorted((args[i:i + 3] for i in range(0, end, 3)), key=lambda b: b[1].rstrip("/").count("/"))
for keep in keeps:
    if any((keep + "/").startswith(target.rstrip("/") + "/") for _, target, _ in binds):
        binds.append([keep, keep, "rw"])
def mount(source, target, flags):
    if libc.mount(source, target.encode(), None, flags, None) != 0:
        sys.exit(f"vnode: mount {target}: {os.strerror(ctypes.get_errno())}")
try:
    fds = [os.open(source, os.O_PATH | os.O_CLOEXEC) for source, _, _ in binds]
    for fd, (source, target, mode) in zip(fds, binds):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                open(target, "a").close()
        mount(f"/proc/self/fd/{fd}".encode(), target, MS_BIND)
        if mode == "ro":
            mount(None, target, MS_REMOUNT | MS_BIND | MS_RDONLY)
        os.close(fd)
    os.execvp(args[end + 1], args[end + 1:])
except OSError as exc:
    sys.exit(f"vnode: {exc}")
"""


@functools.cache
def mount_namespace_available() -> str:
    """Empty when this process may give a container its own mount namespace (root, ``unshare`` on
    PATH, and the kernel lets ``unshare -m`` work here); else why not."""
    if os.geteuid() != 0:
        return "the daemon does not run as root (bind mounts need it)"
    if not shutil.which("unshare"):
        return "unshare(1) is not on PATH"
    try:
        probe = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -m failed: {exc}"
    if probe.returncode != 0:
        return f"unshare -m failed: {probe.stderr.decode(errors='replace').strip()}"
    return ""


def check_mounts(spec: models.InstanceSpec) -> None:
    """Refuse, naming the volume, a mount the provider cannot present at its path on this host. The
    service account's is always fine: the ``KUBECONFIG`` built from it is what in-cluster clients read."""
    why = mount_namespace_available()
    if not why:
        return
    for c in (*spec.init_containers, *spec.containers):
        for mount in c.volume_mounts:
            if mount.mount_path.rstrip("/") != SERVICE_ACCOUNT_MOUNT:
                raise errors.InvalidSpec(
                    f"container {c.name}: volume {mount.name!r} cannot be presented at {mount.mount_path}: "
                    f"the process provider bind-mounts volumes in a private mount namespace, and {why}",
                    code="VolumeNotPresentable",
                )


def in_mount_namespace(
    argv: list[str], binds: list[tuple[pathlib.Path, str, bool]], keep: Sequence[pathlib.Path]
) -> list[str]:
    """``argv`` run in its own mount namespace with each ``(source, mount path, read-only)`` bound;
    each existing path of ``keep`` (absolute) stays where it is even under a mount that covers it."""
    if not binds or mount_namespace_available():
        return argv
    flat = [part for source, target, ro in binds for part in (str(source), target, "ro" if ro else "rw")]
    unshare = shutil.which("unshare") or "unshare"
    python = [sys.executable, "-I", "-S", "-c", _BIND_PY, os.pathsep.join(_outermost(keep))]
    return [unshare, "-m", "--propagation", "private", *python, *flat, "--", *argv]


def _outermost(paths: Sequence[pathlib.Path]) -> list[str]:
    """The existing paths, resolved, without those inside another (binding that one keeps them)."""
    found: list[pathlib.Path] = []
    for path in sorted({pathlib.Path(os.path.abspath(p)) for p in paths if p.exists()}, key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(outer) for outer in found):
            found.append(path)
    return [str(p) for p in found]


def host_paths_to_keep(state_dir: pathlib.Path, python: str) -> list[pathlib.Path]:
    """What a container's commands need from the host whatever it mounts: the state dir, the
    prefix of the Python whose ``bin`` leads its PATH (its console scripts, their interpreter and
    site-packages) and the code root that PYTHONPATH names."""
    prefix = pathlib.Path(python).absolute().parent.parent
    return [state_dir, prefix, *(pathlib.Path(p) for p in pythonpath().split(os.pathsep) if p)]


def binds_of(directory: pathlib.Path, container: models.ContainerSpec) -> list[tuple[pathlib.Path, str, bool]]:
    """A container's mounts as ``(source under the instance's volumes/, mount path, read-only)``."""
    found = []
    for mount in container.volume_mounts:
        source = directory / "volumes" / mount.name
        if mount.sub_path:
            source = source / mount.sub_path
        found.append((source, "/" + mount.mount_path.strip("/"), mount.read_only))
    return found


def lay_out(directory: pathlib.Path, spec: models.InstanceSpec) -> tuple[pathlib.Path, pathlib.Path | None]:
    """Write the volumes' files and link each mount into the root; ``(root, the service-account token volume)``."""
    root, volumes, logs = directory / "root", directory / "volumes", directory / "logs"
    for part in (root, volumes, logs):
        part.mkdir(parents=True, exist_ok=True)
    volume_dirs: dict[str, pathlib.Path] = {}
    for volume in spec.volumes:
        target = volumes / volume.name
        target.mkdir(parents=True, exist_ok=True)
        for item in volume.files:
            file = (target / item.path).resolve()
            if not file.is_relative_to(target.resolve()):
                raise errors.InvalidSpec(f"volume {volume.name}: path {item.path!r} leaves the volume")
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(item.content)
            file.chmod(item.mode if item.mode is not None else 0o644)
        volume_dirs[volume.name] = target
    token_volume: pathlib.Path | None = None
    for c in (*spec.init_containers, *spec.containers):
        for mount in c.volume_mounts:
            source = volume_dirs.get(mount.name)
            if source is None:
                raise errors.InvalidSpec(f"container {c.name}: no volume named {mount.name!r}")
            if mount.sub_path:
                source = source / mount.sub_path
                source.mkdir(parents=True, exist_ok=True)
            link = root / mount.mount_path.lstrip("/")
            if mount.mount_path.rstrip("/") == SERVICE_ACCOUNT_MOUNT and (source / "token").exists():
                token_volume = source
            if not link.is_symlink() and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source)
    return root, token_volume


def kubeconfig(
    directory: pathlib.Path, token_volume: pathlib.Path | None, api_server: str, ca_file: str
) -> pathlib.Path | None:
    """A kubeconfig for the pod's own service account, so in-cluster clients work on the host."""
    if token_volume is None or not api_server:
        return None
    ca = ca_file or (str(token_volume / "ca.crt") if (token_volume / "ca.crt").exists() else "")
    namespace = (token_volume / "namespace").read_text().strip() if (token_volume / "namespace").exists() else ""
    cluster: dict[str, Any] = {"server": api_server}
    if ca:  # inline: a volume mounted over the CA file's directory (an emptyDir at /tmp) cannot hide it
        cluster["certificate-authority-data"] = base64.b64encode(pathlib.Path(ca).read_bytes()).decode()
    context: dict[str, Any] = {"cluster": "in-cluster", "user": "service-account"}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": cluster}],
        "users": [{"name": "service-account", "user": {"tokenFile": str(token_volume / "token")}}],
        "contexts": [{"name": "in-cluster", "context": context}],
        "current-context": "in-cluster",
    }
    path = directory / "kubeconfig"
    records.write_json(path, doc)  # JSON is YAML
    path.chmod(0o600)
    return path


def server_of(kubeconfig: pathlib.Path, directory: pathlib.Path) -> tuple[str, str]:
    """The current context's server URL of a kubeconfig (read by vnode's one loader), and its CA
    written into ``directory`` (a file of ours: the loader's copy of an inline CA is temporary)."""
    from vnode import errors
    from vnode.kube import config

    try:
        loaded = config.load_kubeconfig(kubeconfig)
    except errors.ConfigError:
        return "", ""
    if not loaded.ca_pem:
        return loaded.server, ""
    target = directory / "api-server-ca.crt"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_bytes(loaded.ca_pem)
    except OSError:
        return loaded.server, ""
    return loaded.server, str(target)


def pythonpath() -> str:
    """Where this vnode is importable from, so the runner imports the same code."""
    package_root = pathlib.Path(__file__).resolve().parents[3]
    existing = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in (str(package_root), existing) if p)
