"""Projected service-account tokens: requesting one for a pod, and when to renew it, as a kubelet does.

A kubelet's token manager (``pkg/kubelet/token/token_manager.go``, ``requiresRefresh``) renews a
token once it is older than 80 % of its life or older than 24 hours, whichever comes first. The
life is the token's as issued: the API server may make it other than asked (the
``expirationSeconds: 3607`` of the ``kube-api-access`` volume is the one the JWT claims
``warnafter``; ``--service-account-max-token-expiration`` caps it), so it is measured from the
answer, ``status.expirationTimestamp`` less the JWT's ``iat`` (both the API server's clock, so
the daemon's clock skew does not count), and only when the token cannot be read is the asked
number of seconds taken.

This module does the pure part (:func:`renew_after`, :func:`derived_due`, :class:`Schedule`, one
heap of due times for the whole node) and the one request (:func:`request`); ``renewal`` runs
the schedule and sends the renewed tokens to the instances.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import heapq
import itertools
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from vnode import errors
from vnode.kube import api, client, objects
from vnode.node import catchup, spec

__all__ = ["Issued", "Schedule", "derived_due", "needs", "renew_after", "request", "token_volumes"]

RENEW_FRACTION = 0.8  # of the token's life, as the kubelet
MAX_AGE = 24 * 3600.0  # a token older than this is renewed whatever its life (the kubelet's maxTTL)
#: ``--service-account-max-token-expiration`` may not be set below an hour: a token asked for longer
#: lives at least that long (what a restarted daemon assumes of a token it did not see issued).
MIN_CAPPED_LIFE = 3600.0
#: A token is requested shortly before its instance is created: how much earlier than the instance's
#: creation time a restarted daemon takes it to be issued.
CREATE_MARGIN = 60.0


@dataclasses.dataclass(frozen=True)
class Issued:
    """A token as the API server issued it."""

    audience: str
    seconds: int  # asked
    token: str
    life: float  # seconds it is valid from its issue, as issued
    took: float = 0.0  # seconds the request took: it was issued at most that long before the answer


def renew_after(life: float) -> float:
    """Seconds after its issue that a token of ``life`` seconds is renewed: 80 % of it, at most 24 h."""
    return min(RENEW_FRACTION * life, MAX_AGE)


def derived_due(created_at: float | None, asked: Iterable[int], now: float) -> float:
    """When to renew the tokens of an instance whose tokens' issue this daemon did not see (it restarted).

    Every token the instance ever held was issued no earlier than just before its creation, and
    lives at least the asked seconds (or an hour, if the API server caps a longer ask): renewing
    at creation + 80 % of that is never late. An instance older than that, or of unknown age,
    is renewed now, once; its schedule then follows the new token.
    """
    if created_at is None:
        return now
    shortest = min((min(float(s), MIN_CAPPED_LIFE) for s in asked), default=0.0)
    return max(created_at - CREATE_MARGIN + renew_after(shortest), now)


def life_of(token: str, expiration: str | None, asked: int) -> float:
    """The token's life: ``expirationTimestamp`` less the JWT's ``iat``; the asked seconds if unreadable."""
    try:
        payload = token.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        issued_at = float(claims["iat"])
        if expiration is None:
            return float(claims["exp"]) - issued_at
        expires = datetime.datetime.fromisoformat(expiration).timestamp()
    except (IndexError, KeyError, TypeError, ValueError):
        return float(asked)
    life = expires - issued_at
    return life if life > 0 else float(asked)


def token_volumes(pod: objects.Pod) -> list[objects.Volume]:
    """``pod``'s projected volumes that hold a service-account token (rebuilt whole when it is renewed);
    none for a pod that mounts no token, which then costs nothing here."""
    return [
        v
        for v in pod.spec.volumes
        if v.projected is not None and any(s.service_account_token is not None for s in v.projected.sources)
    ]


def _only_token_volumes(pod: objects.Pod) -> objects.Pod:
    """``pod`` reduced to its token volumes (so ``spec.references`` names only what they need)."""
    reduced = msgspec.structs.replace(pod.spec, volumes=token_volumes(pod), containers=[], init_containers=[],
                                      image_pull_secrets=[])  # fmt: skip
    return msgspec.structs.replace(pod, spec=reduced)


def needs(pod: objects.Pod) -> spec.Refs:
    """The ConfigMaps, Secrets and tokens the token volumes of ``pod`` are built from."""
    return spec.references(_only_token_volumes(pod))


async def request(
    kube: client.Client,
    pod: objects.Pod,
    audience: str,
    seconds: int,
    *,
    gate: catchup.Gate | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Issued:
    """One TokenRequest for ``pod``'s service account, bound to the pod; ``spec.Missing`` without the account.

    A request the API server refuses because it has not caught up with the pod yet (see ``catchup``)
    raises ``errors.Unavailable`` (``PodNotYetKnown``): not the pod's fault, nor its account's. With
    the node's ``gate``, a new pod is also held (the same error) while the API server lags."""
    account = pod.spec.service_account_name or "default"
    body: dict[str, Any] = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": seconds,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid},
        },
    }
    if audience:
        body["spec"]["audiences"] = [audience]
    uid = pod.metadata.uid
    sent = gate.enter(uid) if gate is not None else monotonic()  # the gate's clock is ``monotonic``
    try:
        answer = await api.request_token(kube, pod.metadata.namespace, account, body)
    except BaseException as exc:
        if isinstance(exc, errors.ApiError) and _lag(exc):
            raise (gate.refused(uid, sent, exc) if gate is not None else catchup.not_yet(exc.message, None)) from exc
        if gate is not None:
            gate.left(uid)
        if isinstance(exc, errors.NotFound):
            raise spec.Missing("serviceaccount", account) from exc
        raise
    if gate is not None:
        gate.answered(uid)
    token = answer.status.token
    life = life_of(token, answer.status.expiration_timestamp, seconds)
    return Issued(audience, seconds, token, life, took=max(0.0, monotonic() - sent))


#: The API server's refusals while its own watch of pods lags the daemon's, for a pod the daemon sees
#: bound here: the Node authorizer's graph lacks the pod; NodeRestriction's informer holds an older
#: view of it, not yet bound (its ``nodeName`` empty) or the same-named pod it replaced (a
#: StatefulSet's pod recreated).
LAG_REFUSALS = (
    "no relationship found between node",
    "node requested token bound to a pod scheduled on a different node",
    "does not match the UID in record",
)


def _lag(refused: errors.ApiError) -> bool:
    """Whether a refusal is the API server's lag behind a pod that exists (we watch it, bound here):
    NodeRestriction's informer (404 of the *pod*, not of the service account; a 403 naming an older
    view of it) or the Node authorizer's graph (403)."""
    if isinstance(refused, errors.NotFound):
        return refused.kind in ("pod", "pods")
    return isinstance(refused, errors.Forbidden) and any(lag in refused.message for lag in LAG_REFUSALS)


class Schedule:
    """Due times by key on one heap: the next due is O(1), a change O(log n), a removal O(1) (lazily).

    A key has at most one due time; setting it again replaces it. Replaced and dropped entries stay on
    the heap until they reach its top or outnumber the live ones, when the heap is rebuilt: its size
    stays within twice the number of keys (plus a few), however many pods come and go.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, tuple[float, int]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    @property
    def size(self) -> int:
        """Entries on the heap, stale ones included (for tests that nothing leaks)."""
        return len(self._heap)

    def due(self, key: str) -> float | None:
        entry = self._due.get(key)
        return None if entry is None else entry[0]

    def set(self, key: str, due: float) -> bool:
        """Schedule ``key`` at ``due``; True if it is now the earliest of all (a sleeping runner should wake)."""
        entry = (due, next(self._seq))
        self._due[key] = entry
        heapq.heappush(self._heap, (*entry, key))
        self._compact()
        return self.next() == due

    def drop(self, key: str) -> None:
        if self._due.pop(key, None) is not None:
            self._compact()

    def next(self) -> float | None:
        """The earliest due time, or None when nothing is scheduled."""
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][:2]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop(self, now: float) -> list[str]:
        """The keys due at ``now`` (earliest first), no longer scheduled."""
        keys = []
        while (first := self.next()) is not None and first <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            keys.append(key)
        return keys

    def _compact(self) -> None:
        if len(self._heap) > 2 * len(self._due) + 16:
            self._heap = [(*entry, key) for key, entry in self._due.items()]
            heapq.heapify(self._heap)
