"""Find a provider by name: its profile, then its factory; vnode's own first, then entry points.

A built-in provider is one folder, ``vnode/provider/<name>/``, whose ``profile`` module declares
a ``PROFILE`` (:class:`vnode.provider.profile.Profile`), plus one line in :data:`BUILTIN`. A
third party ships a provider by declaring, in its package's metadata::

    [project.entry-points."vnode.providers"]
    mycloud = "mycloud_vnode:PROFILE"     # a profile.Profile (or, older, a base.ProviderFactory)

and users pick it with ``vnode run --provider mycloud``. Built-in names cannot be shadowed,
so installing a package never silently changes what ``--provider <name>`` means.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from typing import cast

from vnode import errors
from vnode.provider import base, profile

__all__ = ["BUILTIN", "DEFAULT", "GROUP", "available", "builtin", "load", "profile_of"]

GROUP = "vnode.providers"
#: The provider of ``vnode run`` without ``--provider`` or ``VNODE_PROVIDER``.
DEFAULT = "eci"
#: name -> the module declaring its ``PROFILE``.
BUILTIN = {
    "eci": "vnode.provider.eci.profile",
    "aci": "vnode.provider.aci.profile",
    "fake": "vnode.provider.fake.profile",
    "process": "vnode.provider.process.profile",
}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(set(BUILTIN) | set(_entry_points()))


def builtin() -> list[profile.Profile]:
    """The profiles of vnode's own providers, in :data:`BUILTIN` order."""
    return [profile_of(name) for name in BUILTIN]


@functools.cache
def profile_of(name: str) -> profile.Profile:
    """The profile of provider ``name``; ``ConfigError`` (one line) if there is none."""
    if name in BUILTIN:
        try:
            module = importlib.import_module(BUILTIN[name])
        except ImportError as exc:
            raise errors.ConfigError(f"--provider={name}: not available in this build ({exc})") from exc
        return cast(profile.Profile, module.PROFILE)
    entry = _entry_points().get(name)
    if entry is None:
        raise errors.ConfigError(f"--provider={name}: unknown provider (available: {', '.join(available())})")
    try:
        loaded = entry.load()
    except Exception as exc:
        raise errors.ConfigError(f"--provider={name}: entry point {entry.value} failed to load: {exc}") from exc
    if isinstance(loaded, profile.Profile):
        return loaded
    # An entry point naming a factory: a provider with a neutral profile (no settings, sizes, prices).
    return profile.Profile(name=name, factory=entry.value, taint=name, container_id_scheme=name)


def load(name: str) -> base.ProviderFactory:
    """The factory for ``name``; ``ConfigError`` (one line) if there is none or it cannot be imported."""
    target = profile_of(name).factory
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise errors.ConfigError(f"--provider={name}: {target} failed to load: {exc}") from exc
    return cast(base.ProviderFactory, factory)
