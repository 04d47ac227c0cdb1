"""A process instance's directory: its volumes' files, the mounts linked into its root, and a
kubeconfig from its service-account token so that in-cluster clients work on the host."""

from __future__ import annotations

import pathlib
from typing import Any

from vnode import errors, models
from vnode.provider.process import records

__all__ = ["IP", "SERVICE_ACCOUNT_MOUNT", "check_commands", "kubeconfig", "lay_out", "server_of"]

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
    if ca:
        cluster["certificate-authority"] = ca
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
