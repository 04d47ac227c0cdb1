"""The API calls that only scale-in, ownership and gc need, on top of the lean client.

Eviction (the policy/v1 subresource that honours PodDisruptionBudgets), a StatefulSet's
desired replicas and its scale, cordoning and deleting a Node, and reading and writing a
node's Lease. Each is one call through :class:`vnode.kube.client.Client`, so failures are
the kinds of :mod:`vnode.errors`: an eviction that a PodDisruptionBudget refuses is
``Throttled`` (HTTP 429), a pod or node already gone is ``NotFound``, a lost optimistic
race is ``Conflict``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from vnode.kube import client, objects

__all__ = [
    "Lease",
    "StatefulSet",
    "cordon",
    "create_lease",
    "delete_lease",
    "delete_node",
    "evict",
    "get_lease",
    "get_pod",
    "get_statefulset",
    "lease_path",
    "pods_on_node",
    "replace_lease",
    "scale_statefulset",
]

LEASE_NAMESPACE = "kube-node-lease"


class _S(msgspec.Struct, rename="camel", kw_only=True):
    pass


class LeaseSpec(_S):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int | None = None


class Lease(_S):
    metadata: objects.ObjectMeta = msgspec.field(default_factory=objects.ObjectMeta)
    spec: LeaseSpec = msgspec.field(default_factory=LeaseSpec)


class StatefulSetSpec(_S):
    replicas: int = 1


class StatefulSetStatus(_S):
    replicas: int = 0
    ready_replicas: int = 0


class StatefulSet(_S):
    metadata: objects.ObjectMeta = msgspec.field(default_factory=objects.ObjectMeta)
    spec: StatefulSetSpec = msgspec.field(default_factory=StatefulSetSpec)
    status: StatefulSetStatus = msgspec.field(default_factory=StatefulSetStatus)


async def get_statefulset(kube: client.Client, namespace: str, name: str) -> StatefulSet:
    return await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}", StatefulSet)


async def scale_statefulset(kube: client.Client, namespace: str, name: str, replicas: int) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale"
    await kube.patch(path, {"spec": {"replicas": replicas}})


async def get_pod(kube: client.Client, namespace: str, name: str) -> objects.Pod:
    return await kube.get(f"/api/v1/namespaces/{namespace}/pods/{name}", objects.Pod)


async def pods_on_node(kube: client.Client, node: str) -> list[objects.Pod]:
    result = await kube.list("/api/v1/pods", objects.Pod, params={"fieldSelector": f"spec.nodeName={node}"})
    return result.items


async def evict(kube: client.Client, namespace: str, name: str, *, uid: str = "") -> None:
    """Ask the API server to evict a pod, honouring its PodDisruptionBudgets.

    ``Throttled`` when a budget does not allow it now (try again later), ``NotFound`` when the
    pod is gone, ``Conflict`` when ``uid`` no longer names the pod of that name.
    """
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    }
    if uid:
        body["deleteOptions"] = {"preconditions": {"uid": uid}}
    await kube.create(f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", body)


async def cordon(kube: client.Client, node: str) -> None:
    await kube.patch(f"/api/v1/nodes/{node}", {"spec": {"unschedulable": True}})


async def delete_node(kube: client.Client, node: str, *, uid: str | None = None) -> None:
    await kube.delete(f"/api/v1/nodes/{node}", uid=uid)


def lease_path(node: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{node}"


async def get_lease(kube: client.Client, node: str) -> Lease:
    return await kube.get(lease_path(node), Lease)


async def delete_lease(kube: client.Client, node: str) -> None:
    await kube.delete(lease_path(node))


async def create_lease(
    kube: client.Client, node: str, spec: dict[str, Any], owner: dict[str, Any] | None = None
) -> Lease:
    metadata: dict[str, Any] = {"name": node, "namespace": LEASE_NAMESPACE}
    if owner:
        metadata["ownerReferences"] = [owner]
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}
    raw = await kube.create(f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases", body)
    return client.decode(raw, Lease)


async def replace_lease(kube: client.Client, node: str, resource_version: str, spec: dict[str, Any]) -> Lease:
    """PUT the Lease's spec, only if it is still at ``resource_version`` (``Conflict`` otherwise).

    A merge patch with ``metadata.resourceVersion`` is the same compare-and-swap as a PUT, and
    it keeps whatever else others set on the object (owner references, labels).
    """
    body = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
    return client.decode(await kube.patch(lease_path(node), body), Lease)
