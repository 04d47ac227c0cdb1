"""What the core knows of Azure ACI: its settings, limits, prices, names and labels.

ACI bills a container group by the vCPU and GiB it requests, in steps small enough that
vnode does not round: a pod gets what it asks for (or the default size).
"""

from __future__ import annotations

from vnode.provider import profile
from vnode.provider.aci import config

__all__ = ["PROFILE"]

#: The pod-spec fields a container group carries (``spec.`` omitted); the others are not mapped.
POD_FIELDS = frozenset(
    {
        "containers",
        "initContainers",
        "containers.name",
        "containers.image",
        "containers.command",
        "containers.args",
        "containers.env",
        "containers.ports",
        "containers.volumeMounts",
        "containers.resources",
        "containers.livenessProbe",
        "containers.readinessProbe",
        "volumes",
        "restartPolicy",
        "imagePullSecrets",
        "dnsPolicy",
        "dnsConfig.nameservers",
        "dnsConfig.searches",
        "dnsConfig.options",
        "securityContext.runAsUser",
        "containers.securityContext.runAsUser",
        "containers.securityContext.capabilities.add",
    }
)

PROFILE = profile.Profile(
    name="aci",
    factory="vnode.provider.aci.provider:create",
    settings=config.AciSettings,
    env=config.ENV,
    flags=config.FLAGS,
    default_size=profile.Size(2, 4),
    limits=profile.Limits(max_containers=60, max_volumes=20),
    # ACI's published Linux pay-as-you-go price per second (vCPU, GB).
    prices=profile.Prices(per_vcpu_second=0.0000113, per_gib_second=0.0000012),
    taint="azure",
    container_id_scheme="aci",
    region=config.region,
    placement=config.placement,
    quota=config.quota,
    live_configmap="kube-system/eci-profile",  # the name the chart creates, for every provider
    volume_kinds=frozenset({"emptyDir", "files"}),
    pod_fields=POD_FIELDS,
    ignored_fields={
        "terminationGracePeriodSeconds": (
            "ACI's API takes no grace period: the container group is deleted at once and ACI stops its"
            " containers its own way (the pod stays Terminating until the group is gone)"
        ),
    },
    labels=(),
    # vnode.io/aci-priority and azure-aci's virtualkubelet.io/dnsnamelabel (mapping.py).
    annotation_prefixes=("vnode.io/aci-", "virtualkubelet.io/"),
)
