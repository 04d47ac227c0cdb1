"""Where the API server is and how to prove who we are: kubeconfig files and in-cluster service accounts.

Only what a daemon needs: a server URL, a CA, and either a client certificate or a bearer
token. In a pod the service-account token is a projected file that the kubelet rotates
(hourly by default), so :class:`Credentials` re-reads the file when it changes instead of
caching the first token forever.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any

import yaml

from vnode import errors

__all__ = ["SERVICE_ACCOUNT_DIR", "Config", "Credentials", "in_cluster", "load", "load_kubeconfig"]

SERVICE_ACCOUNT_DIR = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")


class Credentials:
    """A bearer token, fixed or read from a file that may be rotated under us."""

    def __init__(self, token: str = "", token_file: pathlib.Path | None = None) -> None:
        self._token = token
        self._file = token_file
        self._mtime: float | None = None

    def token(self) -> str:
        if self._file is not None:
            try:
                mtime = self._file.stat().st_mtime
            except OSError:
                return self._token
            if mtime != self._mtime:
                self._token, self._mtime = self._file.read_text().strip(), mtime
        return self._token


@dataclasses.dataclass(frozen=True)
class Config:
    server: str
    ssl: ssl.SSLContext | bool
    credentials: Credentials
    namespace: str = "default"


def in_cluster(directory: pathlib.Path = SERVICE_ACCOUNT_DIR, environ: Mapping[str, str] = os.environ) -> Config:
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise errors.ConfigError("in-cluster config: KUBERNETES_SERVICE_HOST is not set (give --kubeconfig)")
    host = f"[{host}]" if ":" in host else host
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    namespace_file = directory / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else "default"
    return Config(f"https://{host}:{port}", context, Credentials(token_file=directory / "token"), namespace)


def _data_or_file(entry: Mapping[str, Any], key: str, base: pathlib.Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = pathlib.Path(os.path.expanduser(entry[key]))
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def load_kubeconfig(path: pathlib.Path, context_name: str = "") -> Config:
    """The config of ``context_name`` (the current context by default) in a kubeconfig file."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise errors.ConfigError(f"--kubeconfig={path}: cannot read it ({exc})") from exc
    name = context_name or doc.get("current-context", "")

    def pick(kind: str, wanted: str) -> dict[str, Any]:
        for item in doc.get(f"{kind}s") or []:
            if item.get("name") == wanted:
                return dict(item.get(kind) or {})
        raise errors.ConfigError(f"--kubeconfig={path}: no {kind} named {wanted!r}")

    context = pick("context", name)
    cluster, user = pick("cluster", context.get("cluster", "")), pick("user", context.get("user", ""))
    base = path.parent
    ssl_context: ssl.SSLContext | bool
    if cluster.get("insecure-skip-tls-verify"):
        ssl_context = False
    else:
        ssl_context = ssl.create_default_context()
        ca = _data_or_file(cluster, "certificate-authority", base)
        if ca is not None:
            ssl_context.load_verify_locations(cadata=ca.decode())
    cert, key = _data_or_file(user, "client-certificate", base), _data_or_file(user, "client-key", base)
    if cert and key:
        if not isinstance(ssl_context, ssl.SSLContext):
            ssl_context = ssl.create_default_context()
            ssl_context.check_hostname, ssl_context.verify_mode = False, ssl.CERT_NONE
        with tempfile.TemporaryDirectory(prefix="vnode-kube-") as tmp:  # load_cert_chain reads files only
            cert_path, key_path = pathlib.Path(tmp, "cert.pem"), pathlib.Path(tmp, "key.pem")
            cert_path.write_bytes(cert)
            key_path.touch(mode=0o600)
            key_path.write_bytes(key)
            ssl_context.load_cert_chain(cert_path, key_path)
    token_file = user.get("tokenFile")
    credentials = Credentials(user.get("token", ""), pathlib.Path(token_file) if token_file else None)
    server = str(cluster.get("server", "")).rstrip("/")
    if not server:
        raise errors.ConfigError(f"--kubeconfig={path}: cluster {context.get('cluster')!r} has no server")
    return Config(server, ssl_context, credentials, context.get("namespace", "default"))


def load(kubeconfig: str = "", environ: Mapping[str, str] = os.environ) -> Config:
    """``kubeconfig`` if given, else in-cluster when in a pod, else ``~/.kube/config``."""
    if kubeconfig:
        return load_kubeconfig(pathlib.Path(kubeconfig))
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster(environ=environ)
    return load_kubeconfig(pathlib.Path.home() / ".kube" / "config")
