"""The provider interface: the only thing the node controller knows about a cloud.

A provider turns an :class:`~vnode.models.InstanceSpec` into a cloud instance and reports
:class:`~vnode.models.InstanceState` values; it never sees a Kubernetes object and never builds
a pod status (virtual-kubelet's fat ``Provider`` made every implementation do both). The core
is :class:`Provider`: seven coroutines. Logs, exec, attach, port-forward, stats, volume updates
and push notification are optional abilities, each its own small Protocol (here and in
:mod:`vnode.provider.streams`), checked with ``isinstance`` at run time, so a provider
implements only what its cloud offers. What the core must know of a cloud beyond these calls
(sizes, limits, prices, names) its profile declares (:mod:`vnode.provider.profile`).

The contract every provider honours:

* **Idempotency.** ``create`` with a ``client_token`` that already made an instance returns
  that instance (whatever state it is in) and makes no other; ``delete`` of an instance that
  is gone, or going, succeeds.
* **Concurrency.** Methods may be called concurrently for *different* instances, from one
  event loop; the node controller never runs two calls for the same pod at once. A provider
  does its own connection pooling and rate limiting, but it does **not** retry: it raises,
  and the node's work queue backs off (honouring ``retry_after``) and calls again.
* **Errors** come from :mod:`vnode.errors` and nothing else:
  ``InvalidSpec`` (never retried; the pod fails with its message), ``CapacityError`` (every
  candidate zone/vSwitch exhausted; the provider has already failed over between the
  candidates in ``spec.placement`` before raising it), ``Throttled`` / ``Unavailable`` /
  other ``Retryable`` (retried with backoff), ``NotFound`` (from ``get`` only), ``Forbidden``
  (bad credentials: the node turns NotReady).
* **The change feed is the status feed.** The node calls ``changes`` once per interval with
  its own tags (``TAG_CLUSTER`` and ``TAG_NODE``) and the cursor of the previous answer; the
  provider pages through the cloud itself and answers what changed since that cursor
  (:class:`Changes`). The provider keeps no feed state between calls: what it needs to tell
  changes apart travels in the cursor, which the node keeps (``vnode.node.instances``, the
  same cache of instance states for every provider). A provider that cannot tell cheaply what
  changed answers every instance, ``complete``. ``list`` is a plain listing, for a pod's own
  instance or a collector's look at the whole cluster.
* **Tags.** ``spec.tags`` must be stored on the instance and returned in ``InstanceState.tags``
  exactly; they are how the node finds its instances after a restart.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from vnode import models

if TYPE_CHECKING:  # settings asks the registry (which names this module) for the providers' profiles
    from vnode import settings

__all__ = [
    "Changes",
    "Cursor",
    "ExecOutput",
    "ExecResult",
    "LogOptions",
    "LogRequest",
    "Provider",
    "ProviderFactory",
    "SupportsExec",
    "SupportsLogs",
    "SupportsPacing",
    "SupportsPush",
    "SupportsStats",
    "SupportsVolumeUpdate",
]


#: Where a provider's change feed stands: opaque to the node, which hands back the latest one.
Cursor = object


@dataclasses.dataclass(frozen=True)
class Changes:
    """One answer of a provider's change feed (``Provider.changes``)."""

    #: Instances new or changed since the cursor (an unchanged one may be among them).
    changed: Sequence[models.InstanceState]
    #: Ids of instances gone since the cursor (terminated instances the cloud still knows are not gone).
    gone: Sequence[str] = ()
    #: The cursor for the next call; ``None``: the provider keeps none (every answer is complete).
    cursor: Cursor | None = None
    #: ``changed`` holds *every* instance carrying the tags: any other the node knows is gone.
    complete: bool = False

    @classmethod
    def listing(cls, states: Sequence[models.InstanceState]) -> Changes:
        """The answer of a provider that lists everything every time."""
        return cls(changed=states, complete=True)


@runtime_checkable
class Provider(Protocol):
    """The core of every provider."""

    #: The provider's name as given to ``--provider`` (``eci``, ``aci``, ...).
    name: str
    #: The scheme of container IDs in pod status: ``eci`` gives ``eci://<instance id>``.
    container_id_scheme: str

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        """Create the instance for ``spec``, or return the one ``spec.client_token`` made before.

        Returns as soon as the cloud accepted it (state ``Scheduling`` or ``Pending`` typically);
        progress is reported by ``changes``. Raises ``InvalidSpec``, ``CapacityError``, ``Retryable``.
        An ambiguous failure (a timeout after the cloud may have acted) raises ``Unavailable``:
        the retry with the same token is safe.
        """
        ...

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        """Stop the instance (SIGTERM, then after ``grace_seconds`` SIGKILL) and remove it.

        Returns once the cloud accepted the deletion. Deleting an instance that is gone
        succeeds. Raises ``Retryable`` only.
        """
        ...

    async def get(self, instance_id: str) -> models.InstanceState:
        """The current state of one instance; ``NotFound`` if the cloud does not know it."""
        ...

    async def list(self, tags: Mapping[str, str]) -> Sequence[models.InstanceState]:
        """Every instance carrying all of ``tags``, paging through the cloud as needed; no state kept.

        Called to find a pod's instance by ``TAG_POD_UID``, and by collectors and the drain
        over a node or a cluster. Raises ``Retryable`` or ``Forbidden``.
        """
        ...

    async def changes(self, tags: Mapping[str, str], cursor: Cursor | None) -> Changes:
        """What changed among the instances carrying all of ``tags`` since ``cursor``.

        ``cursor`` is ``None`` the first time (and whenever the node lost track): the answer
        then holds every instance, ``complete``. Otherwise it is the ``cursor`` of the latest
        answer, which the node passes exactly once: a provider may answer only what changed
        (its cost proportional to the change, not to the node), and reports removals in
        ``gone``. Called once per status interval per node. Raises ``Retryable`` (the node keeps
        its last view, calls again with the same cursor, and turns NotReady if the cloud stays
        unreachable) or ``Forbidden``.
        """
        ...

    async def quota(self) -> models.Quota:
        """What the account may still run; it bounds the node's capacity. Fields the cloud
        does not report are ``None``."""
        ...

    async def close(self) -> None:
        """Release connections. Called once, at shutdown."""
        ...


#: What an entry point in the ``vnode.providers`` group names: settings in, provider out.
#: It must not do I/O; the first call does.
ProviderFactory = Callable[["settings.Settings"], Provider]


@runtime_checkable
class SupportsPush(Protocol):
    """A provider whose cloud can notify changes (instead of waiting for the next listing)."""

    def watch(self, tags: Mapping[str, str]) -> AsyncIterator[models.InstanceState]:
        """Yield each instance carrying ``tags`` whenever it changes; ends only on error
        (``Retryable``: the node falls back to listing, then calls ``watch`` again)."""
        ...


class LogOptions(Protocol):
    tail_lines: int | None
    since: datetime.datetime | None
    timestamps: bool
    limit_bytes: int | None
    previous: bool
    follow: bool


@dataclasses.dataclass(slots=True)  # not frozen: LogOptions declares plain attributes
class LogRequest:
    """The plain :class:`LogOptions`: what the kubelet API parses from a ``/containerLogs`` query, and
    what a provider passes to its own reads (``LogRequest(tail_lines=0, follow=True)``: from now on)."""

    tail_lines: int | None = None
    since: datetime.datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False
    follow: bool = False


@runtime_checkable
class SupportsLogs(Protocol):
    def logs(self, instance_id: str, container: str, options: LogOptions) -> AsyncIterator[bytes]:
        """The container's log as chunks of bytes; with ``options.follow`` it continues until
        cancelled. ``NotFound`` if the instance or container is unknown."""
        ...


class ExecResult(Protocol):
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclasses.dataclass(frozen=True)
class ExecOutput:
    """A ready ``ExecResult``."""

    exit_code: int
    stdout: bytes
    stderr: bytes = b""


@runtime_checkable
class SupportsExec(Protocol):
    async def exec(
        self, instance_id: str, container: str, command: Sequence[str], *, stdin: bytes = b"", tty: bool = False
    ) -> ExecResult:
        """Run ``command`` (argv, never re-split or re-quoted) in the container and wait for it."""
        ...


@runtime_checkable
class SupportsPacing(Protocol):
    """A provider that paces its own calls to the cloud's rate limits (client-side token buckets)."""

    def turns_waiting(self) -> Mapping[str, int]:
        """Per paced action (``create``, ``delete``): the callers waiting in line for a token now."""
        ...


@runtime_checkable
class SupportsStats(Protocol):
    async def stats(self, instance_ids: Sequence[str]) -> Mapping[str, Mapping[str, Mapping[str, float]]]:
        """Usage of the node's instances, read in as few cloud calls as the cloud allows (the
        kubelet API asks for all of a node's pods at once, at every metrics-server scrape).

        Instance id -> container name -> ``cpu_nanocores`` (the rate now),
        ``memory_working_set_bytes`` and ``cpu_usage_core_nanoseconds`` (cumulative; it must not
        decrease while the container runs: readers compute rates from two of them). An instance
        the cloud does not know, or has no figures for yet, is left out. Raises ``Retryable``
        when nothing could be read.
        """
        ...


@runtime_checkable
class SupportsVolumeUpdate(Protocol):
    """A provider that can replace the files of a running instance's configMap/secret volumes, and of the
    projected volumes holding a service-account token, in place, as a kubelet refreshes them and rotates
    the tokens (env is never touched: it stays as the container started). Without it, running pods keep
    the files and the token they were created with."""

    async def update_volumes(
        self, instance_id: str, volumes: Sequence[models.VolumeSpec], *, client_token: str
    ) -> None:
        """Replace the contents of the instance's ``files`` volumes named in ``volumes``; the others stay.

        Idempotent by ``client_token`` (at most 64 characters): a retry with the same token makes no second
        update. Raises ``NotFound`` if the instance is gone, ``InvalidSpec`` if its state forbids an update
        (not Pending or Running), ``Retryable`` otherwise.
        """
        ...
