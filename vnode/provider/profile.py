"""What a provider declares about its cloud: the one place the provider-neutral core reads it from.

Each provider's folder (``vnode/provider/<name>/profile.py``) declares one frozen
:class:`Profile`: its settings model and the environment variables and flags that fill it, the
sizes its cloud sells and how a request is rounded to one, its limits and prices, how its
credentials are loaded, the value of the node's taint, the scheme of container IDs, its region,
the annotation that names an explicit instance type, the volume kinds and pod-spec fields it
maps, and the labels by which the webhook sends pods to it. The core (node, daemon, webhook,
docs) asks ``registry.profile(name)`` and never names a cloud, so a new provider is one folder
plus one line in ``registry.BUILTIN``.

A profile imports no cloud client: the daemon reads it to load settings before the provider's
module (and its HTTP stack) is imported at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import pydantic

from vnode import errors, models

__all__ = [
    "NEUTRAL",
    "NO_SETTINGS",
    "Credentials",
    "Flag",
    "GpuSize",
    "GpuSku",
    "Limits",
    "NoSettings",
    "Prices",
    "Profile",
    "ReadSecret",
    "Size",
    "round_to_table",
    "split_list",
    "table",
]

#: Config for a provider's settings model: immutable, and an unknown field is an error.
FROZEN = pydantic.ConfigDict(frozen=True, extra="forbid")


class NoSettings(pydantic.BaseModel):
    """The settings model of a provider that has none."""

    model_config = FROZEN


NO_SETTINGS = NoSettings()


def split_list(value: Any) -> Any:
    """A comma-separated environment value as a tuple (a before-validator for tuple fields)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


@dataclasses.dataclass(frozen=True, order=True)
class Size:
    """An instance size: vCPU and GiB."""

    cpu: float
    memory_gib: float

    def __str__(self) -> str:
        return f"{self.cpu:g} vCPU / {self.memory_gib:g} GiB"


def table(rows: Mapping[float, Iterable[float]]) -> tuple[Size, ...]:
    """Sizes from a table ``vCPU -> the GiB sold with it``, smallest first."""
    return tuple(sorted(Size(c, m) for c, mems in rows.items() for m in mems))


def round_to_table(want: Size, sizes: tuple[Size, ...]) -> Size:
    """The smallest size of ``sizes`` covering ``want`` (fewest vCPU, then least memory).

    ``InvalidSpec`` if none does: such a pod can never run and fails fast instead of waiting."""
    for size in sizes:
        if size.cpu >= want.cpu - 1e-9 and size.memory_gib >= want.memory_gib - 1e-9:
            return size
    raise errors.InvalidSpec(f"the pod asks for {want}, more than the largest instance ({max(sizes)})")


@dataclasses.dataclass(frozen=True)
class GpuSize:
    """A GPU instance type its cloud sells: its name, vCPU, GiB, GPUs (``nvidia.com/gpu``) and their price."""

    instance_type: str
    cpu: float
    memory_gib: float
    gpus: int
    per_gpu_second: float = 0.0  # dollars per GPU per second, on top of the vCPU/GiB price


@dataclasses.dataclass(frozen=True)
class GpuSku:
    """A GPU model its cloud attaches to containers with no instance type to pick: its name, the
    GPU counts an instance may have with the most vCPU/GiB it may then ask (``count -> Size``), and
    the price of one GPU. The provider's mapping chooses the model and checks a pod against it."""

    name: str
    maxima: Mapping[int, Size]
    per_gpu_second: float = 0.0  # dollars per GPU per second, on top of the vCPU/GiB price

    def counts(self) -> tuple[int, ...]:
        return tuple(sorted(self.maxima))


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one instance may hold; a pod beyond them fails fast with ``InvalidSpec``."""

    max_containers: int = 20  # app and init containers together
    max_volumes: int = 20
    max_cpu: float | None = None  # None: only the size table (if any) bounds it


@dataclasses.dataclass(frozen=True)
class Prices:
    """Pay-as-you-go price per second of the billed size; the cost gauge multiplies by them."""

    per_vcpu_second: float = 0.0
    per_gib_second: float = 0.0


@dataclasses.dataclass(frozen=True)
class Flag:
    """A ``vnode run`` flag setting one field of the provider's settings."""

    field: str
    kind: type
    help: str


#: Reads a Secret: ``(namespace, name) -> its data, decoded``; raises ``errors.ApiError``.
ReadSecret = Callable[[str, str], Awaitable[Mapping[str, bytes]]]
#: Completes the provider's settings with credentials from the cluster (a Secret named by a
#: setting, typically) before the provider is made; returns them unchanged if nothing is to load.
Credentials = Callable[[Any, ReadSecret], Awaitable[Any]]


async def _no_credentials(cloud: Any, read_secret: ReadSecret) -> Any:
    return cloud


def _credentials_named(cloud: Any) -> str:
    return "the provider's credentials"


def _no_region(cloud: Any) -> str:
    return ""


def _no_placement(cloud: Any) -> models.Placement:
    return models.Placement()


def _no_quota(cloud: Any) -> models.Quota:
    return models.Quota()


@dataclasses.dataclass(frozen=True)
class Profile:
    """Everything the core needs to know about one provider, declared in the provider's folder."""

    #: The name given to ``--provider``; also the prefix of its flags' setting paths (``eci.region``).
    name: str
    #: ``module:attribute`` of its ``base.ProviderFactory`` (imported only when a provider is made).
    factory: str
    #: Its settings model (``Settings.cloud`` holds an instance) and field -> environment variables.
    settings: type[pydantic.BaseModel] = NoSettings
    env: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: Its users' own names for generic settings (``cluster_id`` -> ``("ECI_CLUSTER_ID",)``), read last.
    env_aliases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: ``vnode run`` flags of its own: ``--flag`` -> the field it sets.
    flags: Mapping[str, Flag] = dataclasses.field(default_factory=dict)
    #: The sizes its cloud sells, smallest first; empty: a request is used as it is (no rounding).
    sizes: tuple[Size, ...] = ()
    #: The size of a pod that asks for nothing.
    default_size: Size = Size(2, 4)
    limits: Limits = Limits()
    prices: Prices = Prices()
    credentials: Credentials = _no_credentials
    #: Its settings -> the settings its credentials came from, in words (``ECI_ACCESS_KEY/ECI_SECRET_KEY``),
    #: for the one line that ends a daemon whose credentials the cloud refuses.
    credentials_named: Callable[[Any], str] = _credentials_named
    #: The value of the node's ``virtual-kubelet.io/provider`` taint.
    taint: str = ""
    #: Container IDs in pod status read ``<scheme>://<instance id>``.
    container_id_scheme: str = ""
    #: Its settings -> the node's ``topology.kubernetes.io/region``.
    region: Callable[[Any], str] = _no_region
    #: Its settings -> where instances go unless the live ConfigMap says otherwise.
    placement: Callable[[Any], models.Placement] = _no_placement
    #: Its settings -> the quota the account is held to (a bound on the node's capacity).
    quota: Callable[[Any], models.Quota] = _no_quota
    #: A pod annotation naming explicit specs (``4-8Gi`` or instance types); empty: none.
    specs_annotation: str = ""
    #: A pod annotation setting the minutes its instance may stay Pending before vnode stops it, and the
    #: minutes it may say (vnode/node/pending.py); empty: none.
    max_pending_annotation: str = ""
    max_pending_minutes: tuple[int, int] = (10, 1440)
    #: A pod annotation (key, value) asking that the pod, once its instance's reclamation is announced,
    #: be evicted through the Eviction API (its PodDisruptionBudgets honoured) instead of deleted or
    #: left to fail (vnode/node/reclaim.py); (): none.
    reclaim_eviction: tuple[str, ...] = ()
    #: The ConfigMap (``namespace/name``) holding the live profile; the ``--profile-configmap`` default.
    live_configmap: str = "kube-system/vnode-profile"
    #: Kinds of ``models.VolumeSpec`` it maps (``emptyDir``, ``files``); the others it refuses.
    volume_kinds: frozenset[str] = frozenset({"emptyDir", "files"})
    #: CSI drivers of PersistentVolumes it mounts -> the kind of ``models.VolumeSpec`` each becomes:
    #: ``disk`` (the volumeHandle is the cloud's disk ID) or ``nfs`` (volumeAttributes server and path).
    csi_drivers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The pod-spec fields it maps onto its cloud (dotted paths under ``spec``).
    pod_fields: frozenset[str] = frozenset()
    #: Pod-spec fields it accepts without applying them -> why (docs/pod-spec.md shows it); the core
    #: refuses every other field it does not map (vnode/node/fields.py).
    ignored_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Labels (key, value) on a pod or its namespace that send the pod to its virtual nodes.
    labels: tuple[tuple[str, str], ...] = ()
    #: ``module:function`` of its ``vnode operator`` (custom resources kept in its cloud); empty: none.
    operator: str = ""
    #: Prefixes of the pod annotations its provider reads (``InstanceSpec.annotations``).
    annotation_prefixes: tuple[str, ...] = ()
    #: The GPU instance types its cloud sells, for pods asking for ``nvidia.com/gpu``; empty: none.
    gpu_sizes: tuple[GpuSize, ...] = ()
    #: The ``nvidia.com/gpu`` its virtual node advertises unless its quota says (0: none; the scheduler
    #: then keeps GPU pods away).
    gpu_capacity: int = 0
    #: The GPU models its cloud attaches per container (the first is the default); empty: none. With
    #: them the core sends ``nvidia.com/gpu`` counts as they are and the provider's mapping checks them.
    gpu_skus: tuple[GpuSku, ...] = ()

    def read_annotations(self, annotations: Mapping[str, str]) -> dict[str, str]:
        """The pod's annotations its provider reads: those under ``annotation_prefixes``."""
        prefixes = self.annotation_prefixes
        return {k: v for k, v in annotations.items() if prefixes and k.startswith(prefixes)}

    def round(self, want: Size) -> Size:
        """The size billed for a request: the smallest of ``sizes`` covering it, or the request itself."""
        if self.limits.max_cpu is not None and want.cpu > self.limits.max_cpu + 1e-9:
            raise errors.InvalidSpec(f"the pod asks for {want}, more than {self.limits.max_cpu:g} vCPU")
        return round_to_table(want, self.sizes) if self.sizes else want

    def gpu_size(self, gpus: int, want: Size, named: str = "") -> GpuSize | None:
        """The GPU type for a pod: the one ``named`` (the specs annotation) if it is one of ``gpu_sizes``,
        else, for ``gpus`` > 0, the smallest covering ``gpus`` and ``want``; ``InvalidSpec`` if none
        does, or if the named type has fewer GPUs than a container asks for. None: no GPU type."""
        known = {g.instance_type: g for g in self.gpu_sizes}
        if named:
            chosen = known.get(named)
            if chosen is not None and gpus > chosen.gpus:
                raise errors.InvalidSpec(f"a container asks for {gpus} nvidia.com/gpu; {named} has {chosen.gpus}")
            if chosen is not None and not gpus:
                raise errors.InvalidSpec(f"{named} is a GPU type: a container must ask for nvidia.com/gpu")
            return chosen  # an instance type not in the table: the cloud decides
        if not gpus or self.gpu_skus:  # GPUs per container: no instance type, the mapping checks them
            return None
        fits = [
            g
            for g in self.gpu_sizes
            if g.gpus >= gpus and g.cpu >= want.cpu - 1e-9 and g.memory_gib >= want.memory_gib - 1e-9
        ]
        if not fits:
            offered = sorted({g.gpus for g in self.gpu_sizes})
            sold = f"its GPU types have {', '.join(map(str, offered))}" if offered else "it sells no GPU type"
            raise errors.InvalidSpec(
                f"no {self.name or 'cloud'} GPU type offers {gpus} nvidia.com/gpu with {want} ({sold})"
            )
        return min(fits, key=lambda g: (g.gpus, g.cpu, g.memory_gib))

    def price(self, cpu: float, memory_gib: float) -> float:
        """Dollars per second of an instance of this size."""
        return cpu * self.prices.per_vcpu_second + memory_gib * self.prices.per_gib_second

    def rates(self, state: models.InstanceState) -> tuple[float, float]:
        """Dollars per second an instance is billed, and at its list price: the hourly price the cloud
        bills it, when the provider knows one (``state.hourly_price``: spot), else the list price of
        its size and GPUs."""
        rate = self.price(state.cpu, state.memory_gib)
        gpu = next((g for g in self.gpu_sizes if g.instance_type == state.instance_type), None)
        if gpu is not None:
            rate += gpu.gpus * gpu.per_gpu_second
        sku = next((g for g in self.gpu_skus if g.name == state.instance_type), None)
        if sku is not None:
            rate += state.gpus * sku.per_gpu_second
        return (state.hourly_price / 3600 if state.hourly_price else rate), rate

    def spent(self, state: models.InstanceState, now: float, *, listed: bool = False) -> float:
        """Dollars an instance has cost by ``now`` (epoch seconds), from its start to its end, or to ``now``
        while it runs, nothing before it started: at its billed rate, or (``listed``) its list price's."""
        if state.started_at is None:
            return 0.0
        end = state.finished_at.timestamp() if state.finished_at else now
        seconds = max(0.0, end - state.started_at.timestamp())
        return seconds * self.rates(state)[1 if listed else 0]

    def saved(self, state: models.InstanceState, now: float) -> float:
        """What an instance billed below its list price (spot) has saved by ``now``; 0 for the others."""
        if not state.hourly_price:
            return 0.0
        return max(0.0, self.spent(state, now, listed=True) - self.spent(state, now))


#: The rules of no cloud in particular: no rounding, no prices, the default limits.
NEUTRAL = Profile(name="", factory="")
