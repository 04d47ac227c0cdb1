"""ECI's settings: the field's ``ECI_*`` environment variables, as ECI users know them.

``ECI_VSWITCH`` takes several vSwitches, comma-separated, in failover order; the AccessKey
pair comes from ``ECI_ACCESS_KEY``/``ECI_SECRET_KEY`` or from the Secret that
``ECI_CREDENTIALS_SECRET`` names (``access-key-id``/``access-key-secret``, read at start).
With neither, the Secret ack-virtual-node's install guide has users create,
``kube-system/alibaba-addon-secret`` (same keys), is used when it exists.
"""

from __future__ import annotations

import pydantic

from vnode import errors, models
from vnode.provider import profile

__all__ = ["ADDON_SECRET", "ENV", "EciSettings", "credentials_named", "load_credentials"]

#: The Secret ack-virtual-node reads by itself; used when no other credentials are given.
ADDON_SECRET = "kube-system/alibaba-addon-secret"


class EciSettings(pydantic.BaseModel):
    model_config = profile.FROZEN

    region: str = "cn-hangzhou"
    endpoint: str = ""  # host:port of the ECI API (the simulator's in tests); empty: the region's
    # host:port of the VPC API (which EIP an instance holds); empty: the ECI endpoint if one is set
    # (the simulator serves both), else the region's vpc.<region>.aliyuncs.com
    vpc_endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    credentials_secret: str = ""  # "namespace/name" of a Secret with access-key-id / access-key-secret
    vswitches: tuple[str, ...] = ()
    security_group: str = ""
    kube_proxy: bool = True
    quota_cpu: float | None = pydantic.Field(default=None, gt=0)
    quota_memory_gib: float | None = pydantic.Field(default=None, gt=0)
    quota_pods: int | None = pydantic.Field(default=None, gt=0)
    quota_gpus: int | None = pydantic.Field(default=None, ge=0)  # nvidia.com/gpu advertised (0: none)
    # The account's create/delete token bucket (ECI's default: burst 100, 20/s), kept client-side
    # so vnode waits instead of collecting Throttling.User answers; rate 0 turns it off.
    create_burst: float = pydantic.Field(default=100.0, gt=0)
    create_rate: float = pydantic.Field(default=20.0, ge=0)
    # Seconds between full listings of a node's instances; in between, each listing asks only for
    # what changed (SinceSecond) and for instances being deleted. 0: every listing is a full one.
    full_list_interval: float = pydantic.Field(default=30.0, ge=0)

    _split_vswitches = pydantic.field_validator("vswitches", mode="before")(
        classmethod(lambda cls, v: profile.split_list(v))
    )


# field -> environment variables (the first one set wins)
ENV: dict[str, tuple[str, ...]] = {
    "region": ("ECI_REGION",),
    "endpoint": ("ECI_ENDPOINT",),
    "vpc_endpoint": ("ECI_VPC_ENDPOINT",),
    "access_key": ("ECI_ACCESS_KEY",),
    "secret_key": ("ECI_SECRET_KEY",),
    "credentials_secret": ("ECI_CREDENTIALS_SECRET",),
    "vswitches": ("ECI_VSWITCH",),
    "security_group": ("ECI_SECURITY_GROUP",),
    "kube_proxy": ("ECI_KUBE_PROXY",),
    "quota_cpu": ("ECI_QUOTA_CPU",),
    "quota_memory_gib": ("ECI_QUOTA_MEMORY",),
    "quota_pods": ("ECI_QUOTA_POD",),
    "quota_gpus": ("ECI_QUOTA_GPU",),
    "create_burst": ("ECI_CREATE_BURST",),
    "create_rate": ("ECI_CREATE_RATE",),
    "full_list_interval": ("ECI_FULL_LIST_INTERVAL",),
}

FLAGS = {
    "--eci-region": profile.Flag("region", str, "env ECI_REGION"),
    "--eci-endpoint": profile.Flag("endpoint", str, "host:port of the ECI API (env ECI_ENDPOINT)"),
    "--eci-vswitch": profile.Flag(
        "vswitches", str, "vSwitch IDs, comma-separated, in failover order (env ECI_VSWITCH)"
    ),
    "--eci-security-group": profile.Flag("security_group", str, "env ECI_SECURITY_GROUP"),
    "--eci-credentials-secret": profile.Flag(
        "credentials_secret",
        str,
        "namespace/name of a Secret with access-key-id and access-key-secret (env ECI_CREDENTIALS_SECRET)",
    ),
}


async def load_credentials(cloud: EciSettings, read_secret: profile.ReadSecret) -> EciSettings:
    """Fill the AccessKey pair from the Secret named by ``ECI_CREDENTIALS_SECRET``, if any; with no
    credentials given at all, from ``kube-system/alibaba-addon-secret`` when it exists."""
    if cloud.access_key and cloud.secret_key:
        return cloud
    named = cloud.credentials_secret
    ref = named or ADDON_SECRET
    setting = "ECI_CREDENTIALS_SECRET" if named else "the ACK add-on Secret"
    if not named and (cloud.access_key or cloud.secret_key):
        return cloud  # half a pair given: the provider names what is missing
    namespace, _, name = ref.partition("/")
    try:
        data = await read_secret(namespace, name)
    except (errors.NotFound, errors.Forbidden):
        if not named:
            return cloud  # no add-on Secret (or no right to read it): the provider asks for keys
        raise errors.ConfigError(f"ECI_CREDENTIALS_SECRET={ref!r}: no such Secret, or no right to read it") from None
    except errors.ApiError as exc:
        raise errors.ConfigError(f"{setting} {ref!r}: cannot read it ({exc.message})") from exc
    try:
        key_id, key_secret = data["access-key-id"].decode(), data["access-key-secret"].decode()
    except KeyError as exc:
        raise errors.ConfigError(f"{setting} {ref!r}: no key {exc.args[0]}") from exc
    return cloud.model_copy(update={"access_key": key_id, "secret_key": key_secret, "credentials_secret": ref})


def credentials_named(cloud: EciSettings) -> str:
    """Where the AccessKey pair came from: the Secret it was read from, or the two variables."""
    if cloud.credentials_secret:
        return f"the AccessKey pair in Secret {cloud.credentials_secret} (ECI_CREDENTIALS_SECRET)"
    return "ECI_ACCESS_KEY/ECI_SECRET_KEY"


def placement(cloud: EciSettings) -> models.Placement:
    return models.Placement(vswitches=cloud.vswitches, security_group=cloud.security_group)


def quota(cloud: EciSettings) -> models.Quota:
    return models.Quota(
        cpu=cloud.quota_cpu, memory_gib=cloud.quota_memory_gib, pods=cloud.quota_pods, gpus=cloud.quota_gpus
    )


def region(cloud: EciSettings) -> str:
    return cloud.region
