"""The pod-spec fields of security and name resolution, as typed partial views (see objects.py).

Declared apart from ``objects`` only to keep each module small; ``objects.PodSpec`` and
``objects.Container`` use them.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "Capabilities",
    "HostAlias",
    "PodDNSConfig",
    "PodDNSConfigOption",
    "PodSecurityContext",
    "SecurityContext",
    "Sysctl",
]


class _S(msgspec.Struct, rename="camel", kw_only=True):
    pass


class Capabilities(_S):
    add: list[str] = []
    drop: list[str] = []


class SecurityContext(_S):
    """A container's securityContext (the fields vnode maps or refuses)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    privileged: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    capabilities: Capabilities | None = None
    # Present so that node/fields.py sees them set (a field a provider does not map is refused).
    proc_mount: str | None = None
    se_linux_options: dict[str, Any] | None = None
    seccomp_profile: dict[str, Any] | None = None
    app_armor_profile: dict[str, Any] | None = None
    windows_options: dict[str, Any] | None = None


class Sysctl(_S):
    name: str
    value: str = ""


class PodSecurityContext(_S):
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: list[int] = []
    sysctls: list[Sysctl] = []
    # Present so that node/fields.py sees them set (a field a provider does not map is refused).
    supplemental_groups_policy: str | None = None
    fs_group_change_policy: str | None = None
    se_linux_options: dict[str, Any] | None = None
    se_linux_change_policy: str | None = None
    seccomp_profile: dict[str, Any] | None = None
    app_armor_profile: dict[str, Any] | None = None
    windows_options: dict[str, Any] | None = None


class HostAlias(_S):
    ip: str = ""
    hostnames: list[str] = []


class PodDNSConfigOption(_S):
    name: str = ""
    value: str | None = None


class PodDNSConfig(_S):
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[PodDNSConfigOption] = []
