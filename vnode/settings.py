"""The daemon's settings: the field's environment variable names, overridden by flags.

The generic part (node name, cluster, intervals, capacity) is read here; each provider's own
settings (its cloud's region, endpoint, credentials, placement ...) are a model its profile
declares with the environment variable names its users already know, and they land in
:attr:`Settings.cloud`. vnode reads exactly those names, lets a flag override any of them, and
refuses to start on the first invalid one with a single line naming it (``ConfigError``),
rather than failing later on a pod.

A ConfigMap (the profile's ``live_configmap``) carries settings that may change while the
daemon runs (:class:`Profile`); the node package re-reads it and applies it to pods created
after the change, never to running ones.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from typing import Any

import pydantic

from vnode import errors, models
from vnode.provider import profile as provider_profile
from vnode.provider import registry

__all__ = ["ENV", "Profile", "Settings", "load", "profile_from_configmap"]


class _Frozen(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


#: VNODE_NODE_IP=auto: the host's own address (the API server's node and pod proxies refuse loopback).
AUTO_NODE_IP = "auto"


def host_address() -> str:
    """The host's IPv4 address on its default route (a UDP socket's source; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    if not address or ipaddress.ip_address(address).is_loopback or address == "0.0.0.0":
        raise ValueError("node_ip 'auto': the host has no address on a default route; set it to one")
    return address


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class Settings(_Frozen):
    node_name: str
    provider: str = registry.DEFAULT
    cluster_id: str = "vnode"
    kubeconfig: str = ""  # empty: in-cluster service account, else ~/.kube/config
    taint_value: str = ""  # empty: the provider profile's taint
    node_ip: str = "127.0.0.1"
    # The cluster DNS service's IP for pods of dnsPolicy ClusterFirst; empty: kube-system's
    # kube-dns Service, if the daemon can read it (else the kubelet's fallback, dnsPolicy Default).
    cluster_dns: str = ""
    kubelet_port: int = pydantic.Field(default=10250, ge=0, le=65535)
    # The kubelet's --anonymous-auth: callers without credentials are system:anonymous, authorized
    # by SubjectAccessReview (the API server's pod proxy sends none: virtual-kubelet's e2e suite).
    kubelet_anonymous_auth: bool = False
    # Read the pods' Secrets, claims and volumes and request their tokens as the node itself
    # (impersonating system:node:<node_name> in system:nodes), so that the API server's Node
    # authorizer grants exactly what it grants a kubelet: the objects of the pods bound to this
    # node. false: as the daemon's own account, which then needs Secrets get and
    # serviceaccounts/token create for the whole cluster.
    node_identity: bool = True
    http_address: str = "0.0.0.0"
    http_port: int = pydantic.Field(default=10256, ge=0, le=65535)  # /healthz /readyz /metrics
    # The daemon's own pod, as the StatefulSet's downward API gives it: the Lease holder identity
    # (name and UID), the scale-in decision (namespace and name), the drain's deadline (grace).
    pod_name: str = ""
    pod_namespace: str = ""
    pod_uid: str = ""
    termination_grace_seconds: float = pydantic.Field(default=30.0, gt=0)
    status_interval: float = pydantic.Field(default=2.0, gt=0)
    node_status_period: float = pydantic.Field(default=60.0, gt=0)
    lease_duration: int = pydantic.Field(default=40, gt=0)
    lease_renew_interval: float = pydantic.Field(default=10.0, gt=0)
    orphan_interval: float = pydantic.Field(default=60.0, gt=0)
    # Seconds between reads of each ConfigMap and Secret the node's pods mount as a volume (a change
    # reaches the instances' files within this): read by name as the node, never listed or watched.
    secret_refresh_interval: float = pydantic.Field(default=60.0, gt=0)
    workers: int = pydantic.Field(default=32, gt=0)
    capacity_cpu: float = pydantic.Field(default=10000, gt=0)
    capacity_memory_gib: float = pydantic.Field(default=4096, gt=0)
    capacity_pods: int = pydantic.Field(default=5000, gt=0)
    profile_configmap: str = ""  # empty: the provider profile's live_configmap
    #: The provider's own settings: an instance of its profile's settings model.
    cloud: pydantic.BaseModel = provider_profile.NO_SETTINGS

    @pydantic.model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        """Fill what the provider's profile decides: its settings model (defaults, or from a dict)
        and the live ConfigMap's name."""
        if not isinstance(data, dict):
            return data
        found = registry.profile_of(str(data.get("provider") or registry.DEFAULT))
        cloud = data.get("cloud")
        if not isinstance(cloud, found.settings):
            data = {**data, "cloud": found.settings.model_validate(cloud or {})}
        if not data.get("profile_configmap"):
            data = {**data, "profile_configmap": found.live_configmap}
        return data

    @pydantic.field_validator("node_name")
    @classmethod
    def _valid_node_name(cls, value: str) -> str:
        if not value or len(value) > 253 or not _NAME.match(value):
            raise ValueError("must be a DNS subdomain (lower-case letters, digits, '-', '.')")
        return value

    @pydantic.field_validator("node_ip")
    @classmethod
    def _node_ip(cls, value: str) -> str:
        return host_address() if value == AUTO_NODE_IP else value

    @property
    def profile(self) -> provider_profile.Profile:
        """What the provider declares about its cloud (sizes, limits, prices, names ...)."""
        return registry.profile_of(self.provider)

    @property
    def taint(self) -> str:
        return self.taint_value or self.profile.taint or self.provider

    @property
    def region(self) -> str:
        return self.profile.region(self.cloud)

    @property
    def placement(self) -> models.Placement:
        return self.profile.placement(self.cloud)

    @property
    def quota_cpu(self) -> float | None:
        return self.profile.quota(self.cloud).cpu

    @property
    def quota_memory_gib(self) -> float | None:
        return self.profile.quota(self.cloud).memory_gib

    @property
    def quota_pods(self) -> int | None:
        return self.profile.quota(self.cloud).pods

    @property
    def gpu_capacity(self) -> int:
        """The ``nvidia.com/gpu`` the node advertises: the quota setting's, else the profile's."""
        gpus = self.profile.quota(self.cloud).gpus
        return self.profile.gpu_capacity if gpus is None else gpus


# setting path -> environment variable. The first one found wins for node_name. A provider's
# own settings have theirs in its profile.
ENV: dict[str, tuple[str, ...]] = {
    "node_name": ("VNODE_NODE_NAME", "POD_NAME"),
    "provider": ("VNODE_PROVIDER",),
    "cluster_id": ("VNODE_CLUSTER_ID",),
    "kubeconfig": ("KUBECONFIG",),
    "taint_value": ("VNODE_TAINT",),
    "node_ip": ("VNODE_NODE_IP", "POD_IP"),
    "cluster_dns": ("VNODE_CLUSTER_DNS",),
    "pod_name": ("POD_NAME",),
    "pod_namespace": ("POD_NAMESPACE",),
    "pod_uid": ("POD_UID",),
    "termination_grace_seconds": ("VNODE_TERMINATION_GRACE_SECONDS",),
    "kubelet_port": ("KUBELET_PORT",),
    "kubelet_anonymous_auth": ("VNODE_KUBELET_ANONYMOUS_AUTH",),
    "node_identity": ("VNODE_NODE_IDENTITY",),
    "http_port": ("VNODE_HTTP_PORT",),
}


def _name_of(path: str, from_flag: set[str], found: provider_profile.Profile) -> str:
    if path in from_flag:
        return "--" + path.split(".")[-1].replace("_", "-")
    if path.startswith("cloud."):
        field = path.removeprefix("cloud.")
        flag = next((name for name, f in found.flags.items() if f.field == field), "")
        if f"{found.name}.{field}" in from_flag and flag:
            return flag
        names = found.env.get(field)
        return names[0] if names else f"{found.name}.{field}"
    names = ENV.get(path)
    return names[0] if names else path


def env_names(path: str, found: provider_profile.Profile) -> tuple[str, ...]:
    """The environment variables of a generic setting, the provider's own names for it last."""
    return (*ENV.get(path, ()), *found.env_aliases.get(path, ()))


def load(environ: Mapping[str, str], flags: Mapping[str, Any] | None = None) -> Settings:
    """Settings from ``environ`` with ``flags`` (setting path -> value, ``None`` = not given) on top.

    A flag's path ``<provider>.<field>`` sets a field of that provider's own settings (and is
    ignored when another provider runs). Raises ``ConfigError`` naming the first invalid
    setting by the name the user gave it.
    """
    given = {path: value for path, value in (flags or {}).items() if value is not None}
    name = given.get("provider") or next((environ[n] for n in ENV["provider"] if environ.get(n, "") != ""), "")
    found = registry.profile_of(str(name or registry.DEFAULT))
    tree: dict[str, Any] = {}
    from_flag: set[str] = set()
    for path in ENV:
        for name in env_names(path, found):
            if environ.get(name, "") != "":
                _put(tree, path, environ[name])
                break
    cloud: dict[str, Any] = {}
    for field, names in found.env.items():
        value = next((environ[name] for name in names if environ.get(name, "") != ""), None)
        if value is not None:
            cloud[field] = value
    for path, value in given.items():
        head, _, field = path.partition(".")
        if field and head == found.name:
            cloud[field] = value
            from_flag.add(path)
        elif not field:
            tree[path] = value
            from_flag.add(path)
    if "node_name" not in tree:
        raise errors.ConfigError("node name: set --node-name, VNODE_NODE_NAME or POD_NAME")
    try:
        tree["cloud"] = found.settings.model_validate(cloud)
        return Settings.model_validate(tree)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        if exc.title == found.settings.__name__:
            path = f"cloud.{path}"
        value = first.get("input")
        raise errors.ConfigError(f"{_name_of(path, from_flag, found)}={value!r}: {first['msg']}") from exc


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


class Profile(_Frozen):
    """The live part of the configuration, from the provider's ConfigMap (``--profile-configmap``).

    Empty fields mean "as the daemon's settings say". Applied to pods created after a change.
    """

    vswitches: tuple[str, ...] = ()
    security_group: str = ""
    zones: tuple[str, ...] = ()
    schedule_strategy: str = ""
    default_cpu: float | None = pydantic.Field(default=None, gt=0)
    default_memory_gib: float | None = pydantic.Field(default=None, gt=0)

    _split_lists = pydantic.field_validator("vswitches", "zones", mode="before")(classmethod(lambda cls, v: _split(v)))


# ConfigMap key -> Profile field (the keys the field's own profile ConfigMap uses, where it has one).
PROFILE_KEYS = {
    "vSwitchIds": "vswitches",
    "securityGroupId": "security_group",
    "zoneIds": "zones",
    "scheduleStrategy": "schedule_strategy",
    "defaultCpu": "default_cpu",
    "defaultMemory": "default_memory_gib",
}


def profile_from_configmap(data: Mapping[str, str]) -> Profile:
    """The profile a ConfigMap's data describes; ``ConfigError`` naming the bad key if invalid."""
    fields = {PROFILE_KEYS[key]: value for key, value in data.items() if key in PROFILE_KEYS}
    try:
        return Profile.model_validate(fields)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        key = next((k for k, v in PROFILE_KEYS.items() if v == field), field)
        raise errors.ConfigError(f"profile ConfigMap {key}={first.get('input')!r}: {first['msg']}") from exc
