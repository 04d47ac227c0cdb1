"""A simulated cloud in the test's own process, on a manual clock (nothing moves until ``advance``)."""

from __future__ import annotations

import pathlib

from vnode.cloudsim import clock, cloud, lifecycle, store


def in_process(db: pathlib.Path, *, profile: str | lifecycle.Profile = "fast", seed: int = 7) -> cloud.Cloud:
    """A cloud over the store ``db``; the caller closes ``.store``."""
    rules = lifecycle.PROFILES[profile] if isinstance(profile, str) else profile
    return cloud.Cloud(store=store.Store(db), clock=clock.Clock.manual(), profile=rules, seed=seed)
