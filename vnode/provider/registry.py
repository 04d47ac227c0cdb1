"""Find a provider factory by name: vnode's own, then the ``vnode.providers`` entry points.

A third party ships a provider by declaring, in its package's metadata::

    [project.entry-points."vnode.providers"]
    mycloud = "mycloud_vnode:create"      # a base.ProviderFactory

and users pick it with ``vnode run --provider mycloud``. Built-in names cannot be shadowed,
so installing a package never silently changes what ``--provider eci`` means.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import cast

from vnode import errors
from vnode.provider import base

__all__ = ["GROUP", "available", "load"]

GROUP = "vnode.providers"
BUILTIN = {
    "eci": "vnode.provider.eci:create",
    "aci": "vnode.provider.aci:create",
    "fake": "vnode.provider.fake:create",
    "process": "vnode.provider.process:create",
}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(set(BUILTIN) | set(_entry_points()))


def load(name: str) -> base.ProviderFactory:
    """The factory for ``name``; ``ConfigError`` (one line) if there is none or it cannot be imported."""
    if name in BUILTIN:
        module_name, _, attr = BUILTIN[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise errors.ConfigError(f"--provider={name}: not available in this build ({exc})") from exc
        return cast(base.ProviderFactory, getattr(module, attr))
    entry = _entry_points().get(name)
    if entry is None:
        raise errors.ConfigError(f"--provider={name}: unknown provider (available: {', '.join(available())})")
    try:
        return cast(base.ProviderFactory, entry.load())
    except Exception as exc:
        raise errors.ConfigError(f"--provider={name}: entry point {entry.value} failed to load: {exc}") from exc
