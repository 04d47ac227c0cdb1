"""From a pod to an instance spec: env resolved, volumes turned into files, size rounded, tags set.

The cloud runs no kubelet, so everything a kubelet would resolve on the node is resolved here,
once, at creation: env values from ConfigMaps, Secrets, the downward API and the container's
resources; ``$(VAR)`` references; configMap/secret/projected volumes as file contents (which
``refresh`` and ``renewal`` rebuild with :func:`volume` when their objects change or their
service-account token is renewed). The
one exception is ``status.podIP``: the cloud allocates the IP when it creates the instance,
so that env var goes out as a field reference (``models.EnvVar.field_path``) that the cloud
or the provider fills in. This module does no I/O: :func:`references` says which ConfigMaps,
Secrets and service-account tokens the pod needs, the caller fetches them into
:class:`Sources`, and :func:`build` is a pure function of the pod and those sources. A
required source that does not exist yet raises :class:`Missing` (the pod waits and starts as
soon as it appears); what the cloud can never run raises ``errors.InvalidSpec`` (the pod
fails fast with that reason).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence

from vnode import errors, models, settings
from vnode.kube import objects
from vnode.node import claims, dns, downward, handlers, pending, registry, resources, security
from vnode.provider import profile as provider_profile

__all__ = ["Missing", "Sources", "Target", "build", "references"]

STARTUP_PROBE = "containers.startupProbe"  # its row in vnode/node/fields.py
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
# Fields only the cloud knows, once it has allocated the instance: left for it to fill in.
# An instance is single-stack, so status.podIPs (the IPs comma-joined) is its one IP.


class Missing(Exception):
    """A required ConfigMap, Secret or key does not exist (yet)."""

    def __init__(self, kind: str, name: str, key: str = "") -> None:
        self.kind, self.name, self.key = kind, name, key
        what = f'{kind} "{name}"' + (f' key "{key}"' if key else "")
        super().__init__(f"{what} not found")


class Unreadable(Missing):
    """A Secret the pod needs that the daemon may not read (it waits, as for a missing one)."""

    def __init__(self, kind: str, name: str, why: str) -> None:
        super().__init__(kind, name)
        Exception.__init__(self, f'{kind} "{name}" cannot be read: {why}')


@dataclasses.dataclass(frozen=True)
class Sources:
    """What the pod refers to, fetched by the caller. A name mapped to ``None`` does not exist."""

    configmaps: Mapping[str, Mapping[str, bytes] | None] = dataclasses.field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, bytes] | None] = dataclasses.field(default_factory=dict)
    # (audience, expiration seconds) -> token, from the TokenRequest API
    tokens: Mapping[tuple[str, int], str] = dataclasses.field(default_factory=dict)
    #: claim name -> the claim and its bound volume (None: no such claim)
    claims: Mapping[str, claims.Claim | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the instance goes and what it is tagged with: the node's side of the spec."""

    cluster_id: str
    node_name: str
    node_ip: str = ""
    placement: models.Placement = dataclasses.field(default_factory=models.Placement)
    default_size: resources.Size = resources.DEFAULT
    #: The cluster DNS service's IP (kube-dns/CoreDNS) for dnsPolicy ClusterFirst; empty: none known.
    cluster_dns: str = ""
    #: The provider's rules: its limits, specs annotation and size rounding.
    profile: provider_profile.Profile = provider_profile.NEUTRAL


@dataclasses.dataclass(frozen=True)
class Refs:
    configmaps: frozenset[str]
    secrets: frozenset[str]
    tokens: frozenset[tuple[str, int]]
    claims: frozenset[str] = frozenset()


def configmap_data(cm: objects.ConfigMap) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in cm.data.items()}
    data.update({k: base64.b64decode(v) for k, v in cm.binary_data.items()})
    return data


def secret_data(secret: objects.Secret) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret.data.items()}


def references(pod: objects.Pod) -> Refs:
    """The ConfigMaps, Secrets and tokens ``pod`` needs resolved before it can be created."""
    cms: set[str] = set()
    secrets: set[str] = set()
    tokens: set[tuple[str, int]] = set()
    claimed = {v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim}
    for c in [*pod.spec.init_containers, *pod.spec.containers]:
        for env in c.env:
            source = env.value_from
            if source and source.config_map_key_ref:
                cms.add(source.config_map_key_ref.name)
            if source and source.secret_key_ref:
                secrets.add(source.secret_key_ref.name)
        for env_from in c.env_from:
            if env_from.config_map_ref:
                cms.add(env_from.config_map_ref.name)
            if env_from.secret_ref:
                secrets.add(env_from.secret_ref.name)
    secrets.update(ref.name for ref in pod.spec.image_pull_secrets)
    for volume in pod.spec.volumes:
        if volume.config_map:
            cms.add(volume.config_map.name)
        if volume.secret:
            secrets.add(volume.secret.secret_name)
        if volume.csi and claims.inline_secret(volume):
            secrets.add(claims.inline_secret(volume))
        for projection in volume.projected.sources if volume.projected else []:
            if projection.config_map:
                cms.add(projection.config_map.name)
            if projection.secret:
                secrets.add(projection.secret.name)
            if projection.service_account_token:
                sat = projection.service_account_token
                tokens.add((sat.audience, sat.expiration_seconds))
    return Refs(frozenset(cms), frozenset(secrets), frozenset(tokens), frozenset(claimed))


def _lookup(
    store: Mapping[str, Mapping[str, bytes] | None], kind: str, name: str, key: str | None, optional: bool
) -> bytes | None:
    data = store.get(name)
    if data is None:
        if optional:
            return None
        raise Missing(kind, name)
    if key is None:
        return b""
    if key not in data:
        if optional:
            return None
        raise Missing(kind, name, key)
    return data[key]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, others stay."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(sub, text)


def _env(
    pod: objects.Pod, container: objects.Container, sources: Sources, target: Target, size: resources.Size
) -> tuple[models.EnvVar, ...]:
    # ``resolved`` holds the values known now (what ``$(VAR)`` expands to); ``cloud`` the names
    # the cloud fills in. A ``$(VAR)`` naming one of those stays as written, as Kubernetes
    # leaves an undefined reference.
    resolved: dict[str, str] = {}
    cloud: dict[str, str] = {}
    for env_from in container.env_from:
        if env_from.config_map_ref:
            local = env_from.config_map_ref
            if _lookup(sources.configmaps, "configmap", local.name, None, bool(local.optional)) is not None:
                for key, value in (sources.configmaps.get(local.name) or {}).items():
                    if _ENV_NAME.match(env_from.prefix + key):
                        resolved[env_from.prefix + key] = value.decode(errors="replace")
        if env_from.secret_ref:
            local = env_from.secret_ref
            if _lookup(sources.secrets, "secret", local.name, None, bool(local.optional)) is not None:
                for key, value in (sources.secrets.get(local.name) or {}).items():
                    if _ENV_NAME.match(env_from.prefix + key):
                        resolved[env_from.prefix + key] = value.decode(errors="replace")
    for env in container.env:
        source = env.value_from
        cloud.pop(env.name, None)
        if source is None:
            resolved[env.name] = expand(env.value or "", resolved)
        elif source.field_ref and source.field_ref.field_path in downward.CLOUD_FIELDS:
            resolved.pop(env.name, None)
            cloud[env.name] = downward.CLOUD_FIELDS[source.field_ref.field_path]
        elif source.config_map_key_ref:
            ref = source.config_map_key_ref
            raw = _lookup(sources.configmaps, "configmap", ref.name, ref.key, bool(ref.optional))
            if raw is not None:
                resolved[env.name] = raw.decode(errors="replace")
        elif source.secret_key_ref:
            ref = source.secret_key_ref
            raw = _lookup(sources.secrets, "secret", ref.name, ref.key, bool(ref.optional))
            if raw is not None:
                resolved[env.name] = raw.decode(errors="replace")
        elif source.field_ref:
            resolved[env.name] = downward.field(pod, source.field_ref.field_path, target)
        elif source.resource_field_ref:
            resolved[env.name] = downward.resource_field(pod, source.resource_field_ref, container.name, size)
    return (
        *(models.EnvVar(k, v) for k, v in resolved.items()),
        *(models.EnvVar(k, field_path=path) for k, path in cloud.items()),
    )


def _container(
    pod: objects.Pod, c: objects.Container, sources: Sources, target: Target, size: resources.Size
) -> models.ContainerSpec:
    if not c.image:
        raise errors.InvalidSpec(f"container {c.name}: no image")
    env = _env(pod, c, sources, target, size)
    env_map = {e.name: e.value for e in env if not e.field_path}
    own = resources.container_size(c)
    context = security.effective(
        pod, c, check_non_root="containers.securityContext" not in target.profile.ignored_fields
    )
    liveness, readiness = handlers.probe(c.liveness_probe, c), handlers.probe(c.readiness_probe, c)
    startup = handlers.probe(c.startup_probe, c)
    if STARTUP_PROBE not in target.profile.pod_fields:  # no cloud API has one: folded, with the kubelet's effect
        (liveness, readiness), startup = handlers.fold_startup(liveness, readiness, startup), None
    return models.ContainerSpec(
        name=c.name,
        image=c.image,
        command=tuple(expand(part, env_map) for part in c.command),
        args=tuple(expand(part, env_map) for part in c.args),
        env=env,
        ports=tuple(models.Port(p.container_port, p.protocol, p.name) for p in c.ports),
        working_dir=c.working_dir,
        volume_mounts=tuple(models.VolumeMount(m.name, m.mount_path, m.read_only, m.sub_path) for m in c.volume_mounts),
        cpu=own.cpu,
        memory_gib=own.memory_gib,
        image_pull_policy=c.image_pull_policy or "IfNotPresent",
        liveness_probe=liveness,
        readiness_probe=readiness,
        startup_probe=startup,
        stdin=c.stdin,
        tty=c.tty,
        run_as_user=context.run_as_user,
        run_as_group=context.run_as_group,
        capabilities_add=context.capabilities_add,
        capabilities_drop=context.capabilities_drop,
        read_only_root_filesystem=context.read_only_root_filesystem,
        allow_privilege_escalation=context.allow_privilege_escalation,
        gpus=resources.container_gpus(c),
        post_start=handlers.handler(c.lifecycle.post_start if c.lifecycle else None, c, "postStart"),
        pre_stop=handlers.handler(c.lifecycle.pre_stop if c.lifecycle else None, c, "preStop"),
        termination_message_path=c.termination_message_path or "/dev/termination-log",
        termination_message_policy=c.termination_message_policy or "File",
    )


def _items(
    data: Mapping[str, bytes] | None,
    items: list[objects.KeyToPath],
    kind: str,
    name: str,
    optional: bool,
    mode: int | None,
) -> list[models.KeyToPath]:
    if data is None:
        if optional:
            return []
        raise Missing(kind, name)
    if not items:
        return [models.KeyToPath(key, value, mode) for key, value in sorted(data.items())]
    files = []
    for item in items:
        if item.key not in data:
            if optional:
                continue
            raise Missing(kind, name, item.key)
        files.append(models.KeyToPath(item.path, data[item.key], item.mode if item.mode is not None else mode))
    return files


_MOUNTED = "those mounted are emptyDir, configMap, secret, projected, downwardAPI and persistentVolumeClaim"
_UNSUPPORTED = ("host_path", "nfs", "csi", "ephemeral", "iscsi", "git_repo", "image")


def _volume(
    pod: objects.Pod, volume: objects.Volume, sources: Sources, target: Target, size: resources.Size
) -> models.VolumeSpec:
    if volume.persistent_volume_claim is not None:
        return claims.mount(volume, sources.claims, target.profile)
    share = claims.inline(volume, target.profile) if volume.csi is not None else None
    if share is not None:
        secret = claims.inline_secret(volume)
        content = _items(sources.secrets.get(secret), [], "secret", secret, False, None) if secret else []
        return dataclasses.replace(share, files=tuple(content))
    if volume.empty_dir is not None:
        given = volume.empty_dir.size_limit
        limit = resources.memory_bytes(given) / resources.GIB if given else None
        return models.VolumeSpec(volume.name, "emptyDir", medium=volume.empty_dir.medium, size_limit_gib=limit)
    files: list[models.KeyToPath] = []
    if volume.config_map is not None:
        cm = volume.config_map
        data = sources.configmaps.get(cm.name)
        files = _items(data, cm.items, "configmap", cm.name, bool(cm.optional), cm.default_mode)
    elif volume.secret is not None:
        sec = volume.secret
        data = sources.secrets.get(sec.secret_name)
        files = _items(data, sec.items, "secret", sec.secret_name, bool(sec.optional), sec.default_mode)
    elif volume.downward_api is not None:
        files = downward.files(pod, volume.downward_api, target, size)
    elif volume.projected is not None:
        mode = volume.projected.default_mode
        for projection in volume.projected.sources:
            if projection.config_map:
                cm = projection.config_map
                data = sources.configmaps.get(cm.name)
                files += _items(data, cm.items, "configmap", cm.name, bool(cm.optional), mode)
            elif projection.secret:
                sec = projection.secret
                data = sources.secrets.get(sec.name)
                files += _items(data, sec.items, "secret", sec.name, bool(sec.optional), mode)
            elif projection.service_account_token:
                sat = projection.service_account_token
                token = sources.tokens.get((sat.audience, sat.expiration_seconds))
                if token is None:
                    raise Missing("serviceaccount token", pod.spec.service_account_name or "default")
                files.append(models.KeyToPath(sat.path, token.encode(), mode))
            elif projection.downward_api:
                files += downward.files(pod, projection.downward_api, target, size)
            else:
                raise errors.InvalidSpec(f"volume {volume.name}: this projected source is not supported")
    else:
        kind = next((k for k in _UNSUPPORTED if getattr(volume, k) is not None), "")
        if not kind:  # a type the decoder does not know (awsElasticBlockStore...): its name is not kept
            raise errors.InvalidSpec(f"volume {volume.name}: its type is not supported on virtual nodes ({_MOUNTED})")
        camel = re.sub(r"_(.)", lambda m: m.group(1).upper(), kind)
        raise errors.InvalidSpec(f"volume {volume.name}: {camel} volumes are not supported on virtual nodes")
    return models.VolumeSpec(volume.name, "files", files=tuple(files))


#: Tag on an instance: the digest of its configMap/secret volumes' content when it was created, so that
#: ``refresh`` knows after a restart what the instance holds (a change missed while it was down is sent).
TAG_VOLUMES = "vnode.io/volumes"


def refreshable(pod: objects.Pod) -> list[objects.Volume]:
    """The volumes of ``pod`` whose files follow their ConfigMap or Secret (plain configMap/secret ones)."""
    return [v for v in pod.spec.volumes if v.config_map is not None or v.secret is not None]


def volumes_digest(volumes: Iterable[models.VolumeSpec]) -> str:
    """A short digest of volumes' names, paths, modes and contents."""
    h = hashlib.sha256()
    for vol in volumes:
        h.update(vol.name.encode() + b"\0")
        for f in vol.files:
            h.update(f"{f.path}\0{f.mode}\0{len(f.content)}\0".encode())
            h.update(f.content)
    return h.hexdigest()[:32]


def _volumes_tag(pod: objects.Pod, volumes: Sequence[models.VolumeSpec]) -> dict[str, str]:
    names = {v.name for v in refreshable(pod)}
    return {TAG_VOLUMES: volumes_digest(v for v in volumes if v.name in names)} if names else {}


def volume(pod: objects.Pod, vol: objects.Volume, sources: Sources, target: Target) -> models.VolumeSpec:
    """One volume of ``pod`` as the instance gets it (``refresh`` rebuilds configMap/secret volumes with it,
    ``renewal`` the projected volumes of a renewed token)."""
    return _volume(pod, vol, sources, target, instance_size(pod, target)[0])


def instance_name(pod: objects.Pod) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", f"{pod.metadata.namespace}-{pod.metadata.name}".lower())
    return name[:128].strip("-")


def _placement(placement: models.Placement, profile: settings.Profile) -> models.Placement:
    """The node's placement, with what the live profile overrides."""
    if not (profile.vswitches or profile.security_group or profile.zones or profile.schedule_strategy):
        return placement
    return models.Placement(
        vswitches=profile.vswitches or placement.vswitches,
        zones=profile.zones or placement.zones,
        security_group=profile.security_group or placement.security_group,
        strategy=profile.schedule_strategy or placement.strategy,
    )


def instance_size(
    pod: objects.Pod, target: Target, profile: settings.Profile | None = None
) -> tuple[resources.Size, str]:
    """The size ``pod``'s instance is made at, and its instance type ("" for none)."""
    profile = profile or settings.Profile()
    default = target.default_size
    if profile.default_cpu or profile.default_memory_gib:
        default = resources.Size(profile.default_cpu or default.cpu, profile.default_memory_gib or default.memory_gib)
    want, instance_type = resources.pod_request(
        pod.spec, pod.metadata.annotations, default, target.profile.specs_annotation
    )
    gpus = max((resources.container_gpus(c) for c in pod.spec.containers), default=0)  # ECI: containers share them
    gpu = target.profile.gpu_size(gpus, want, instance_type)
    if gpu is not None:
        return resources.Size(gpu.cpu, gpu.memory_gib), gpu.instance_type
    # A named type the profile does not list is the cloud's to check (its GPUs too).
    return (target.profile.round(want) if not instance_type else want), instance_type


def build(
    pod: objects.Pod, sources: Sources, target: Target, profile: settings.Profile | None = None
) -> models.InstanceSpec:
    """The instance spec for ``pod``; raises ``Missing`` or ``errors.InvalidSpec``."""
    profile = profile or settings.Profile()
    if pod.spec.host_network:
        raise errors.InvalidSpec("hostNetwork pods cannot run on virtual nodes")
    limits = target.profile.limits
    if len(pod.spec.containers) + len(pod.spec.init_containers) > limits.max_containers:
        raise errors.InvalidSpec(f"more than {limits.max_containers} containers")
    if len(pod.spec.volumes) > limits.max_volumes:
        raise errors.InvalidSpec(f"more than {limits.max_volumes} volumes")
    pending.limit(pod.metadata.annotations, pending.rule(target.profile))  # a bad value: refused now
    size, instance_type = instance_size(pod, target, profile)
    placement = _placement(target.placement, profile)
    meta = pod.metadata
    volumes = tuple(_volume(pod, v, sources, target, size) for v in pod.spec.volumes)
    claims.check_kinds(volumes, target.profile)
    containers = tuple(_container(pod, c, sources, target, size) for c in pod.spec.containers)
    init_containers = tuple(_container(pod, c, sources, target, size) for c in pod.spec.init_containers)
    resolv = dns.resolver(pod, target.cluster_dns)
    return models.InstanceSpec(
        name=instance_name(pod),
        client_token=meta.uid,
        containers=containers,
        init_containers=init_containers,
        volumes=volumes,
        cpu=size.cpu,
        memory_gib=size.memory_gib,
        restart_policy=pod.spec.restart_policy or "Always",
        tags={
            models.TAG_CLUSTER: target.cluster_id,
            models.TAG_NODE: target.node_name,
            models.TAG_NAMESPACE: meta.namespace,
            models.TAG_NAME: meta.name,
            models.TAG_POD_UID: meta.uid,
            **_volumes_tag(pod, volumes),
        },
        placement=placement,
        instance_type=instance_type,
        termination_grace_seconds=pod.spec.termination_grace_period_seconds or 30,
        hostname=dns.hostname(pod),
        dns_nameservers=resolv.nameservers,
        dns_searches=resolv.searches,
        dns_options=resolv.options,
        host_aliases=dns.host_aliases(pod),
        sysctls=security.sysctls(pod),
        registry_credentials=registry.credentials(pod, sources.secrets),
        annotations=target.profile.read_annotations(meta.annotations),
    )
