"""Where the API server is and who we are: a kubeconfig (the ``kubernetes`` package's loader) or a pod's account.

The package's loader reads kubeconfig files (merged ``KUBECONFIG`` lists, contexts, relative
and inline certificates, tokens and token files, exec plugins such as ``aws eks get-token``,
``kubelogin`` or ``ack-ram-authenticator``, the oidc auth-provider). This module turns its result
into what the aiohttp client needs: a server URL, an ``ssl.SSLContext`` and the ``Authorization``
header of each request.

The header is asked for at every request (:class:`Credentials`): an exec plugin's token is
run again by the package's refresh hook when it nears its ``expirationTimestamp`` (the plugin
runs synchronously, once an expiry, as in kubectl), and a token *file* is re-read when it
changes: in a pod the service-account token is a projected file that the kubelet rotates
(hourly by default), which the package would read only once a minute or, in a kubeconfig's
``tokenFile``, only once. The package is imported only when a kubeconfig is loaded: it costs most
of a second and some 10 MB for the life of the process, which ``vnode --help`` and a daemon in a
pod (its service account is read here, as client-go reads it) need not pay.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pathlib
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

from vnode import errors

__all__ = ["SERVICE_ACCOUNT_DIR", "Config", "Credentials", "in_cluster", "load", "load_kubeconfig"]

SERVICE_ACCOUNT_DIR = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")


#: Seconds between two looks at a token file, as client-go's ``NewCachedFileTokenSource`` (a minute; a
#: 401 makes the next request look again, as its ``ResetTokenOlderThan``): the kubelet rotates a
#: projected token long before it expires, and a look per request was a ``stat`` on every call of the
#: hot path.
FILE_INTERVAL = 60.0


class Credentials:
    """The ``Authorization`` header of a request: fixed, from a token file that may be rotated under
    us, or from a hook (the ``kubernetes`` package's, which runs an exec plugin again when due).

    The hook is asked at most every ``hook_interval`` seconds: the package's costs ~0.5 ms a
    call (it re-reads the proxy environment), and it renews a token five minutes before expiry.
    """

    def __init__(
        self,
        token: str = "",
        token_file: pathlib.Path | None = None,
        hook: Callable[[], str | None] | None = None,
        *,
        hook_interval: float = 10.0,
        file_interval: float = FILE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token
        self._file = token_file
        self._hook = hook
        self._mtime: float | None = None
        self._header = f"Bearer {token}" if token else ""
        self._hook_due = -math.inf
        self._hook_interval = hook_interval
        self._file_due = -math.inf
        self._file_interval = file_interval
        self._clock = clock

    def refused(self) -> None:
        """The API server answered 401: the next request reads the token file again at once (or asks the
        exec plugin's hook again, which runs the plugin if the token it holds has expired)."""
        self._file_due = self._hook_due = -math.inf

    def authorization(self) -> str:
        """The header's value (``Bearer <token>``), or empty for none (client certificates)."""
        if self._hook is not None:
            now = self._clock()
            if now >= self._hook_due:
                self._header, self._hook_due = self._hook() or "", now + self._hook_interval
            return self._header
        if self._file is not None:
            now = self._clock()
            if now >= self._file_due:
                self._file_due = now + self._file_interval
                mtime: float | None = self._mtime
                with contextlib.suppress(OSError):
                    mtime = self._file.stat().st_mtime
                if mtime != self._mtime:
                    self._token, self._mtime = self._file.read_text().strip(), mtime
                    self._header = f"Bearer {self._token}" if self._token else ""
        return self._header


@dataclasses.dataclass(frozen=True)
class Config:
    server: str
    ssl: ssl.SSLContext | bool
    credentials: Credentials
    namespace: str = "default"
    ca_pem: bytes = b""  # the CA bundle the server is checked with, for clients we start (process pods)
    tls_server_name: str | None = None  # the name to check the server's certificate for, if not the host's


def in_cluster(
    directory: pathlib.Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] = os.environ,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Config:
    """The pod's service account, read as client-go's ``rest.InClusterConfig`` reads it: the API
    server from ``KUBERNETES_SERVICE_HOST``/``_PORT``, the token file (re-read when rotated) and the
    CA in ``directory``. Without the ``kubernetes`` package: its import holds some 10 MB for the life
    of every daemon, and there is no file format here to parse."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise errors.ConfigError("in-cluster config: KUBERNETES_SERVICE_HOST is not set (give --kubeconfig)")
    if not port:
        raise errors.ConfigError("in-cluster config: KUBERNETES_SERVICE_PORT is set but empty")
    ca, token = directory / "ca.crt", directory / "token"
    read: dict[pathlib.Path, bytes] = {}
    for path, what in ((token, "the service account's token"), (ca, "the cluster's CA")):
        try:
            read[path] = path.read_bytes()
        except OSError as exc:
            raise errors.ConfigError(f"in-cluster config: {what}: {exc}") from exc
        if not read[path].strip():
            raise errors.ConfigError(f"in-cluster config: {path} ({what}) is empty")
    server = f"https://[{host}]:{port}" if ":" in host or "%" in host else f"https://{host}:{port}"
    try:
        context = ssl.create_default_context(cafile=str(ca))
    except OSError as exc:  # ssl.SSLError is one: a file that is no PEM
        raise errors.ConfigError(f"in-cluster config: TLS: {ca}: {exc}") from exc
    namespace_file = directory / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else "default"
    return Config(server, context, Credentials(token_file=token, clock=clock), namespace or "default", read[ca])


def load_kubeconfig(
    path: pathlib.Path, context_name: str = "", *, clock: Callable[[], float] = time.monotonic
) -> Config:
    """The config of ``context_name`` (the current context by default) in a kubeconfig file.

    ``path`` may be a ``KUBECONFIG``-style list (``a:b``), merged as kubectl does. An exec
    plugin runs now, and again whenever its token nears its expiry.
    """
    from kubernetes.client import configuration as k8s_configuration
    from kubernetes.config import config_exception, kube_config

    loaded = k8s_configuration.Configuration()
    try:
        merged = kube_config.KubeConfigMerger(str(path))  # type: ignore[no-untyped-call]
        if merged.config is None:
            raise errors.ConfigError(f"--kubeconfig={path}: no such file, or nothing in it")
        loader = kube_config.KubeConfigLoader(  # type: ignore[no-untyped-call]
            merged.config, active_context=context_name or None, config_base_path=None
        )
        loader.load_and_set(loaded)  # type: ignore[no-untyped-call]
    except (config_exception.ConfigException, OSError, ValueError) as exc:
        # ValueError: the YAML itself (yaml.YAMLError is one) or a base64 field.
        raise errors.ConfigError(f"--kubeconfig={path}: {exc}") from exc
    server = str(loaded.host).rstrip("/")
    if not server or server == "http://localhost":  # the package's default when the cluster has no server
        raise errors.ConfigError(f"--kubeconfig={path}: the cluster of the context has no server")
    context = loader.current_context.get("context") or {}
    user = _user(merged.config, context.get("user", ""))
    if user is not None and "exec" in user and not loaded.api_key.get("BearerToken") and not loaded.cert_file:
        # The package logs the plugin's failure and goes on without credentials; say it here.
        raise errors.ConfigError(f"--kubeconfig={path}: the exec plugin of user {context.get('user')!r} failed")
    context_ssl, ca_pem = _tls(loaded, f"--kubeconfig={path}")
    return Config(
        server,
        context_ssl,
        _credentials(loaded, _token_file(user), clock),
        context.get("namespace") or "default",
        ca_pem,
        loaded.tls_server_name,
    )


def _user(merged: Any, name: str) -> Any:
    """The ``user`` entry named ``name`` (a ``ConfigNode`` that knows its file), or None."""
    named = merged["users"].get_with_name(name, safe=True) if name and "users" in merged else None
    return named["user"] if named is not None and "user" in named else None


def _token_file(user: Any) -> pathlib.Path | None:
    """The user's ``tokenFile`` (relative to the kubeconfig that names it), unless it has a plain token."""
    if user is None or user.safe_get("token") or not user.safe_get("tokenFile"):
        return None
    token_file = pathlib.Path(os.path.expanduser(str(user["tokenFile"])))
    return token_file if token_file.is_absolute() else pathlib.Path(str(user.path)).parent / token_file


def _credentials(loaded: Any, token_file: pathlib.Path | None, clock: Callable[[], float]) -> Credentials:
    if token_file is not None:
        return Credentials(token_file=token_file, clock=clock)
    if not loaded.api_key.get("BearerToken"):
        return Credentials()  # a client certificate, or no credentials at all

    def header() -> str | None:
        value: str | None = loaded.get_api_key_with_prefix("BearerToken")  # runs the refresh hook
        return value

    return Credentials(hook=header, clock=clock)


def _tls(loaded: Any, where: str) -> tuple[ssl.SSLContext | bool, bytes]:
    """TLS as the package's configuration says (its CA, else the system's; its client
    certificate), and the CA bundle's PEM."""
    cert, key = loaded.cert_file, loaded.key_file
    try:
        ca_pem = pathlib.Path(loaded.ssl_ca_cert).read_bytes() if loaded.ssl_ca_cert else b""
        if not loaded.verify_ssl and not (cert and key):
            return False, ca_pem
        context = ssl.create_default_context(cafile=loaded.ssl_ca_cert or None)
        if not loaded.verify_ssl:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if cert and key:
            context.load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError is one: a file that is no PEM, a key that does not match
        raise errors.ConfigError(f"{where}: TLS: {exc}") from exc
    return context, ca_pem


def load(kubeconfig: str = "", environ: Mapping[str, str] = os.environ) -> Config:
    """``kubeconfig`` if given, else in-cluster when in a pod, else ``~/.kube/config``."""
    if kubeconfig:
        return load_kubeconfig(pathlib.Path(kubeconfig))
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster(environ=environ)
    return load_kubeconfig(pathlib.Path.home() / ".kube" / "config")
