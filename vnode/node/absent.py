"""The ConfigMaps and Secrets a pod names that do not exist, as the Events virtual-kubelet records.

Every virtual-kubelet-based provider (its pod controller's ``podutils``; ACK's virtual node and
azure-aci among them) records a Warning on the pod for each missing reference: a mandatory one
(``MandatoryConfigMapNotFound``, ``MandatorySecretNotFound``, and ``...KeyNotFound`` for a key)
keeps the pod from starting; an optional one (``OptionalConfigMapNotFound``,
``OptionalSecretNotFound``, ``...KeyNotFound``) is skipped and the pod starts without it. Tools
and virtual-kubelet's own end-to-end suite wait for those reasons, so vnode records them too,
with virtual-kubelet's messages, beside the kubelet's ``Failed`` event and
``CreateContainerConfigError`` state. Pure: the caller fetched the sources (``spec.Sources``).
"""

from __future__ import annotations

from vnode.kube import objects
from vnode.node import events, spec

__all__ = ["mandatory_reason", "optional"]

_KINDS = {"configmap": "ConfigMap", "secret": "Secret"}


def mandatory_reason(missing: spec.Missing) -> str:
    """virtual-kubelet's reason for a missing required reference; "" for one it has none for (a token)."""
    kind = _KINDS.get(missing.kind)
    if kind is None:
        return ""
    return f"Mandatory{kind}{'Key' if missing.key else ''}NotFound"


def _q(text: str) -> str:
    """Go's %q, as virtual-kubelet's messages quote names."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _warning(reason: str, message: str) -> events.Event:
    return events.Event(reason, message, type="Warning")


def _env_ref(env: objects.EnvVar, kind: str, ref: objects.KeySelector, sources: spec.Sources) -> events.Event | None:
    if not ref.optional:
        return None
    store = sources.configmaps if kind == "configmap" else sources.secrets
    data = store.get(ref.name)
    label = _KINDS[kind]
    if data is None:
        return _warning(
            f"Optional{label}NotFound", f"skipping optional envvar {_q(env.name)}: {kind} {_q(ref.name)} not found"
        )
    if ref.key not in data:
        message = f"skipping optional envvar {_q(env.name)}: key {_q(ref.key)} does not exist in {kind} {_q(ref.name)}"
        return _warning(f"Optional{label}KeyNotFound", message)
    return None


def _container(c: objects.Container, sources: spec.Sources) -> list[events.Event | None]:
    found: list[events.Event | None] = []
    for env_from in c.env_from:
        for kind, local in (("configmap", env_from.config_map_ref), ("secret", env_from.secret_ref)):
            store = sources.configmaps if kind == "configmap" else sources.secrets
            if local is not None and local.optional and store.get(local.name) is None:
                found.append(_warning(f"Optional{_KINDS[kind]}NotFound", f"{kind} {_q(local.name)} not found"))
    for env in c.env:
        source = env.value_from
        if source and source.config_map_key_ref:
            found.append(_env_ref(env, "configmap", source.config_map_key_ref, sources))
        if source and source.secret_key_ref:
            found.append(_env_ref(env, "secret", source.secret_key_ref, sources))
    return found


def _volume(volume: objects.Volume, sources: spec.Sources) -> events.Event | None:
    if volume.config_map is not None and volume.config_map.optional:
        name = volume.config_map.name
        if sources.configmaps.get(name) is None:
            return _warning("OptionalConfigMapNotFound", f"volume {_q(volume.name)}: configmap {_q(name)} not found")
    if volume.secret is not None and volume.secret.optional:
        name = volume.secret.secret_name
        if sources.secrets.get(name) is None:
            return _warning("OptionalSecretNotFound", f"volume {_q(volume.name)}: secret {_q(name)} not found")
    return None


def optional(pod: objects.Pod, sources: spec.Sources) -> tuple[events.Event, ...]:
    """One Warning per optional reference of ``pod`` that is missing (the pod starts without it)."""
    found: list[events.Event | None] = []
    for c in [*pod.spec.init_containers, *pod.spec.containers]:
        found += _container(c, sources)
    found += [_volume(v, sources) for v in pod.spec.volumes]
    unique = dict.fromkeys(e for e in found if e is not None)  # in order, each once
    return tuple(unique)
