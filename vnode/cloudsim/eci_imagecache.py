"""The ECI dialect's image caches: CreateImageCache, DescribeImageCaches and DeleteImageCache.

Field names are those of the official SDK's models (``CreateImageCacheRequest``,
``DescribeImageCachesResponseBodyImageCaches``). Parameters the simulator does not model
(``AcrRegistryInfo``, ``Flash``, ``EliminationStrategy``, ...) are accepted and ignored; the
registry credentials are checked for shape only, as the simulated registry holds public images.
"""

from __future__ import annotations

from typing import Any

from vnode.cloudsim import cloud as cloudmod
from vnode.cloudsim import eci_numbers, eci_params, errors, imagecache, timefmt

MAX_IMAGES = 20  # ROS's limit for Image.N


def create(cloud: cloudmod.Cloud, p: eci_params.Params) -> dict[str, Any]:
    images = tuple(value for _, value in sorted(_numbered(p, "Image").items()))
    if not images:
        raise errors.MissingParameter("Image.1")
    if len(images) > MAX_IMAGES:
        raise errors.InvalidParameter("Image", f"at most {MAX_IMAGES} images per cache")
    for n, fields in p.indexed("ImageRegistryCredential").items():
        if not fields.get("Server"):
            raise errors.MissingParameter(f"ImageRegistryCredential.{n}.Server")
    cache = cloud.image_caches.create(
        p.text("ImageCacheName", required=True),
        images,
        size_gib=p.integer("ImageCacheSize", default=20, low=20, high=32768) or 20,
        retention_days=p.integer("RetentionDays", low=1, high=65536),
        token=p.text("ClientToken"),
        now=cloud.now(),
    )
    return {"ImageCacheId": cache.id, "ContainerGroupId": cache.container_group_id}


def describe(cloud: cloudmod.Cloud, p: eci_params.Params) -> dict[str, Any]:
    now = cloud.now()
    found = cloud.image_caches.find(
        now, cache_id=p.text("ImageCacheId"), name=p.text("ImageCacheName"), image=p.text("Image")
    )
    wanted = set(_numbered(p, "MatchImage").values())
    if wanted:
        found = [c for c in found if wanted <= set(c.images)]
    limit = p.integer("Limit", default=len(found) or 1, low=1) or 1
    token = p.text("NextToken")
    start = eci_numbers.digits(token, high=10**9) if token else 0
    if start is None:
        raise errors.InvalidParameter("NextToken", "not a token this API returned")
    page = found[start : start + limit]
    more = start + limit < len(found)
    return {
        "ImageCaches": [render(c, now, cloud.world.region) for c in page],
        "TotalCount": len(found),
        "NextToken": str(start + limit) if more else "",
    }


def delete(cloud: cloudmod.Cloud, p: eci_params.Params) -> dict[str, Any]:
    cloud.image_caches.delete(p.text("ImageCacheId", required=True))
    return {}


def render(cache: imagecache.ImageCache, now: float, region: str) -> dict[str, Any]:
    """One item of DescribeImageCaches, as ``DescribeImageCachesResponseBodyImageCaches`` reads it."""
    status = cache.status(now)
    events = [
        ("Pulling", cache.prepared_at, f"Pulling image {image}") for image in cache.images if now >= cache.prepared_at
    ]
    events += [
        ("Pulled", cache.ready_at, f"Successfully pulled image {image}") for image in cache.images if status == "Ready"
    ]
    expire = cache.expire_at
    return {
        "ImageCacheId": cache.id,
        "ImageCacheName": cache.name,
        "ImageCacheSize": cache.size_gib,
        "Images": list(cache.images),
        "Status": status,
        "Progress": cache.progress(now),
        "SnapshotId": cache.snapshot_id if status == "Ready" else "",
        "ContainerGroupId": cache.container_group_id,
        "RegionId": region,
        "CreationTime": timefmt.rfc3339(cache.created_at),
        "ExpireDateTime": timefmt.rfc3339(expire) if expire is not None else "",
        "LastMatchedTime": timefmt.rfc3339(cache.last_matched_at),
        "Events": [
            {
                "Count": 1,
                "Name": cache.name,
                "Type": "Normal",
                "Reason": reason,
                "Message": message,
                "FirstTimestamp": timefmt.rfc3339(at),
                "LastTimestamp": timefmt.rfc3339(at),
            }
            for reason, at, message in events
        ],
        "Tags": [],
    }


def _numbered(p: eci_params.Params, prefix: str) -> dict[int, str]:
    """``Image.1=a&Image.2=b`` -> {1: "a", 2: "b"}."""
    found: dict[int, str] = {}
    for key, value in p.raw.items():
        head, _, text = key.rpartition(".")
        n = eci_numbers.index(text)
        if head == prefix and n is not None and value:
            found[n] = value
    return found
