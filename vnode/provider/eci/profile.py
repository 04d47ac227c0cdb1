"""What the core knows of Alibaba ECI: its settings, sizes, limits, prices, names and labels."""

from __future__ import annotations

from vnode.provider import profile
from vnode.provider.eci import config

__all__ = ["PROFILE", "SIZES"]

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
    taint="alibabacloud",
    container_id_scheme="eci",
    region=config.region,
    placement=config.placement,
    quota=config.quota,
    specs_annotation="k8s.aliyun.com/eci-use-specs",
    live_configmap="kube-system/eci-profile",
    volume_kinds=frozenset({"emptyDir", "files", "nfs", "disk"}),
    # Alibaba Cloud's CSI plugins: a disk (the volumeHandle is its ID) and a NAS share (server, path).
    csi_drivers={"diskplugin.csi.alibabacloud.com": "disk", "nasplugin.csi.alibabacloud.com": "nfs"},
    pod_fields=POD_FIELDS,
    labels=(("alibabacloud.com/eci", "true"),),
    operator="vnode.provider.eci.operator:run",
)
