"""imagePullSecrets → registry credentials: per image's registry, docker config formats, a missing Secret skipped."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest

from vnode import errors, models
from vnode.kube import objects
from vnode.node import registry, spec


def pod(*images: str, secrets: tuple[str, ...] = ("regcred",)) -> objects.Pod:
    body: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
        "spec": {
            "containers": [{"name": f"c{n}", "image": image} for n, image in enumerate(images)],
            "imagePullSecrets": [{"name": name} for name in secrets],
        },
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


def dockerconfig(**auths: dict[str, str]) -> dict[str, bytes]:
    return {".dockerconfigjson": json.dumps({"auths": auths}).encode()}


def test_registry_of_an_image() -> None:
    assert registry.registry_of("nginx") == "docker.io"
    assert registry.registry_of("library/nginx:1") == "docker.io"
    assert registry.registry_of("registry.private.example/team/app:1") == "registry.private.example"
    assert registry.registry_of("localhost:5000/app") == "localhost:5000"
    assert registry.registry_of("index.docker.io/library/nginx") == "docker.io"


def test_one_credential_per_registry_of_the_pods_images() -> None:
    auth = base64.b64encode(b"bob:pw2").decode()
    data = dockerconfig(
        **{
            "https://registry.private.example/v1/": {"username": "alice", "password": "pw"},
            "other.example": {"auth": auth},
            "unused.example": {"username": "x", "password": "y"},
        }
    )
    got = registry.credentials(pod("registry.private.example/a:1", "other.example/b", "nginx"), {"regcred": data})
    assert got == (
        models.RegistryCredential("registry.private.example", "alice", "pw"),
        models.RegistryCredential("other.example", "bob", "pw2"),
    )


def test_a_missing_secret_is_skipped_and_named() -> None:
    p = pod("registry.private.example/a:1")
    assert registry.credentials(p, {"regcred": None}) == ()
    assert registry.missing(p, {"regcred": None}) == ("regcred",)
    assert "regcred" in spec.references(p).secrets
    built = spec.build(p, spec.Sources(secrets={"regcred": None}), spec.Target("c1", "vn-0"))
    assert built.registry_credentials == ()


def test_a_secret_that_is_no_docker_config_is_refused() -> None:
    with pytest.raises(errors.InvalidSpec, match="regcred"):
        registry.credentials(pod("nginx"), {"regcred": {"token": b"x"}})
