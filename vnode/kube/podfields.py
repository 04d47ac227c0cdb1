"""The pod-spec fields of security, name resolution, probes and lifecycle hooks, as typed partial views.

Declared apart from ``objects`` only to keep each module small; ``objects.PodSpec`` and
``objects.Container`` use them.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "Capabilities",
    "ExecAction",
    "HTTPGetAction",
    "HTTPHeader",
    "HostAlias",
    "Lifecycle",
    "LifecycleHandler",
    "PodDNSConfig",
    "PodDNSConfigOption",
    "PodSecurityContext",
    "Probe",
    "SecurityContext",
    "SleepAction",
    "Sysctl",
    "TCPSocketAction",
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


class ExecAction(_S):
    command: list[str] = []


class HTTPHeader(_S):
    name: str = ""
    value: str = ""


class HTTPGetAction(_S):
    port: int | str
    path: str = "/"
    scheme: str = "HTTP"
    host: str = ""
    http_headers: list[HTTPHeader] = []


class TCPSocketAction(_S):
    port: int | str
    host: str = ""


class SleepAction(_S):
    seconds: int = 0


class Probe(_S):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


class LifecycleHandler(_S):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


class Lifecycle(_S):
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None
