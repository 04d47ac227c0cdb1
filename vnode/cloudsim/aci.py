"""The Azure Container Instances dialect: ARM routes of Microsoft.ContainerInstance over HTTPS.

``azure-mgmt-containerinstance`` works against it unchanged, given ``base_url`` and
``connection_verify=<ca.pem>``: the SDK refuses bearer tokens over plain HTTP, so this dialect
serves TLS with a CA of its own (``ensure_tls``, made by ``vnode/certificates.py``). A request
carries ``Authorization: Bearer <token>``; the tokens this simulator accepts are given to
``create_app`` (``default_token`` derives one from the seed, so it survives restarts and can be
written to cloud.json).

One way to serve it: ``mount`` adds it to the simulator's server (``server.Server``) as a
listener of its own. The parts: ``aci_arm`` (ARM's names, errors, the tags that hold ARM's
fields), ``aci_spec`` (a PUT body to the cloud's spec), ``aci_render`` (an instance to ARM's
JSON), ``aci_dialect`` (the container-group handlers and long-running operations),
``aci_exec`` (exec over a WebSocket) and ``aci_metrics`` (Azure Monitor's metrics).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import pathlib
import re
import ssl
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from aiohttp import web

from vnode import certificates
from vnode.cloudsim import aci_arm, aci_dialect, aci_exec, aci_metrics, aci_tokens, errors
from vnode.cloudsim import cloud as cloudmod

__all__ = [
    "RESOURCE_TYPE",
    "TAG_GROUP",
    "Host",
    "Mounted",
    "TlsFiles",
    "connection_info",
    "create_app",
    "default_subscription",
    "default_token",
    "dialect_of",
    "ensure_tls",
    "mount",
]

RESOURCE_TYPE = aci_arm.RESOURCE_TYPE
TAG_GROUP = aci_arm.TAG_GROUP
TLS_VALIDITY = datetime.timedelta(days=3650)
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


# -- credentials and TLS -------------------------------------------------------------------


def default_token(seed: int) -> str:
    """The bearer token a simulator with this seed accepts (stable across restarts)."""
    return "vnode-sim." + hashlib.sha256(f"aci-token/{seed}".encode()).hexdigest()[:40]


def default_subscription(seed: int) -> str:
    """A subscription id for cloud.json; the simulator accepts any subscription."""
    return str(uuid.UUID(hashlib.sha256(f"aci-subscription/{seed}".encode()).hexdigest()[:32]))


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    ca: pathlib.Path  # what clients pass as connection_verify
    cert: pathlib.Path
    key: pathlib.Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def ensure_tls(directory: pathlib.Path) -> TlsFiles:
    """A CA and a serving certificate for 127.0.0.1 and localhost in ``directory``; made once, kept.

    Kept across restarts so that clients holding the CA file keep trusting the simulator. The
    CA's key is not kept: nothing else is ever signed with it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "aci-ca.pem", directory / "aci-server.pem", directory / "aci-server-key.pem")
    if files.ca.exists() and files.cert.exists() and files.key.exists():
        return files
    ca = certificates.make_ca("vnode cloudsim ACI CA", validity=TLS_VALIDITY)
    serving = certificates.issue(
        ca, common_name="localhost", hosts=("localhost", "127.0.0.1"), server=True, validity=TLS_VALIDITY
    )
    certificates.write_pair(serving, files.cert, files.key)
    files.ca.write_bytes(ca.cert)
    return files


# -- the app ---------------------------------------------------------------------------------

_APP_KEY = web.AppKey("aci", aci_dialect.Dialect)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _arm_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    dialect = request.app[_APP_KEY]
    dialect.requests += 1
    request_id = dialect.request_id()
    try:
        if not request.path.startswith("/aci-exec/"):
            dialect.authenticate(request)
            version = request.query.get("api-version")
            if not version:
                raise aci_arm.ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            if not _API_VERSION.match(version):
                raise aci_arm.ArmError(400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid.")
        response = await handler(request)
    except aci_arm.ArmError as exc:
        response = aci_arm.error_response(exc)
    except errors.CloudError as exc:
        response = aci_arm.error_response(aci_arm.from_cloud(exc))
    except web.HTTPNotFound:
        response = aci_arm.error_response(
            aci_arm.ArmError(
                404, "NotFound", f"No route for {request.method} {request.path} in the ACI dialect of cloudsim."
            )
        )
    except web.HTTPMethodNotAllowed:
        response = aci_arm.error_response(
            aci_arm.ArmError(
                405, "MethodNotAllowed", f"The method {request.method} is not supported for {request.path}."
            )
        )
    except web.HTTPClientError as exc:  # aiohttp's own refusals (a body over the size limit: 413), in ARM's shape
        response = aci_arm.error_response(
            aci_arm.ArmError(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason)
        )
    if response.status == 429:
        dialect.throttled += 1
    if not response.prepared:
        response.headers["x-ms-request-id"] = request_id
        response.headers["x-ms-correlation-request-id"] = request_id
    return response


def create_app(
    cloud: cloudmod.Cloud,
    *,
    tokens: Collection[str],
    page_size: int = aci_dialect.DEFAULT_PAGE_SIZE,
    poll_interval: float = 1.0,
    commit: Callable[[], Awaitable[None]] | None = None,
) -> web.Application:
    """The ACI dialect as an aiohttp app, to serve over TLS (``mount`` does both)."""
    dialect = aci_dialect.Dialect(cloud, tokens=tokens, page_size=page_size, poll_interval=poll_interval, commit=commit)
    execs = aci_exec.Exec(dialect)
    app = web.Application(middlewares=[_arm_middleware])
    app[_APP_KEY] = dialect
    groups = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups"
    group = groups + "/{name}"
    app.router.add_put(group, dialect.put_group)
    app.router.add_get(group, dialect.get_group)
    app.router.add_delete(group, dialect.delete_group)
    app.router.add_get(groups, dialect.list_groups)
    app.router.add_get(
        "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/containerGroups", dialect.list_groups
    )
    app.router.add_post(group + "/restart", dialect.restart_group)
    app.router.add_patch(group, dialect.patch_group)
    app.router.add_post(group + "/stop", dialect.stop_group)
    app.router.add_post(group + "/start", dialect.start_group)
    app.router.add_get(group + "/containers/{container}/logs", dialect.logs)
    app.router.add_post(group + "/containers/{container}/exec", execs.start)
    # ARM paths are case-insensitive; clients spell the namespace either way.
    metrics = aci_metrics.Metrics(dialect).handle
    app.router.add_get(group + "/providers/{insights:[Mm]icrosoft\\.[Ii]nsights}/metrics", metrics)
    app.router.add_get(
        "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{location}/{kind:operations|operationResults}/{op}",
        dialect.operation,
    )
    app.router.add_get("/aci-exec/{session}", execs.socket)
    return app


def dialect_of(app: web.Application) -> aci_dialect.Dialect:
    """The dialect behind an app made by ``create_app`` (tests read its counters)."""
    return app[_APP_KEY]


def connection_info(endpoint: str, tls: TlsFiles, *, seed: int, resource_group: str = "vnode") -> dict[str, str]:
    """The ``aci`` section of cloud.json: what a client needs to reach the endpoint."""
    return {
        "endpoint": endpoint,
        "ca_file": str(tls.ca),
        "token": default_token(seed),
        "subscription_id": default_subscription(seed),
        "tenant_id": aci_tokens.tenant(seed),
        "resource_group": resource_group,
        "location": "westeurope",
        "api_version": "2023-05-01",
    }


class Host(Protocol):
    """What ``mount`` needs of the simulator's server (``vnode.cloudsim.server.Server``)."""

    cloud: cloudmod.Cloud
    host: str
    extra_ports: list[int]

    def add_site(self, app: web.Application, *, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None: ...

    async def commit(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Mounted:
    """The ACI dialect added to a server; ``connection_info()`` once the server listens."""

    host: Host
    index: int  # which of the server's extra sites is ours
    tls: TlsFiles
    dialect: aci_dialect.Dialect  # its counters, for tests

    @property
    def port(self) -> int:
        return self.host.extra_ports[self.index]

    @property
    def base_url(self) -> str:
        """Where the SDK reaches the dialect (``base_url=``), once the server listens."""
        return f"https://{self.host.host}:{self.port}"

    def connection_info(self) -> dict[str, str]:
        return connection_info(self.base_url, self.tls, seed=self.host.cloud.seed)


def mount(
    host: Host,
    state_dir: pathlib.Path,
    *,
    port: int = 0,
    index: int = 0,
    tokens: Collection[str] | None = None,
    page_size: int = aci_dialect.DEFAULT_PAGE_SIZE,
    poll_interval: float = 1.0,
) -> Mounted:
    """Add the ACI dialect over HTTPS to the server: a CA in ``state_dir``, the seed's token (or ``tokens``).

    ``index`` is the position of this site among the server's extra sites (0 if it is the only one).
    """
    tls = ensure_tls(state_dir)
    app = create_app(
        host.cloud,
        tokens=[default_token(host.cloud.seed)] if tokens is None else tokens,
        page_size=page_size,
        poll_interval=poll_interval,
        commit=host.commit,
    )
    host.add_site(app, port=port, ssl_context=tls.server_context())
    return Mounted(host, index, tls, dialect_of(app))
