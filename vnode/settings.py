"""The daemon's settings: the field's environment variable names, overridden by flags.

ECI users already know ``ECI_REGION``, ``ECI_VSWITCH`` (several, comma-separated),
``ECI_SECURITY_GROUP``, ``ECI_KUBE_PROXY``, ``ECI_QUOTA_CPU`` ...; ACI users the ``ACI_*``
twins. vnode reads exactly those names, lets a flag override any of them, and refuses to
start on the first invalid one with a single line naming it (``ConfigError``), rather than
failing later on a pod.

The ConfigMap ``kube-system/eci-profile`` carries settings that may change while the daemon
runs (:class:`Profile`); the node package re-reads it and applies it to pods created after
the change, never to running ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pydantic

from vnode import errors

__all__ = ["AciSettings", "EciSettings", "Profile", "Settings", "load", "profile_from_configmap"]


class _Frozen(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class EciSettings(_Frozen):
    region: str = "cn-hangzhou"
    endpoint: str = ""  # host:port of the ECI API (the simulator's in tests); empty: the region's
    access_key: str = ""
    secret_key: str = ""
    credentials_secret: str = ""  # "namespace/name" of a Secret with access-key-id / access-key-secret
    vswitches: tuple[str, ...] = ()
    security_group: str = ""
    kube_proxy: bool = True
    quota_cpu: float | None = pydantic.Field(default=None, gt=0)
    quota_memory_gib: float | None = pydantic.Field(default=None, gt=0)
    quota_pods: int | None = pydantic.Field(default=None, gt=0)
    # The account's create/delete token bucket (ECI's default: burst 100, 20/s), kept client-side
    # so vnode waits instead of collecting Throttling.User answers; rate 0 turns it off.
    create_burst: float = pydantic.Field(default=100.0, gt=0)
    create_rate: float = pydantic.Field(default=20.0, ge=0)
    # Seconds between full listings of a node's instances; in between, each listing asks only for
    # what changed (SinceSecond) and for instances being deleted. 0: every listing is a full one.
    full_list_interval: float = pydantic.Field(default=30.0, ge=0)

    _split_vswitches = pydantic.field_validator("vswitches", mode="before")(classmethod(lambda cls, v: _split(v)))


class AciSettings(_Frozen):
    region: str = "westus2"
    endpoint: str = ""  # base URL of the ARM API (https); empty: management.azure.com
    ca_file: str = ""
    subscription_id: str = ""
    resource_group: str = ""
    # Credentials: Azure AD's client-credentials flow (all three), or a ready bearer token
    # (the simulator's cloud.json aci.token), never both.
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""
    token: str = ""
    subnet: str = ""
    quota_cpu: float | None = pydantic.Field(default=None, gt=0)
    quota_memory_gib: float | None = pydantic.Field(default=None, gt=0)
    quota_pods: int | None = pydantic.Field(default=None, gt=0)

    @pydantic.model_validator(mode="after")
    def _one_kind_of_credentials(self) -> AciSettings:
        # ConfigError rather than ValueError: pydantic lets it through as it is, so the line names
        # the variables (and never echoes the secrets, as a ValidationError's input would).
        client = {
            "ACI_TENANT_ID": self.tenant_id,
            "ACI_CLIENT_ID": self.client_id,
            "ACI_CLIENT_SECRET": self.client_secret,
        }
        given = [name for name, value in client.items() if value]
        if self.token and given:
            raise errors.ConfigError(
                f"ACI_TOKEN and {', '.join(given)}: set a bearer token or client credentials, not both"
            )
        if given and len(given) < len(client):
            missing = [name for name in client if name not in given]
            raise errors.ConfigError(
                f"{', '.join(given)} without {', '.join(missing)}: the client-credentials flow needs all three "
                "(a ready bearer token goes in ACI_TOKEN)"
            )
        return self


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class Settings(_Frozen):
    node_name: str
    provider: str = "eci"
    cluster_id: str = "vnode"
    kubeconfig: str = ""  # empty: in-cluster service account, else ~/.kube/config
    taint_value: str = ""  # empty: alibabacloud for eci, azure for aci, else the provider's name
    node_ip: str = "127.0.0.1"
    kubelet_port: int = pydantic.Field(default=10250, ge=0, le=65535)
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
    workers: int = pydantic.Field(default=32, gt=0)
    capacity_cpu: float = pydantic.Field(default=10000, gt=0)
    capacity_memory_gib: float = pydantic.Field(default=4096, gt=0)
    capacity_pods: int = pydantic.Field(default=5000, gt=0)
    profile_configmap: str = "kube-system/eci-profile"
    eci: EciSettings = EciSettings()
    aci: AciSettings = AciSettings()

    @pydantic.field_validator("node_name")
    @classmethod
    def _valid_node_name(cls, value: str) -> str:
        if not value or len(value) > 253 or not _NAME.match(value):
            raise ValueError("must be a DNS subdomain (lower-case letters, digits, '-', '.')")
        return value

    @property
    def taint(self) -> str:
        return self.taint_value or {"eci": "alibabacloud", "aci": "azure"}.get(self.provider, self.provider)

    @property
    def quota_cpu(self) -> float | None:
        return self.aci.quota_cpu if self.provider == "aci" else self.eci.quota_cpu

    @property
    def quota_memory_gib(self) -> float | None:
        return self.aci.quota_memory_gib if self.provider == "aci" else self.eci.quota_memory_gib

    @property
    def quota_pods(self) -> int | None:
        return self.aci.quota_pods if self.provider == "aci" else self.eci.quota_pods


# setting path -> environment variable. The first one found wins for node_name.
ENV: dict[str, tuple[str, ...]] = {
    "node_name": ("VNODE_NODE_NAME", "POD_NAME"),
    "provider": ("VNODE_PROVIDER",),
    "cluster_id": ("VNODE_CLUSTER_ID", "ECI_CLUSTER_ID"),
    "kubeconfig": ("KUBECONFIG",),
    "taint_value": ("VNODE_TAINT",),
    "node_ip": ("VNODE_NODE_IP", "POD_IP"),
    "pod_name": ("POD_NAME",),
    "pod_namespace": ("POD_NAMESPACE",),
    "pod_uid": ("POD_UID",),
    "termination_grace_seconds": ("VNODE_TERMINATION_GRACE_SECONDS",),
    "kubelet_port": ("KUBELET_PORT",),
    "http_port": ("VNODE_HTTP_PORT",),
    "eci.region": ("ECI_REGION",),
    "eci.endpoint": ("ECI_ENDPOINT",),
    "eci.access_key": ("ECI_ACCESS_KEY",),
    "eci.secret_key": ("ECI_SECRET_KEY",),
    "eci.credentials_secret": ("ECI_CREDENTIALS_SECRET",),
    "eci.vswitches": ("ECI_VSWITCH",),
    "eci.security_group": ("ECI_SECURITY_GROUP",),
    "eci.kube_proxy": ("ECI_KUBE_PROXY",),
    "eci.quota_cpu": ("ECI_QUOTA_CPU",),
    "eci.quota_memory_gib": ("ECI_QUOTA_MEMORY",),
    "eci.quota_pods": ("ECI_QUOTA_POD",),
    "eci.create_burst": ("ECI_CREATE_BURST",),
    "eci.create_rate": ("ECI_CREATE_RATE",),
    "eci.full_list_interval": ("ECI_FULL_LIST_INTERVAL",),
    "aci.region": ("ACI_REGION",),
    "aci.endpoint": ("ACI_ENDPOINT",),
    "aci.ca_file": ("ACI_CA_FILE",),
    "aci.subscription_id": ("ACI_SUBSCRIPTION_ID",),
    "aci.resource_group": ("ACI_RESOURCE_GROUP",),
    "aci.tenant_id": ("ACI_TENANT_ID",),
    "aci.client_id": ("ACI_CLIENT_ID",),
    "aci.client_secret": ("ACI_CLIENT_SECRET",),
    "aci.token": ("ACI_TOKEN",),
    "aci.subnet": ("ACI_SUBNET",),
    "aci.quota_cpu": ("ACI_QUOTA_CPU",),
    "aci.quota_memory_gib": ("ACI_QUOTA_MEMORY",),
    "aci.quota_pods": ("ACI_QUOTA_POD",),
}


def _name_of(path: str, from_flag: set[str]) -> str:
    if path in from_flag:
        return "--" + path.split(".")[-1].replace("_", "-")
    names = ENV.get(path)
    return names[0] if names else path


def load(environ: Mapping[str, str], flags: Mapping[str, Any] | None = None) -> Settings:
    """Settings from ``environ`` with ``flags`` (setting path -> value, ``None`` = not given) on top.

    Raises ``ConfigError`` naming the first invalid setting by the name the user gave it.
    """
    tree: dict[str, Any] = {"eci": {}, "aci": {}}
    from_flag: set[str] = set()
    for path, names in ENV.items():
        for name in names:
            if environ.get(name, "") != "":
                _put(tree, path, environ[name])
                break
    for path, value in (flags or {}).items():
        if value is not None:
            _put(tree, path, value)
            from_flag.add(path)
    if "node_name" not in tree:
        raise errors.ConfigError("node name: set --node-name, VNODE_NODE_NAME or POD_NAME")
    try:
        return Settings.model_validate(tree)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        value = first.get("input")
        raise errors.ConfigError(f"{_name_of(path, from_flag)}={value!r}: {first['msg']}") from exc


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


class Profile(_Frozen):
    """The live part of the configuration, from the ConfigMap ``kube-system/eci-profile``.

    Empty fields mean "as the daemon's settings say". Applied to pods created after a change.
    """

    vswitches: tuple[str, ...] = ()
    security_group: str = ""
    zones: tuple[str, ...] = ()
    schedule_strategy: str = ""
    default_cpu: float | None = pydantic.Field(default=None, gt=0)
    default_memory_gib: float | None = pydantic.Field(default=None, gt=0)

    _split_lists = pydantic.field_validator("vswitches", "zones", mode="before")(classmethod(lambda cls, v: _split(v)))


# ConfigMap key -> Profile field (the keys ECI's own profile uses, where it has one).
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
        raise errors.ConfigError(f"eci-profile {key}={first.get('input')!r}: {first['msg']}") from exc
