"""The cloud's answers to the questions a lifecycle decision asks (create, look up, find, delete).

Reconcile carries an ask out and decides again with its answer (see lifecycle.py).
"""

from __future__ import annotations

import dataclasses
from typing import TypeAlias

from vnode import errors, models
from vnode.node import events

__all__ = ["Answer", "Created", "Deleted", "Found", "Invalid", "LookedUp", "Missing", "NoCapacity"]


@dataclasses.dataclass(frozen=True, slots=True)
class Created:
    state: models.InstanceState
    sent_at: float  # monotonic time the create was sent
    notices: tuple[events.Event, ...] = ()  # optional references skipped (virtual-kubelet's Optional*NotFound)


@dataclasses.dataclass(frozen=True, slots=True)
class Missing:
    message: str  # a ConfigMap, Secret, key or service account the pod refers to does not exist (yet)
    reason: str = ""  # virtual-kubelet's event reason for it (MandatorySecretNotFound...), "" if none
    mount: bool = False  # a claim not bound (yet): the kubelet's ContainerCreating and FailedMount, not a config error


@dataclasses.dataclass(frozen=True, slots=True)
class Invalid:
    message: str  # the spec can never run here (too big, an unsupported volume, a refused field...)
    reason: str = "ProviderInvalidSpec"  # the pod's status reason, and the Warning's unless the default


@dataclasses.dataclass(frozen=True, slots=True)
class NoCapacity:
    error: errors.CapacityError


@dataclasses.dataclass(frozen=True, slots=True)
class LookedUp:
    instance_id: str
    state: models.InstanceState | None  # None: the cloud does not know the instance


@dataclasses.dataclass(frozen=True, slots=True)
class Found:
    instance_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Deleted:
    instance_ids: tuple[str, ...]
    at: float  # monotonic time the deletes were accepted


Answer: TypeAlias = Created | Missing | Invalid | NoCapacity | LookedUp | Found | Deleted
