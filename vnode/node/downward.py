"""The downward API: a pod's own fields and its containers' resources, as env values and as files.

``field`` reads a ``fieldRef`` path (name, namespace, labels, annotations, the node's name and
address...), ``resource_field`` a ``resourceFieldRef`` (a container's limit or request over the
divisor; without one, the instance's size, as a kubelet gives the node's), and ``files`` a
downwardAPI volume's items. ``CLOUD_FIELDS`` are the paths only the cloud knows (the pod's own
IP): env only, filled in by the cloud.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from vnode import errors, models
from vnode.kube import objects
from vnode.node import resources

if TYPE_CHECKING:
    from vnode.node.spec import Target

__all__ = ["CLOUD_FIELDS", "field", "files", "resource_field"]

CLOUD_FIELDS = {"status.podIP": models.FIELD_POD_IP, "status.podIPs": models.FIELD_POD_IP}


def field(pod: objects.Pod, path: str, target: Target) -> str:
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name or target.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.hostIP": target.node_ip,
        "status.hostIPs": target.node_ip,
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if match:
        source = meta.labels if match.group(1) == "labels" else meta.annotations
        return source.get(match.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        source = meta.labels if path == "metadata.labels" else meta.annotations
        return "\n".join(f'{k}="{v}"' for k, v in sorted(source.items()))
    if path in CLOUD_FIELDS:  # the API server allows these in env only, never in downwardAPI volumes
        raise errors.InvalidSpec(f"fieldRef {path!r} is supported in env only")
    raise errors.InvalidSpec(f"fieldRef {path!r} is not supported")


def resource_field(
    pod: objects.Pod, ref: objects.ResourceFieldSelector, default_container: str, size: resources.Size
) -> str:
    name = ref.container_name or default_container
    container = next((c for c in [*pod.spec.containers, *pod.spec.init_containers] if c.name == name), None)
    if container is None:
        raise errors.InvalidSpec(f"resourceFieldRef names unknown container {name!r}")
    kind, _, resource = ref.resource.partition(".")
    table = container.resources.limits if kind == "limits" else container.resources.requests
    text = table.get(resource) or (container.resources.limits.get(resource) if kind == "requests" else None)
    if resource == "cpu":
        value = resources.cpu(text) if text else size.cpu
        divisor = resources.cpu(ref.divisor) if ref.divisor else 1.0
    elif resource == "memory":
        value = resources.memory_bytes(text) if text else size.memory_gib * resources.GIB
        divisor = resources.memory_bytes(ref.divisor) if ref.divisor else 1.0
    elif resource == "ephemeral-storage":
        value = resources.memory_bytes(text) if text else 0.0
        divisor = resources.memory_bytes(ref.divisor) if ref.divisor else 1.0
    else:
        raise errors.InvalidSpec(f"resourceFieldRef {ref.resource!r} is not supported")
    return str(resources.ceil_div(value, divisor))


def files(
    pod: objects.Pod, volume: objects.DownwardAPIVolume, target: Target, size: resources.Size
) -> list[models.KeyToPath]:
    files = []
    for item in volume.items:
        if item.resource_field_ref is not None:  # a container's limit or request, as in env
            value = resource_field(pod, item.resource_field_ref, "", size)
        elif item.field_ref is not None:
            value = field(pod, item.field_ref.field_path, target)
        else:
            raise errors.InvalidSpec(
                f"downwardAPI volume: item {item.path!r} has neither fieldRef nor resourceFieldRef"
            )
        files.append(models.KeyToPath(item.path, value.encode(), item.mode or volume.default_mode))
    return files
