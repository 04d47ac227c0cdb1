"""Typed partial views of the Kubernetes objects vnode reads, decoded from raw JSON by msgspec.

Only the fields vnode uses are declared; the rest of each object is skipped while decoding,
which is what makes a watch event cost ~10 µs instead of the ~500 µs of the official
client's ``V1Pod`` (see docs/benchmarks.md). What vnode *writes* is built as plain JSON
(patches), so these structs are never encoded back; the pod status declares exactly the fields
vnode writes, so that what a pod shows compares with what vnode would write.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from vnode.kube import podfields

__all__ = [
    "CertificateSigningRequest",
    "ConfigMap",
    "Container",
    "ContainerState",
    "ContainerStatus",
    "Lease",
    "List",
    "Namespace",
    "Node",
    "ObjectMeta",
    "Pod",
    "PodCondition",
    "PodSpec",
    "PodStatus",
    "Secret",
    "Service",
    "Status",
    "Volume",
    "WatchEvent",
]


class _S(msgspec.Struct, rename="camel", kw_only=True, gc=False):
    """Plain data, in no reference cycle: untracked by the garbage collector (a node caches thousands)."""


class OwnerReference(_S):
    kind: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    controller: bool | None = None


class ObjectMeta(_S):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    owner_references: list[OwnerReference] = []
    finalizers: list[str] = []

    def controlled_by(self, *kinds: str) -> OwnerReference | None:  # the controlling owner, if of ``kinds``
        return next((o for o in self.owner_references if o.controller and o.kind in kinds), None)


class KeySelector(_S):
    name: str = ""
    key: str = ""
    optional: bool | None = None


class ObjectFieldSelector(_S):
    field_path: str
    api_version: str = "v1"


class ResourceFieldSelector(_S):
    resource: str
    container_name: str = ""
    divisor: str | None = None


class EnvVarSource(_S):
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None


class EnvVar(_S):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


class LocalRef(_S):
    name: str = ""
    optional: bool | None = None


class EnvFromSource(_S):
    prefix: str = ""
    config_map_ref: LocalRef | None = None
    secret_ref: LocalRef | None = None


class ContainerPort(_S):
    container_port: int
    protocol: str = "TCP"
    name: str = ""


class Resources(_S):
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}


# Probes and lifecycle hooks are declared in podfields (to keep this module small).
ExecAction = podfields.ExecAction
HTTPHeader = podfields.HTTPHeader
HTTPGetAction = podfields.HTTPGetAction
TCPSocketAction = podfields.TCPSocketAction
SleepAction = podfields.SleepAction
Probe = podfields.Probe
LifecycleHandler = podfields.LifecycleHandler
Lifecycle = podfields.Lifecycle


class VolumeMount(_S):
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""


class Container(_S):
    name: str
    image: str = ""
    command: list[str] = []
    args: list[str] = []
    env: list[EnvVar] = []
    env_from: list[EnvFromSource] = []
    ports: list[ContainerPort] = []
    resources: Resources = msgspec.field(default_factory=Resources)
    working_dir: str = ""
    volume_mounts: list[VolumeMount] = []
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    image_pull_policy: str = "IfNotPresent"
    stdin: bool = False
    tty: bool = False
    restart_policy: str | None = None  # "Always" marks a native sidecar init container
    security_context: podfields.SecurityContext | None = None
    lifecycle: Lifecycle | None = None
    termination_message_path: str = "/dev/termination-log"
    termination_message_policy: str = "File"
    # Present so that node/fields.py sees them set (a field a provider does not map is refused).
    restart_policy_rules: list[dict[str, Any]] = []
    volume_devices: list[dict[str, Any]] = []
    stdin_once: bool = False


class KeyToPath(_S):
    key: str
    path: str
    mode: int | None = None


class ConfigMapVolume(_S):
    name: str = ""
    items: list[KeyToPath] = []
    optional: bool | None = None
    default_mode: int | None = None


class SecretVolume(_S):
    secret_name: str = ""
    name: str = ""  # the projected form names it "name"
    items: list[KeyToPath] = []
    optional: bool | None = None
    default_mode: int | None = None


class EmptyDirVolume(_S):
    medium: str = ""
    size_limit: str | None = None


class DownwardAPIFile(_S):
    path: str
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    mode: int | None = None


class DownwardAPIVolume(_S):
    items: list[DownwardAPIFile] = []
    default_mode: int | None = None


class ServiceAccountTokenProjection(_S):
    path: str
    audience: str = ""
    expiration_seconds: int = 3600


class VolumeProjection(_S):
    config_map: ConfigMapVolume | None = None
    secret: SecretVolume | None = None
    service_account_token: ServiceAccountTokenProjection | None = None
    downward_api: DownwardAPIVolume | None = msgspec.field(default=None, name="downwardAPI")


class ProjectedVolume(_S):
    sources: list[VolumeProjection] = []
    default_mode: int | None = None


class PersistentVolumeClaimVolume(_S):
    claim_name: str = ""
    read_only: bool = False


class Volume(_S):
    name: str
    empty_dir: EmptyDirVolume | None = None
    config_map: ConfigMapVolume | None = None
    secret: SecretVolume | None = None
    projected: ProjectedVolume | None = None
    downward_api: DownwardAPIVolume | None = msgspec.field(default=None, name="downwardAPI")
    persistent_volume_claim: PersistentVolumeClaimVolume | None = None
    # Types no elastic-container cloud mounts; present only so the pod can fail fast naming them.
    host_path: dict[str, Any] | None = None
    nfs: dict[str, Any] | None = None
    csi: dict[str, Any] | None = None
    ephemeral: dict[str, Any] | None = None
    iscsi: dict[str, Any] | None = None
    git_repo: dict[str, Any] | None = None
    image: dict[str, Any] | None = None


class ReadinessGate(_S):
    condition_type: str = ""


class PodSpec(_S):
    node_name: str = ""
    containers: list[Container] = []
    init_containers: list[Container] = []
    volumes: list[Volume] = []
    restart_policy: str = "Always"
    service_account_name: str = ""
    termination_grace_period_seconds: int | None = None
    hostname: str = ""
    subdomain: str = ""
    host_network: bool = False
    host_aliases: list[podfields.HostAlias] = []
    dns_policy: str = "ClusterFirst"
    dns_config: podfields.PodDNSConfig | None = None
    security_context: podfields.PodSecurityContext | None = None
    image_pull_secrets: list[LocalRef] = []
    # Present so that node/fields.py sees them set (a field a provider does not map is refused).
    ephemeral_containers: list[dict[str, Any]] = []
    active_deadline_seconds: int | None = None
    host_pid: bool = msgspec.field(default=False, name="hostPID")
    host_ipc: bool = msgspec.field(default=False, name="hostIPC")
    share_process_namespace: bool | None = None
    readiness_gates: list[ReadinessGate] = []
    runtime_class_name: str | None = None
    set_hostname_as_fqdn: bool | None = msgspec.field(default=None, name="setHostnameAsFQDN")
    os: dict[str, Any] | None = None
    host_users: bool | None = None
    resource_claims: list[dict[str, Any]] = []
    resources: dict[str, Any] | None = None
    hostname_override: str | None = None


# The pod status: exactly the fields vnode writes (node/status.py), so that what a pod shows
# can be compared with what vnode would write; the rest (qosClass, resources...) is skipped.
# Zero values stand for absent fields, as the API server omits most of them when empty.


class ContainerStateWaiting(_S):
    reason: str = ""
    message: str = ""


class ContainerStateRunning(_S):
    started_at: str | None = None


class ContainerStateTerminated(_S):
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    container_id: str = msgspec.field(default="", name="containerID")


class ContainerState(_S):
    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(_S):
    name: str = ""
    image: str = ""
    image_id: str = msgspec.field(default="", name="imageID")
    state: ContainerState = msgspec.field(default_factory=ContainerState)
    last_state: ContainerState = msgspec.field(default_factory=ContainerState)
    ready: bool = False
    restart_count: int = 0
    started: bool | None = None
    container_id: str = msgspec.field(default="", name="containerID")


class PodCondition(_S):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class PodIP(_S):
    ip: str = ""


class PodStatus(_S):
    phase: str = ""
    reason: str = ""
    message: str = ""
    conditions: list[PodCondition] = []
    host_ip: str = msgspec.field(default="", name="hostIP")
    host_ips: list[PodIP] = msgspec.field(default_factory=list, name="hostIPs")
    pod_ip: str = msgspec.field(default="", name="podIP")
    pod_ips: list[PodIP] = msgspec.field(default_factory=list, name="podIPs")
    start_time: str | None = None
    container_statuses: list[ContainerStatus] = []
    init_container_statuses: list[ContainerStatus] = []
    ephemeral_container_statuses: list[ContainerStatus] = []


class Pod(_S):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def phase(self) -> str:
        return self.status.phase or "Pending"


class ConfigMap(_S):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    data: dict[str, str] = {}
    binary_data: dict[str, str] = {}


class Secret(_S):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    data: dict[str, str] = {}  # base64
    type: str = ""


class ServiceSpec(_S):
    cluster_ip: str = msgspec.field(default="", name="clusterIP")


class Service(_S):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: ServiceSpec = msgspec.field(default_factory=ServiceSpec)


class NodeSpec(_S):
    unschedulable: bool = False
    taints: list[dict[str, Any]] = []


class Node(_S):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: dict[str, Any] = {}


class LeaseSpec(_S):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    renew_time: str | None = None
    acquire_time: str | None = None


class Lease(_S):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: LeaseSpec = msgspec.field(default_factory=LeaseSpec)


class ListMeta(_S):
    resource_version: str = ""
    # "continue" is a Python keyword.
    continue_: str = msgspec.field(default="", name="continue")


T = TypeVar("T")


class List(_S, Generic[T]):
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[T] = []


class Status(_S):
    """The API server's error body."""

    code: int = 0
    reason: str = ""
    message: str = ""
    details: dict[str, Any] = {}


class WatchEvent(_S, Generic[T]):
    """One line of a watch stream, decoded in one pass into the object's own type."""

    type: str
    object: T


class Namespace(_S):
    """All vnode reads of a namespace: its name, labels and resourceVersion."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


class Condition(_S):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""


class CertificateSigningRequestStatus(_S):
    conditions: list[Condition] = []
    certificate: str = ""  # base64 PEM, once signed


class CertificateSigningRequest(_S):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: CertificateSigningRequestStatus = msgspec.field(default_factory=CertificateSigningRequestStatus)
