"""Typed calls to the Kubernetes API: with :mod:`extra`, the only code that knows where a resource lives.

Callers name a resource and an object and get the partial structs of :mod:`objects` back;
they never build an API path. A collection to list or watch is a :class:`Resource` (its path
and the struct its items decode into, so a caller that needs less, like orphan collection's
list of every pod, decodes into a thinner struct and keeps the hot path lean). Writes take
plain JSON bodies, as the client sends them. Failures are the kinds of :mod:`vnode.errors`
(``NotFound``, ``Conflict`` for a failed precondition, ...). The calls that only scale-in,
ownership and gc need (eviction, StatefulSets, node Leases) are in :mod:`extra`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Generic, TypeVar

from vnode.kube import client, objects, reviews, storage

__all__ = [
    "CERTIFICATE_SIGNING_REQUESTS",
    "NAMESPACES",
    "NODES",
    "PERSISTENT_VOLUMES",
    "PODS",
    "Resource",
    "apply_webhook_configuration",
    "approve_certificate_signing_request",
    "config_maps",
    "create_certificate_signing_request",
    "create_event",
    "create_node",
    "create_secret",
    "delete_pod",
    "delete_webhook_configuration",
    "lease_path",
    "list_all",
    "patch_event",
    "patch_node",
    "patch_node_status",
    "patch_pod",
    "patch_pod_status",
    "persistent_volume_claims",
    "read",
    "read_certificate_signing_request",
    "request_token",
    "review_access",
    "review_self",
    "review_token",
    "secrets",
    "watch",
]

T = TypeVar("T")
U = TypeVar("U")


@dataclasses.dataclass(frozen=True, slots=True)
class Resource(Generic[T]):
    """A collection of one kind of object: where it is listed and watched, and what its items decode to."""

    path: str
    kind: type[T]

    def decoded_as(self, kind: type[U]) -> Resource[U]:
        """The same collection, its items decoded into ``kind`` (a thinner struct, say)."""
        return Resource(self.path, kind)

    def item(self, name: str) -> str:
        """The path of one item (of a collection in one namespace, or of a cluster-scoped kind)."""
        return f"{self.path}/{name}"


PODS = Resource("/api/v1/pods", objects.Pod)  # of every namespace: list and watch only
NODES = Resource("/api/v1/nodes", objects.Node)
NAMESPACES = Resource("/api/v1/namespaces", objects.Namespace)
CERTIFICATE_SIGNING_REQUESTS = Resource(
    "/apis/certificates.k8s.io/v1/certificatesigningrequests", objects.CertificateSigningRequest
)
_WEBHOOK_CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def config_maps(namespace: str) -> Resource[objects.ConfigMap]:
    return Resource(f"/api/v1/namespaces/{namespace}/configmaps", objects.ConfigMap)


def secrets(namespace: str) -> Resource[objects.Secret]:
    return Resource(f"/api/v1/namespaces/{namespace}/secrets", objects.Secret)


def persistent_volume_claims(namespace: str) -> Resource[storage.PersistentVolumeClaim]:
    return Resource(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", storage.PersistentVolumeClaim)


PERSISTENT_VOLUMES = Resource("/api/v1/persistentvolumes", storage.PersistentVolume)


def services(namespace: str) -> Resource[objects.Service]:
    return Resource(f"/api/v1/namespaces/{namespace}/services", objects.Service)


def _pod(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


# --- any resource ---


async def read(kube: client.Client, resource: Resource[T], name: str) -> T:
    return await kube.get(resource.item(name), resource.kind)


async def list_all(
    kube: client.Client, resource: Resource[T], *, params: Mapping[str, str] | None = None
) -> objects.List[T]:
    """Every item (fetched in pages); the result's resourceVersion is where a watch resumes."""
    return await kube.list(resource.path, resource.kind, params=params)


def watch(
    kube: client.Client,
    resource: Resource[T],
    *,
    resource_version: str,
    params: Mapping[str, str] | None = None,
    timeout_seconds: int = 300,
) -> AsyncGenerator[tuple[str, T]]:
    """``(type, item)`` from ``resource_version`` on (see :meth:`client.Client.watch_objects`)."""
    return kube.watch_objects(
        resource.path, resource.kind, resource_version=resource_version, params=params, timeout_seconds=timeout_seconds
    )


# --- pods ---


async def patch_pod(kube: client.Client, namespace: str, name: str, body: Any) -> None:
    """A merge patch of the pod's object (labels, annotations)."""
    await kube.patch(_pod(namespace, name), body)


async def patch_pod_status(kube: client.Client, namespace: str, name: str, body: Any) -> None:
    """A strategic merge patch of the ``status`` subresource (containers merge by name, conditions by type).

    A ``metadata.uid`` in ``body`` makes it a precondition: ``Conflict`` if the name now
    belongs to another pod.
    """
    await kube.patch(f"{_pod(namespace, name)}/status", body, kind="strategic")


async def delete_pod(
    kube: client.Client, namespace: str, name: str, *, grace_seconds: int | None = None, uid: str | None = None
) -> None:
    """Delete the pod; with ``uid`` only that incarnation of it (``Conflict`` otherwise)."""
    await kube.delete(_pod(namespace, name), grace_seconds=grace_seconds, uid=uid)


async def request_token(
    kube: client.Client, namespace: str, service_account: str, body: Mapping[str, Any]
) -> reviews.TokenRequest:
    """A token of ``service_account`` (``body`` is the TokenRequest: audiences, expiry, bound object)."""
    raw = await kube.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token", body)
    return client.decode(raw, reviews.TokenRequest)


# --- nodes ---


async def create_node(kube: client.Client, body: Mapping[str, Any]) -> objects.Node:
    return client.decode(await kube.create(NODES.path, body), objects.Node)


async def patch_node(kube: client.Client, name: str, body: Any) -> None:
    """A merge patch of the Node (a ``metadata.resourceVersion`` in it makes it compare-and-swap)."""
    await kube.patch(NODES.item(name), body)


async def patch_node_status(kube: client.Client, name: str, body: Any) -> None:
    """A strategic merge patch of the ``status`` subresource (conditions merge by type)."""
    await kube.patch(f"{NODES.item(name)}/status", body, kind="strategic")


def lease_path(namespace: str, name: str) -> str:
    """The path of a Lease (for the test control plane's launcher, whose client is the standard library's)."""
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"


# --- events, secrets ---


async def create_event(kube: client.Client, namespace: str, body: Mapping[str, Any]) -> None:
    await kube.create(f"/api/v1/namespaces/{namespace}/events", body)


async def patch_event(kube: client.Client, namespace: str, name: str, change: Mapping[str, Any]) -> None:
    """Merge-patch an Event (a repeat's count and lastTimestamp)."""
    await kube.patch(f"/api/v1/namespaces/{namespace}/events/{name}", change)


async def create_secret(kube: client.Client, namespace: str, body: Mapping[str, Any]) -> None:
    """Create a Secret; ``Conflict`` if one of that name exists."""
    await kube.create(secrets(namespace).path, body)


# --- authentication and authorization, for the kubelet API ---


async def review_token(kube: client.Client, token: str) -> reviews.TokenReview:
    """Who ``token`` belongs to, as the API server's authenticators say."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    raw = await kube.create("/apis/authentication.k8s.io/v1/tokenreviews", body)
    return client.decode(raw, reviews.TokenReview)


async def review_self(kube: client.Client) -> reviews.UserInfo:
    """Who the API server takes this client for (impersonation applied)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    raw = await kube.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", body)
    return client.decode(raw, reviews.SelfSubjectReview).status.user_info


async def review_access(kube: client.Client, spec: Mapping[str, Any]) -> reviews.SubjectAccessReview:
    """Whether the user of ``spec`` may do what it says, as the API server's authorizers say."""
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    raw = await kube.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
    return client.decode(raw, reviews.SubjectAccessReview)


async def create_certificate_signing_request(kube: client.Client, body: Mapping[str, Any]) -> dict[str, Any]:
    """Create the CSR; the object as stored, with ``spec.username``: who the API server says asked."""
    created: dict[str, Any] = json.loads(await kube.create(CERTIFICATE_SIGNING_REQUESTS.path, body))
    return created


async def read_certificate_signing_request(kube: client.Client, name: str) -> dict[str, Any]:
    """The whole CSR as JSON: its spec (the request, its requester) and what ``approval`` takes back."""
    current: dict[str, Any] = json.loads(await kube.request("GET", CERTIFICATE_SIGNING_REQUESTS.item(name)))
    return current


async def approve_certificate_signing_request(
    kube: client.Client, current: Mapping[str, Any], condition: Mapping[str, Any]
) -> None:
    """Set the approval ``condition`` on the CSR ``current``, as read (``Forbidden`` without ``approve``
    on its signer; ``Conflict`` if it changed since it was read: its resourceVersion is sent back).
    """
    body = {**current, "status": {**current.get("status", {}), "conditions": [dict(condition)]}}
    await kube.update(f"{CERTIFICATE_SIGNING_REQUESTS.item(current['metadata']['name'])}/approval", body)


# --- admission webhooks ---


async def apply_webhook_configuration(kube: client.Client, name: str, body: Mapping[str, Any]) -> None:
    """Server-side apply the MutatingWebhookConfiguration ``name``, as the client's field manager."""
    await kube.patch(f"{_WEBHOOK_CONFIGURATIONS}/{name}", body, kind="apply", force=True)


async def delete_webhook_configuration(kube: client.Client, name: str) -> None:
    await kube.delete(f"{_WEBHOOK_CONFIGURATIONS}/{name}")
