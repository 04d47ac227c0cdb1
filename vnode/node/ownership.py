"""One owner per node: only the holder of the node's Lease in ``kube-node-lease`` creates or deletes.

Two controllers can claim the same node name: a replica stuck on a partitioned machine and
the replacement its StatefulSet started, or an operator's ``vnode run`` beside the chart's.
If both acted, both would create instances for the same pods and each would collect the
other's as orphans. So the node's Lease, which the node controller must renew anyway (it is
the node's heartbeat), doubles as a lock: ``holderIdentity`` names the one controller that
may act, and a second claimant stays on standby until the lease has not been renewed for
its ``leaseDurationSeconds``. Every write is a compare-and-swap on ``resourceVersion``, so
of two claimants racing for an expired lease exactly one wins.

The holder keeps renewing; it considers itself the owner only until ``lease_duration -
renew_interval`` after its last successful renewal, so when it cannot reach the API server
it stops acting before anyone else could take over (the renew deadline of client-go's
leader election). A controller that restarts in the same pod (same pod name and UID)
reclaims its own lease at once; a new pod waits for the old one's lease to expire, unless the
old one released it on a clean exit.

The lease's ``renewTime`` is compared with this machine's clock: clocks of one cluster are
assumed to agree within ``lease_duration - renew_interval`` (30 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from vnode import errors
from vnode.kube import client, extra

__all__ = ["Ownership", "identity"]

log = logging.getLogger(__name__)


def identity(pod: str = "", uid: str = "") -> str:
    """This controller's holder identity: ``<pod name>_<pod uid>`` in a pod, else host and a random id."""
    if pod and uid:
        return f"{pod}_{uid}"
    return f"{socket.gethostname()}_{secrets.token_hex(6)}"


def _micro_time(epoch: float) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Ownership:
    """The lease lock of one node. ``run()`` acquires and renews; ``holds()`` says whether to act now."""

    def __init__(
        self,
        kube: client.Client,
        node: str,
        *,
        identity: str,
        lease_duration: int = 40,
        renew_interval: float = 10.0,
        retry_interval: float | None = None,
        owner: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if renew_interval >= lease_duration:
            raise errors.ConfigError(f"lease renew interval {renew_interval}s must be below its duration")
        self.kube = kube
        self.node = node
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_interval = renew_interval
        # A standby polls more often than the holder renews, to take over soon after expiry.
        self.retry_interval = retry_interval if retry_interval is not None else min(2.0, renew_interval)
        #: The owner reference the Lease is created with (the Node, so that it goes with it).
        self.owner = dict(owner) if owner else None
        self._clock = clock
        self._monotonic = monotonic
        self._on_change = on_change
        self._renewed_at: float | None = None  # monotonic time of the last successful write
        # The Lease's resourceVersion after this controller's own last write: the next renewal is then one
        # compare-and-swap, no read first (a Conflict means someone else wrote: read, and decide again).
        self._written_version = ""
        self.holder: str | None = None  # who held the lease at the last read
        #: Set while this controller holds the lease (see ``holds()`` for the precise answer).
        self.held = asyncio.Event()
        #: Set once the first attempt finished, won or lost: "standby" is then a known state.
        self.ready = asyncio.Event()

    def holds(self) -> bool:
        """Whether this controller may act now: it holds the lease and renewed it recently enough."""
        if self._renewed_at is None:
            return False
        return self._monotonic() - self._renewed_at < self.lease_duration - self.renew_interval

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the lease; safe to repeat. True if this controller holds it."""
        now = self._clock()
        try:
            won = await self._attempt(now)
        except errors.Conflict:
            won = False  # someone wrote in between: read again next time
        except errors.NotFound:  # the lease vanished between our read and write
            won = False
        self._set(won)
        return won

    async def _attempt(self, now: float) -> bool:
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_duration,
            "renewTime": _micro_time(now),
        }
        if self._written_version and self.holder == self.identity:
            version, self._written_version = self._written_version, ""
            with contextlib.suppress(errors.Conflict):  # written by someone else since: read it below
                await self._write(version, spec)
                return True
        try:
            lease = await extra.get_lease(self.kube, self.node)
        except errors.NotFound:
            spec.update(acquireTime=_micro_time(now), leaseTransitions=0)
            made = await extra.create_lease(self.kube, self.node, spec, self.owner)
            self.holder = self.identity
            self._written_version = made.metadata.resource_version or ""
            return True
        self.holder = lease.spec.holder_identity
        if lease.spec.holder_identity != self.identity:
            renewed = _epoch(lease.spec.renew_time)
            duration = lease.spec.lease_duration_seconds or self.lease_duration
            if lease.spec.holder_identity and renewed is not None and renewed + duration > now:
                return False  # another controller's lease is still valid: stand by
            spec.update(acquireTime=_micro_time(now), leaseTransitions=(lease.spec.lease_transitions or 0) + 1)
            log.info("taking over the lease of node %s from %r", self.node, lease.spec.holder_identity,
                     extra={"node": self.node})  # fmt: skip
        await self._write(lease.metadata.resource_version, spec)
        return True

    async def _write(self, version: str, spec: dict[str, Any]) -> None:
        written = await extra.replace_lease(self.kube, self.node, version, spec)
        self.holder = self.identity
        self._written_version = written.metadata.resource_version or ""

    def _set(self, won: bool) -> None:
        was = self.held.is_set()
        if won:
            self._renewed_at = self._monotonic()
            self.held.set()
        elif self.holder != self.identity:
            self._renewed_at = None  # someone else holds it: stop acting at once
            self.held.clear()
        elif not self.holds():
            self.held.clear()  # still ours on paper, but we could not renew in time
        self.ready.set()
        if self.held.is_set() != was:
            log.info("node %s: %s", self.node, "acting as its owner" if self.held.is_set() else "standing by",
                     extra={"node": self.node, "holder": self.holder})  # fmt: skip
            if self._on_change is not None:
                self._on_change(self.held.is_set())

    async def run(self) -> None:
        """Acquire, then renew every ``renew_interval``; on loss, stand by and try again. Runs until cancelled."""
        while True:
            try:
                await self.try_acquire()
            except errors.ApiError as exc:  # unreachable or refused: keep what we had until the deadline
                log.warning("node %s: lease not renewed: %s", self.node, exc, extra={"node": self.node})
                if not self.holds() and self.held.is_set():
                    self.held.clear()
                    if self._on_change is not None:
                        self._on_change(False)
                self.ready.set()
            await asyncio.sleep(self.renew_interval if self.held.is_set() else self.retry_interval)

    async def release(self) -> None:
        """Give the lease up (a clean exit that is not a drain), so a successor need not wait for expiry.

        The release renews the lease one last time as it clears the holder: the node lifecycle
        controller of Kubernetes 1.37 (``NodeControllerLeaseCircuitBreaker``) reads a lease whose
        resourceVersion changed while its ``renewTime`` did not as a sign that its own cache is
        stale, and skips the node until the two agree, which for a lease nobody writes again is
        never: the node would stay Ready for good after its controller stopped.
        """
        if not self.held.is_set():
            return
        self.held.clear()
        self._renewed_at = None
        self._written_version = ""
        with contextlib.suppress(errors.ApiError):
            lease = await extra.get_lease(self.kube, self.node)
            if lease.spec.holder_identity == self.identity:
                spec = {"holderIdentity": None, "renewTime": _micro_time(self._clock())}
                await extra.replace_lease(self.kube, self.node, lease.metadata.resource_version, spec)
