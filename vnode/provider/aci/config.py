"""ACI's settings: the ``ACI_*`` environment variables, the twins of ECI's for Azure users.

Credentials are Azure AD's client-credentials flow (``ACI_TENANT_ID``, ``ACI_CLIENT_ID``,
``ACI_CLIENT_SECRET``: all three) or a ready bearer token (``ACI_TOKEN``), never both.
"""

from __future__ import annotations

import pathlib

import pydantic

from vnode import errors, models
from vnode.provider import profile

__all__ = ["ENV", "FLAGS", "AciSettings", "credentials_named"]


class AciSettings(pydantic.BaseModel):
    model_config = profile.FROZEN

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
    # nvidia.com/gpu the node advertises (None or 0: none), as azure-aci's ACI_QUOTA_GPU
    quota_gpus: int | None = pydantic.Field(default=None, ge=0)

    @pydantic.field_validator("ca_file")
    @classmethod
    def _a_readable_pem_file(cls, path: str) -> str:
        """Checked at start: a CA the daemon cannot read made it crash later, in its first TLS call."""
        if path:
            try:
                text = pathlib.Path(path).read_text(errors="replace")
            except OSError as exc:
                raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
            if "-----BEGIN CERTIFICATE-----" not in text:
                raise ValueError("holds no PEM certificate")
        return path

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


# field -> environment variables (the first one set wins)
ENV: dict[str, tuple[str, ...]] = {
    "region": ("ACI_REGION",),
    "endpoint": ("ACI_ENDPOINT",),
    "ca_file": ("ACI_CA_FILE",),
    "subscription_id": ("ACI_SUBSCRIPTION_ID",),
    "resource_group": ("ACI_RESOURCE_GROUP",),
    "tenant_id": ("ACI_TENANT_ID",),
    "client_id": ("ACI_CLIENT_ID",),
    "client_secret": ("ACI_CLIENT_SECRET",),
    "token": ("ACI_TOKEN",),
    "subnet": ("ACI_SUBNET",),
    "quota_cpu": ("ACI_QUOTA_CPU",),
    "quota_memory_gib": ("ACI_QUOTA_MEMORY",),
    "quota_pods": ("ACI_QUOTA_POD",),
    "quota_gpus": ("ACI_QUOTA_GPU",),
}

FLAGS = {
    "--aci-region": profile.Flag("region", str, "env ACI_REGION"),
    "--aci-endpoint": profile.Flag("endpoint", str, "base URL of the ARM API (env ACI_ENDPOINT)"),
    "--aci-resource-group": profile.Flag("resource_group", str, "env ACI_RESOURCE_GROUP"),
    "--aci-subscription-id": profile.Flag("subscription_id", str, "env ACI_SUBSCRIPTION_ID"),
}


def placement(cloud: AciSettings) -> models.Placement:
    return models.Placement(vswitches=(cloud.subnet,) if cloud.subnet else ())


def quota(cloud: AciSettings) -> models.Quota:
    return models.Quota(
        cpu=cloud.quota_cpu, memory_gib=cloud.quota_memory_gib, pods=cloud.quota_pods, gpus=cloud.quota_gpus
    )


def region(cloud: AciSettings) -> str:
    return cloud.region


def credentials_named(cloud: AciSettings) -> str:
    """The settings the credentials came from: a bearer token, or the client-credentials flow."""
    which = "ACI_TOKEN" if cloud.token else "ACI_TENANT_ID/ACI_CLIENT_ID/ACI_CLIENT_SECRET"
    return f"{which} (for subscription ACI_SUBSCRIPTION_ID={cloud.subscription_id!r})"
