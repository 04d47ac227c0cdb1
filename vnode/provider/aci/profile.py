"""What the core knows of Azure ACI: its settings, limits, prices, names and labels.

ACI bills a container group by the vCPU and GiB it requests, in steps small enough that
vnode does not round: a pod gets what it asks for (or the default size).
"""

from __future__ import annotations

from vnode.provider import profile
from vnode.provider.aci import config

__all__ = ["GPU_SKUS", "PROFILE", "SPOT_DISCOUNT"]

#: What a Spot container group (``properties.priority: Spot``) is counted at below the list price. ACI
#: says only that Spot containers "cost up to 70% less", publishes no Spot price and shows none on a
#: group, so vnode takes that bound as the discount: its assumption (the simulator bills exactly it).
SPOT_DISCOUNT = 0.70

#: ACI's GPU SKUs (Linux only, no virtual network), the default first: per GPU count (1, 2, 4), the
#: most vCPU and GB a container group with that many may ask (ACI's published maxima). The first is
#: the default of a pod that names none: vnode's choice (azure-aci takes the region's first SKU). The
#: per-GPU prices are estimates of the order of Azure's NC-series list prices (about 0.9, 2.1 and 3.1
#: USD an hour for one K80, P100, V100), not published ACI figures.
GPU_SKUS = (
    profile.GpuSku("K80", {1: profile.Size(6, 56), 2: profile.Size(12, 112), 4: profile.Size(24, 224)}, 0.00025),
    profile.GpuSku("P100", {1: profile.Size(6, 112), 2: profile.Size(12, 224), 4: profile.Size(24, 448)}, 0.00058),
    profile.GpuSku("V100", {1: profile.Size(6, 112), 2: profile.Size(12, 224), 4: profile.Size(24, 448)}, 0.00085),
)

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
        "securityContext.runAsGroup",
        "containers.securityContext.runAsUser",
        "containers.securityContext.runAsGroup",
        "containers.securityContext.capabilities.add",
        "containers.securityContext.capabilities.drop",
        "containers.securityContext.allowPrivilegeEscalation",
    }
)

PROFILE = profile.Profile(
    name="aci",
    factory="vnode.provider.aci.provider:create",
    settings=config.AciSettings,
    credentials_named=config.credentials_named,
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
    volume_kinds=frozenset({"emptyDir", "files", "share"}),
    # Azure Files, as a pod's inline csi volume (azure-aci's way): its shareName, and the Secret of its
    # storage account (azurestorageaccountname, azurestorageaccountkey): vnode/provider/aci/mapping.py.
    csi_drivers={"file.csi.azure.com": "share"},
    pod_fields=POD_FIELDS,
    ignored_fields={
        "terminationGracePeriodSeconds": (
            "ACI's API takes no grace period: the container group is deleted at once and ACI stops its"
            " containers its own way (the pod stays Terminating until the group is gone)"
        ),
    },
    labels=(),
    # azure-aci's virtual-kubelet.io/gpu-type (GPU SKU) and virtualkubelet.io/dnsnamelabel (both
    # spellings are azure-aci's), and vnode's own vnode.io/aci-* (priority): mapping.py.
    annotation_prefixes=("virtual-kubelet.io/", "virtualkubelet.io/", "vnode.io/aci-"),
    gpu_skus=GPU_SKUS,
)
