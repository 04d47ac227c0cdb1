"""What the core knows of Alibaba ECI: its settings, sizes, limits, prices, names and labels."""

from __future__ import annotations

from vnode.provider import profile
from vnode.provider.eci import config, spot

__all__ = ["GPU_SIZES", "PROFILE", "SIZES"]

#: Every vCPU/GiB combination ECI sells, smallest first; a pod is billed as the smallest covering it
#: (7 vCPU / 13 GiB -> 8 / 16).
SIZES = profile.table(
    {
        0.25: (0.5, 1),
        0.5: (1, 2),
        1: (2, 4, 8),
        2: (1, 2, 4, 8, 16),
        4: (2, 4, 8, 16, 32),
        8: (4, 8, 16, 32, 64),
        12: (12, 24, 48, 96),
        16: (16, 32, 64, 128),
        24: (24, 48, 96, 192),
        32: (32, 64, 128, 256),
        52: (96, 192, 384),
        64: (128, 256, 512),
    }
)

#: The GPU instance types a pod asking for nvidia.com/gpu gets (without k8s.aliyun.com/eci-use-specs),
#: smallest first: ECS GPU families ECI runs (T4, V100, A10). The per-GPU prices are estimates of the
#: order of Alibaba's list prices (about 0.9, 2.7 and 1.4 USD an hour), not published ECI figures.
_T4, _V100, _A10 = 0.00025, 0.00075, 0.0004
GPU_SIZES = (
    profile.GpuSize("ecs.gn6i-c4g1.xlarge", 4, 15, 1, _T4),
    profile.GpuSize("ecs.gn7i-c8g1.2xlarge", 8, 30, 1, _A10),
    profile.GpuSize("ecs.gn6i-c8g1.2xlarge", 8, 31, 1, _T4),
    profile.GpuSize("ecs.gn6v-c8g1.2xlarge", 8, 32, 1, _V100),
    profile.GpuSize("ecs.gn6i-c16g1.4xlarge", 16, 62, 1, _T4),
    profile.GpuSize("ecs.gn6v-c8g1.4xlarge", 16, 64, 2, _V100),
    profile.GpuSize("ecs.gn6i-c24g1.12xlarge", 48, 186, 2, _T4),
    profile.GpuSize("ecs.gn6v-c8g1.8xlarge", 32, 128, 4, _V100),
    profile.GpuSize("ecs.gn6v-c8g1.16xlarge", 64, 256, 8, _V100),
)

#: The pod-spec fields CreateContainerGroup carries (``spec.`` omitted); the others are not mapped.
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
        "containers.workingDir",
        "containers.resources",
        "containers.stdin",
        "containers.tty",
        "containers.livenessProbe",
        "containers.readinessProbe",
        "containers.imagePullPolicy",
        "containers.lifecycle",
        "containers.terminationMessagePath",
        "containers.terminationMessagePolicy",
        "volumes",
        "restartPolicy",
        "hostname",
        "dnsConfig.nameservers",
        "dnsConfig.searches",
        "dnsConfig.options",
        "dnsPolicy",
        "hostAliases",
        "imagePullSecrets",
        "securityContext.runAsUser",
        "securityContext.sysctls",
        "containers.securityContext.runAsUser",
        "containers.securityContext.capabilities.add",
        "containers.securityContext.readOnlyRootFilesystem",
        "terminationGracePeriodSeconds",
    }
)

PROFILE = profile.Profile(
    name="eci",
    factory="vnode.provider.eci.provider:create",
    settings=config.EciSettings,
    env=config.ENV,
    env_aliases={"cluster_id": ("ECI_CLUSTER_ID",)},
    flags=config.FLAGS,
    sizes=SIZES,
    default_size=profile.Size(2, 4),
    limits=profile.Limits(max_containers=20, max_volumes=20),
    # ECI's published pay-as-you-go price, per second of the rounded size (see docs/daemon.md).
    prices=profile.Prices(per_vcpu_second=0.0000077, per_gib_second=0.00000096),
    credentials=config.load_credentials,
    credentials_named=config.credentials_named,
    taint="alibabacloud",
    container_id_scheme="eci",
    region=config.region,
    placement=config.placement,
    quota=config.quota,
    specs_annotation="k8s.aliyun.com/eci-use-specs",
    max_pending_annotation="k8s.aliyun.com/eci-max-pending-minute",  # ack-virtual-node's; 10 to 1440
    reclaim_eviction=(spot.RELEASE_STRATEGY, spot.API_EVICT),  # its meaning undocumented: read as its name says
    live_configmap="kube-system/eci-profile",
    volume_kinds=frozenset({"emptyDir", "files", "nfs", "disk"}),
    # Alibaba Cloud's CSI plugins: a disk (the volumeHandle is its ID) and a NAS share (server, path).
    csi_drivers={"diskplugin.csi.alibabacloud.com": "disk", "nasplugin.csi.alibabacloud.com": "nfs"},
    pod_fields=POD_FIELDS,
    labels=(("alibabacloud.com/eci", "true"),),
    operator="vnode.provider.eci.operator:run",
    annotation_prefixes=("k8s.aliyun.com/",),
    gpu_sizes=GPU_SIZES,
    gpu_capacity=100,
)
