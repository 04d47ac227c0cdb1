"""Who is calling the kubelet API and may they: client certificates, TokenReview, SubjectAccessReview.

The same rules as the real kubelet (``pkg/kubelet/server/auth.go`` of Kubernetes 1.37), so that
RBAC written for kubelets works unchanged for virtual nodes:

* **Authentication.** A client certificate signed by the cluster CA (checked in the TLS
  handshake) names the user (CN) and its groups (O); that is how the API server itself calls,
  with its ``--kubelet-client-certificate``. Otherwise a bearer token is checked with a
  TokenReview. Neither: 401, unless anonymous requests are allowed (the kubelet's
  ``--anonymous-auth``; off by default): then the caller is ``system:anonymous``, authorized as
  any other. Every authenticated user is also in ``system:authenticated``.
* **Authorization.** A SubjectAccessReview on ``nodes/<node>`` with the request's verb (GET
  → get, POST → create, ...) and the kubelet's subresource for the path: ``/stats/*`` →
  stats, ``/metrics*`` → metrics, ``/logs/*`` → log, ``/pods`` → pods or proxy, ``/healthz`` →
  healthz or proxy, everything else (containerLogs, exec, attach, portForward) → proxy.
  Refused: 403.
* **Caching.** Reviews are cached briefly, like the kubelet's webhook authenticator and
  authorizer (token 2 min; allowed 5 min; denied 30 s), so that ``kubectl logs -f`` or a
  metrics scraper does not cost two API calls per request.

This module needs the daemon's service account to create ``tokenreviews`` and
``subjectaccessreviews`` (the ``system:auth-delegator`` ClusterRole grants both).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from vnode import errors
from vnode.kube import api, client
from vnode.kubelet import clock as clock_mod

log = logging.getLogger(__name__)

__all__ = ["Reviewer", "User", "attributes_for", "middleware", "user_from_peercert"]

AUTHENTICATED = "system:authenticated"
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


def user_from_peercert(peercert: Mapping[str, Any] | None) -> User | None:
    """The user a verified client certificate names (``ssl.SSLSocket.getpeercert()`` form)."""
    if not peercert:
        return None
    name, groups = "", []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    if not name:
        return None
    return User(name, tuple([*groups, AUTHENTICATED]))


def _is_subpath(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def attributes_for(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    """The verb and the subresources (any one allowed suffices) the kubelet checks for a request."""
    verb = _VERBS.get(method.upper(), method.lower())
    if _is_subpath(path, "/stats"):
        return verb, ("stats",)
    if _is_subpath(path, "/metrics"):
        return verb, ("metrics",)
    if _is_subpath(path, "/logs"):
        return verb, ("log",)
    if _is_subpath(path, "/pods") or _is_subpath(path, "/runningpods"):
        return verb, ("pods", "proxy")
    if _is_subpath(path, "/healthz"):
        return verb, ("healthz", "proxy")
    return verb, ("proxy",)


class _Cache:
    def __init__(self, clock: clock_mod.Clock) -> None:
        self._clock = clock
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        hit = self._items.get(key)
        if hit is None or hit[0] < self._clock.monotonic():
            self._items.pop(key, None)
            return False, None
        return True, hit[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        if len(self._items) > 10_000:  # a flood of distinct tokens must not grow memory forever
            self._items.clear()
        self._items[key] = (self._clock.monotonic() + ttl, value)


class Reviewer:
    """TokenReview and SubjectAccessReview for one node, with the kubelet's cache lifetimes."""

    def __init__(
        self,
        kube: client.Client,
        node_name: str,
        *,
        clock: clock_mod.Clock,
        token_ttl: float = 120.0,
        allowed_ttl: float = 300.0,
        denied_ttl: float = 30.0,
        anonymous: bool = False,
    ) -> None:
        self.kube = kube
        self.node_name = node_name
        #: The kubelet's ``--anonymous-auth``: a request with neither certificate nor token is
        #: ``system:anonymous`` (group ``system:unauthenticated``), still authorized by review.
        self.anonymous = anonymous
        self.token_ttl, self.allowed_ttl, self.denied_ttl = token_ttl, allowed_ttl, denied_ttl
        self._tokens = _Cache(clock)
        self._decisions = _Cache(clock)

    async def authenticate_token(self, token: str) -> User | None:
        key = hashlib.sha256(token.encode()).digest()  # never keep the token itself around
        hit, cached = self._tokens.get(key)
        if hit:
            return cached  # type: ignore[no-any-return]
        status = (await api.review_token(self.kube, token)).status
        user: User | None = None
        if status.authenticated:
            info = status.user
            groups = list(info.groups)
            if AUTHENTICATED not in groups:
                groups.append(AUTHENTICATED)
            extra = tuple(sorted((k, tuple(v)) for k, v in info.extra.items()))
            user = User(info.username, tuple(groups), info.uid, extra)
        self._tokens.put(key, user, self.token_ttl if user else self.denied_ttl)
        return user

    async def authorize(self, user: User, verb: str, subresources: tuple[str, ...]) -> bool:
        for subresource in subresources:
            key = (user, verb, subresource)
            hit, allowed = self._decisions.get(key)
            if not hit:
                allowed = await self._review(user, verb, subresource)
                self._decisions.put(key, allowed, self.allowed_ttl if allowed else self.denied_ttl)
            if allowed:
                return True
        return False

    async def _review(self, user: User, verb: str, subresource: str) -> bool:
        spec: dict[str, Any] = {
            "user": user.name,
            "groups": list(user.groups),
            "resourceAttributes": {
                "verb": verb,
                "group": "",
                "version": "v1",
                "resource": "nodes",
                "subresource": subresource,
                "name": self.node_name,
            },
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra}
        return (await api.review_access(self.kube, spec)).status.allowed


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def middleware(reviewer: Reviewer) -> Any:
    """An aiohttp middleware that lets through only authenticated, authorized requests."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        user = None
        if request.transport is not None:
            user = user_from_peercert(request.transport.get_extra_info("peercert"))
        try:
            if user is None:
                header = request.headers.get("Authorization", "")
                scheme, _, token = header.partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    user = await reviewer.authenticate_token(token.strip())
            if user is None and reviewer.anonymous:
                user = ANONYMOUS
            if user is None:
                return web.Response(status=401, text="Unauthorized\n")
            verb, subresources = attributes_for(request.method, request.path)
            allowed = await reviewer.authorize(user, verb, subresources)
        except errors.ApiError as exc:  # the API server could not review: neither yes nor no
            log.warning("kubelet API: review failed: %s", exc, extra={"node": reviewer.node_name})
            return web.Response(status=500, text=f"Authorization error: {exc.message}\n")
        if not allowed:
            text = f"Forbidden (user={user.name}, verb={verb}, resource=nodes, subresource(s)={list(subresources)})\n"
            return web.Response(status=403, text=text)
        return await handler(request)

    return check
