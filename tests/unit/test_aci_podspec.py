"""The pod-spec fields ACI maps, as the container group's PUT body (the ARM JSON the official SDK sends)."""

from __future__ import annotations

from typing import Any

from vnode import models
from vnode.provider.aci import mapping


def _spec(**fields: Any) -> models.InstanceSpec:
    return models.InstanceSpec(
        name="web",
        client_token="uid-web",
        containers=(models.ContainerSpec(name="app", image="registry.private.example/team/nginx:1"),),
        cpu=1,
        memory_gib=2,
        **fields,
    )


def _props(spec: models.InstanceSpec) -> dict[str, Any]:
    props: dict[str, Any] = mapping.group_body(spec, location="westeurope")["properties"]
    return props


def test_registry_credentials_are_image_registry_credentials() -> None:
    logins = (
        models.RegistryCredential("registry.private.example", "robot", "s3cret"),
        models.RegistryCredential("docker.io", "me", "hub-token"),
    )
    assert _props(_spec(registry_credentials=logins))["imageRegistryCredentials"] == [
        {"server": "registry.private.example", "username": "robot", "password": "s3cret"},
        {"server": "index.docker.io", "username": "me", "password": "hub-token"},
    ]


def test_without_credentials_the_body_has_none() -> None:
    assert "imageRegistryCredentials" not in _props(_spec())
