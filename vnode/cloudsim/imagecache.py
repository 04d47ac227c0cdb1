"""ECI's image caches: snapshots of images made over simulated time, matched by new instances, expired.

A cache is made as ECI makes one (a temporary instance pulls the images, then a snapshot is
taken): ``Preparing`` while the temporary instance is scheduled, ``Creating`` while it pulls
(the profile's pull time for the images' size) and ``Ready`` after. Its status is a function of
the clock, so nothing needs ticking. A cache expires ``RetentionDays`` after it was made (never,
without one) and is then gone from DescribeImageCaches. Caches are few, so they are kept as one
JSON value of the store's meta table, written on every change.
"""

from __future__ import annotations

import hashlib

import msgspec

from vnode.cloudsim import errors, model, workloads
from vnode.cloudsim import lifecycle as simlifecycle
from vnode.cloudsim import store as simstore

PREPARING, CREATING, READY = "Preparing", "Creating", "Ready"
DAY = 86_400.0
META_KEY = "image_caches"


class ImageCache(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    images: tuple[str, ...]
    size_gib: int
    created_at: float
    prepared_at: float  # Preparing -> Creating
    ready_at: float  # Creating -> Ready
    snapshot_id: str
    container_group_id: str  # the temporary instance that pulled the images
    retention_days: int | None = None
    client_token: str = ""
    last_matched_at: float = 0.0

    def status(self, now: float) -> str:
        return PREPARING if now < self.prepared_at else CREATING if now < self.ready_at else READY

    def progress(self, now: float) -> str:
        if now >= self.ready_at:
            return "100%"
        if now < self.prepared_at:
            return "0%"
        return f"{int(100 * (now - self.prepared_at) / (self.ready_at - self.prepared_at))}%"

    @property
    def expire_at(self) -> float | None:
        return None if self.retention_days is None else self.created_at + self.retention_days * DAY


class ImageCaches:
    """The region's image caches; ``create``, ``find``, ``delete`` and the two ways instances use one."""

    def __init__(self, store: simstore.Store, profile: simlifecycle.Profile, seed: int) -> None:
        self.store = store
        self.profile = profile
        self.seed = seed
        stored = store.meta(META_KEY)
        self.caches: dict[str, ImageCache] = {}
        for cache in msgspec.json.decode(stored or "[]", type=list[ImageCache]):
            self.caches[cache.id] = cache

    def _save(self) -> None:
        self.store.set_meta(META_KEY, msgspec.json.encode(list(self.caches.values())).decode())

    def _expire(self, now: float) -> None:
        gone = [c.id for c in self.caches.values() if c.expire_at is not None and c.expire_at <= now]
        for cache_id in gone:
            del self.caches[cache_id]
        if gone:
            self._save()

    def create(
        self, name: str, images: tuple[str, ...], *, size_gib: int, retention_days: int | None, token: str, now: float
    ) -> ImageCache:
        """A new cache (or the one an earlier call with the same ClientToken made)."""
        self._expire(now)
        for cache in self.caches.values():
            if token and cache.client_token == token:
                return cache
        for image in images:
            if not workloads.known_image(image):
                raise errors.InvalidParameter("Image", f"image {image} does not exist or may require authorization")
        digest = hashlib.blake2b(f"{self.seed}/imc/{name}/{now}/{len(self.caches)}".encode(), digest_size=10)
        key = digest.hexdigest()
        profile = self.profile
        prepared = now + profile.schedule.base + profile.create.base
        pull = profile.pull.base
        if profile.pull_mb_per_second:
            pull += sum(workloads.image_megabytes(i) for i in set(images)) / profile.pull_mb_per_second
        cache = ImageCache(
            id=f"imc-{key}",
            name=name,
            images=images,
            size_gib=size_gib,
            created_at=now,
            prepared_at=prepared,
            ready_at=prepared + pull,
            snapshot_id=f"s-{key[:16]}",
            container_group_id=f"eci-{key}",
            retention_days=retention_days,
            client_token=token,
        )
        self.caches[cache.id] = cache
        self._save()
        return cache

    def find(self, now: float, *, cache_id: str = "", name: str = "", image: str = "") -> list[ImageCache]:
        """The caches that are not expired, oldest first, filtered as DescribeImageCaches filters them."""
        self._expire(now)
        return [
            c
            for c in sorted(self.caches.values(), key=lambda c: c.created_at)
            if (not cache_id or c.id == cache_id) and (not name or c.name == name) and (not image or image in c.images)
        ]

    def delete(self, cache_id: str) -> None:
        if self.caches.pop(cache_id, None) is None:
            raise errors.ImageCacheNotFound(f"The image cache {cache_id} does not exist.")
        self._save()

    def pinned(self, cache_id: str, now: float) -> ImageCache:
        """The cache an instance names (ImageSnapshotId): it must exist and be Ready."""
        found = self.find(now, cache_id=cache_id)
        if not found:
            raise errors.InvalidParameter("ImageSnapshotId", f"the image cache {cache_id} does not exist")
        status = found[0].status(now)
        if status != READY:
            raise errors.InvalidParameter("ImageSnapshotId", f"the image cache {cache_id} is {status}, not Ready")
        return self._matched(found[0], now)

    def for_spec(self, spec: model.InstanceSpec, now: float) -> str:
        """The image cache a new instance pulls from: the one it names (Ready), or a match, or none."""
        if spec.image_snapshot_id:
            return self.pinned(spec.image_snapshot_id, now).id
        if spec.auto_match_image_cache:
            found = self.match(tuple(c.image for c in (*spec.init_containers, *spec.containers)), now)
            return found.id if found is not None else ""
        return ""

    def match(self, images: tuple[str, ...], now: float) -> ImageCache | None:
        """The Ready cache holding all of ``images`` (AutoMatchImageCache), the newest if several."""
        ready = [c for c in self.find(now) if c.status(now) == READY and set(images) <= set(c.images)]
        return self._matched(ready[-1], now) if ready else None

    def _matched(self, cache: ImageCache, now: float) -> ImageCache:
        cache.last_matched_at = now
        self._save()
        return cache

    def reset(self) -> None:
        self.caches.clear()
        self._save()
