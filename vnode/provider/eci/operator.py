"""``vnode operator`` for ECI: ImageCache objects (``eci.alibabacloud.com/v1``) kept as ECI image caches.

The job kopf was made for: a custom resource with a status, a timer and a deletion. ACK's own
CRD is the contract (cluster-scoped ``ImageCache``: ``spec.images``, ``imagePullSecrets``,
``imageCacheSize``, ``retentionDays``; ``status.phase``, ``progress``, ``imageCacheId``,
``expireDateTime``), so manifests written for ACK work unchanged. Creating one calls
CreateImageCache (the object's UID as ClientToken: a retried handler never makes two caches);
a timer reads DescribeImageCaches and writes what the cloud says into the status, with an event
when the phase changes; deleting one deletes the cloud's cache through kopf's finalizer.

kopf's settings, and why: one operator per cluster (a Deployment of one replica, ``Recreate``),
so peering is off (``standalone``) and no KopfPeering resource is needed; handler progress and
the last-handled spec live in the status (``status.kopf``), so kopf leaves no annotation on the
object; its finalizer is named after the resource, not after kopf. Handlers write the status
through kopf's ``patch`` (applied once, after the handler), never by a call of their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from typing import Any

import kopf

from vnode import errors
from vnode import settings as vnode_settings
from vnode.provider.eci import client as eci_client
from vnode.provider.eci import config as eci_config

__all__ = ["FINALIZER", "GROUP", "PLURAL", "VERSION", "Cloud", "login", "make_registry", "run", "settings"]

GROUP, VERSION, PLURAL = "eci.alibabacloud.com", "v1", "imagecaches"
FINALIZER = "eci.alibabacloud.com/image-cache"

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Cloud:
    """What the handlers need of ECI: a client, the region, where the cache's temporary instance goes."""

    client: eci_client.EciClient
    region: str
    placement: dict[str, str] = dataclasses.field(default_factory=dict)  # SecurityGroupId, VSwitchId


def settings(kopf_settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator (see the module's docstring)."""
    kopf_settings.peering.standalone = True
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    kopf_settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandledSpec")
    kopf_settings.posting.level = logging.INFO  # events: what changed, not kopf's debugging
    kopf_settings.watching.server_timeout = 300


def login(kubeconfig: str) -> kopf.ConnectionInfo:
    """Credentials as the ``kubernetes`` package loads them: ``kubeconfig``, else in-cluster, else ~/.kube/config."""
    import kubernetes  # only when the operator starts

    config = kubernetes.client.Configuration()
    if kubeconfig:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)  # type: ignore[no-untyped-call]
    else:
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=config)  # type: ignore[no-untyped-call]
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


def _spec(spec: Any) -> tuple[tuple[str, ...], int | None, int | None]:
    images = tuple(str(i) for i in spec.get("images") or ())
    if not images:
        raise kopf.PermanentError("spec.images: at least one image is required")
    for secret in spec.get("imagePullSecrets") or ():
        if ":" not in str(secret):
            raise kopf.PermanentError(f"spec.imagePullSecrets: {secret!r} is not namespace:secretName")
    size, days = spec.get("imageCacheSize"), spec.get("retentionDays")
    return images, (int(size) if size is not None else None), (int(days) if days is not None else None)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _create(cloud: Cloud, name: str, spec: Any, token: str) -> str:
    images, size, days = _spec(spec)
    try:
        return await cloud.client.create_image_cache(
            cloud.region,
            name,
            images,
            size_gib=size,
            retention_days=days,
            client_token=token,
            placement=cloud.placement,
        )
    except errors.InvalidSpec as exc:
        raise kopf.PermanentError(exc.message) from exc
    except errors.ApiError as exc:
        raise kopf.TemporaryError(exc.message, delay=10) from exc


def _status_of(found: eci_client.ImageCache) -> dict[str, Any]:
    return {
        "imageCacheId": found.image_cache_id,
        "phase": found.status,
        "progress": found.progress,
        "expireDateTime": found.expire_date_time or None,
        "lastUpdatedTime": _now(),
    }


async def on_create(
    body: kopf.Body, spec: kopf.Spec, name: str, uid: str, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """CreateImageCache for a new ImageCache; the status says Creating until the timer sees it Ready."""
    cloud: Cloud = memo.cloud
    cache_id = await _create(cloud, name, spec, uid)
    kopf.info(body, reason="Creating", message=f"creating image cache {cache_id} of {len(spec['images'])} image(s)")
    patch.status.update({"imageCacheId": cache_id, "phase": "Creating", "progress": "0%", "startTime": _now()})


async def on_update(
    body: kopf.Body, spec: kopf.Spec, name: str, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """A changed spec makes a new cache (ECI updates only Ready caches, in place): then the old one goes."""
    cloud: Cloud = memo.cloud
    old = status.get("imageCacheId")
    generation = body.metadata.get("generation", 0)
    cache_id = await _create(cloud, name, spec, f"{body.metadata.uid}-{generation}")
    if old and old != cache_id:
        await cloud.client.delete_image_cache(cloud.region, old)
    kopf.info(body, reason="Updating", message=f"spec changed: image cache {cache_id} replaces {old}")
    patch.status.update({"imageCacheId": cache_id, "phase": "Creating", "progress": "0%"})


async def on_delete(body: kopf.Body, status: kopf.Status, memo: kopf.Memo, **_: Any) -> None:
    """DeleteImageCache; kopf removes the finalizer once this returns."""
    cloud: Cloud = memo.cloud
    cache_id = status.get("imageCacheId")
    if cache_id:
        try:
            await cloud.client.delete_image_cache(cloud.region, cache_id)
        except errors.ApiError as exc:
            raise kopf.TemporaryError(exc.message, delay=5) from exc
        log.info("deleted image cache %s of %s", cache_id, body.metadata.name)


async def refresh(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """The timer: DescribeImageCaches into the status; an event when the phase changes."""
    cloud: Cloud = memo.cloud
    cache_id = status.get("imageCacheId")
    if not cache_id:
        return
    try:
        found = await cloud.client.describe_image_cache(cloud.region, cache_id)
    except errors.ApiError as exc:
        log.warning("DescribeImageCaches %s: %s", cache_id, exc.message)
        return
    was = status.get("phase")
    if found is None:
        expired = status.get("expireDateTime")
        new = {"phase": "Expired" if expired and expired <= _now() else "Failed", "lastUpdatedTime": _now()}
        if was != new["phase"]:
            kopf.warn(body, reason=new["phase"], message=f"the cloud no longer has image cache {cache_id}")
            patch.status.update(new)
        return
    new = _status_of(found)
    if was != found.status:
        if found.status == "Ready":
            kopf.info(body, reason="Ready", message=f"image cache {cache_id} is ready")
        elif found.status in ("Failed", "UpdateFailed"):
            kopf.warn(body, reason=found.status, message=f"image cache {cache_id} is {found.status}")
    if any(status.get(k) != v for k, v in new.items() if k != "lastUpdatedTime"):
        patch.status.update(new)


def make_registry(*, refresh_interval: float) -> kopf.OperatorRegistry:
    """The handlers on a registry of their own (no module-level decorators: the interval is a setting)."""
    registry = kopf.OperatorRegistry()
    g, v, p, r = GROUP, VERSION, PLURAL, registry
    kopf.on.create(g, v, p, registry=r, id="create")(on_create)
    kopf.on.update(g, v, p, registry=r, id="update", field="spec")(on_update)
    kopf.on.delete(g, v, p, registry=r, id="delete")(on_delete)
    kopf.timer(g, v, p, registry=r, id="refresh", interval=refresh_interval, initial_delay=0)(refresh)
    return registry


async def run(
    config: vnode_settings.Settings,
    *,
    kubeconfig: str = "",
    refresh_interval: float = 10.0,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or a signal, when kopf owns the loop's signals)."""
    eci = config.cloud
    if not isinstance(eci, eci_config.EciSettings):
        raise errors.ConfigError(f"vnode operator: settings of another provider ({type(eci).__name__})")
    if not eci.access_key or not eci.secret_key:
        raise errors.ConfigError("ECI_ACCESS_KEY/ECI_SECRET_KEY: the AccessKey pair is required")
    endpoint = eci.endpoint or f"eci.{eci.region}.aliyuncs.com"
    placement = {"SecurityGroupId": eci.security_group, "VSwitchId": ",".join(eci.vswitches)}
    cloud = Cloud(
        eci_client.EciClient(endpoint, eci.access_key, eci.secret_key),
        eci.region,
        {k: v for k, v in placement.items() if v},
    )
    registry = make_registry(refresh_interval=refresh_interval)
    kopf.on.login(registry=registry)(lambda **_: login(kubeconfig))
    kopf_settings = kopf.OperatorSettings()
    settings(kopf_settings)
    try:
        await kopf.operator(
            registry=registry,
            settings=kopf_settings,
            clusterwide=True,
            standalone=True,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=kopf.Memo(cloud=cloud),
        )
    finally:
        await cloud.client.close()
