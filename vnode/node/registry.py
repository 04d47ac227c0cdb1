"""A pod's ``imagePullSecrets`` as registry credentials, one per registry server its images come from.

Pure: the Secrets (``kubernetes.io/dockerconfigjson``'s ``.dockerconfigjson``, or the older
``.dockercfg``) arrive already fetched. As the kubelet does, a Secret that does not exist is
skipped (the pull is tried without it); an image's registry is the first part of its name when
that looks like a host (has a '.' or a ':', or is ``localhost``), else Docker Hub.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence

from vnode import errors, models
from vnode.kube import objects

__all__ = ["DOCKER_HUB", "credentials", "missing", "registry_of"]

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io", "docker.io"})


def registry_of(image: str) -> str:
    """``registry.example.com:5000/team/app:1`` -> ``registry.example.com:5000``; ``nginx`` -> docker.io."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return DOCKER_HUB if first in _HUB_ALIASES else first
    return DOCKER_HUB


def _server(key: str) -> str:
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _auths(name: str, data: Mapping[str, bytes]) -> dict[str, models.RegistryCredential]:
    raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
    if raw is None:
        raise errors.InvalidSpec(f'imagePullSecrets: Secret "{name}" has no .dockerconfigjson')
    try:
        parsed = json.loads(raw)
        entries = parsed.get("auths", parsed) if ".dockerconfigjson" in data else parsed
        found = {}
        for key, entry in entries.items():
            user, password = entry.get("username", ""), entry.get("password", "")
            if not user and entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            found[_server(key)] = models.RegistryCredential(_server(key), user, password)
        return found
    except (ValueError, AttributeError, TypeError) as exc:
        raise errors.InvalidSpec(f'imagePullSecrets: Secret "{name}" is not a docker config: {exc}') from exc


def credentials(
    pod: objects.Pod, secrets: Mapping[str, Mapping[str, bytes] | None]
) -> tuple[models.RegistryCredential, ...]:
    """One credential per registry the pod's images come from, from the first Secret that has it."""
    known: dict[str, models.RegistryCredential] = {}
    for ref in pod.spec.image_pull_secrets:
        data = secrets.get(ref.name)
        if data is None:  # missing: the kubelet pulls without it
            continue
        for server, credential in _auths(ref.name, data).items():
            known.setdefault(server, credential)
    images: Sequence[str] = [c.image for c in [*pod.spec.init_containers, *pod.spec.containers]]
    wanted = dict.fromkeys(registry_of(image) for image in images)
    return tuple(known[server] for server in wanted if server in known)


def missing(pod: objects.Pod, secrets: Mapping[str, Mapping[str, bytes] | None]) -> tuple[str, ...]:
    """The imagePullSecrets that do not exist (the kubelet warns FailedToRetrieveImagePullSecret)."""
    return tuple(ref.name for ref in pod.spec.image_pull_secrets if secrets.get(ref.name) is None)
