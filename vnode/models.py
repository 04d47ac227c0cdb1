"""The values that cross the line between the node controller and a provider.

The node package derives an :class:`InstanceSpec` from a pod (env resolved, volumes checked,
resources rounded to a cloud size); a provider turns it into a cloud instance and reports
:class:`InstanceState` values back. Both are frozen, provider-neutral and free of Kubernetes
types, so a provider never builds a pod status and the node package never parses a cloud's
JSON. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import sys
from collections.abc import Mapping

__all__ = [
    "FIELD_POD_IP",
    "TAG_CLUSTER",
    "TAG_NAME",
    "TAG_NAMESPACE",
    "TAG_NODE",
    "TAG_POD_UID",
    "ContainerSpec",
    "ContainerState",
    "ContainerStatus",
    "DnsOption",
    "EnvVar",
    "EventType",
    "Handler",
    "HostAlias",
    "InstanceEvent",
    "InstanceSpec",
    "InstanceState",
    "InstanceStatus",
    "KeyToPath",
    "Notice",
    "Placement",
    "Port",
    "Probe",
    "Quota",
    "RegistryCredential",
    "Sysctl",
    "VolumeMount",
    "VolumeSpec",
    "shared",
]

# Tags every instance carries, so that the node's bulk listing and orphan collection can find
# exactly its own instances (and never another cluster's or node's).
TAG_CLUSTER = "vnode.io/cluster"
TAG_NODE = "vnode.io/node"
TAG_NAMESPACE = "vnode.io/namespace"
TAG_NAME = "vnode.io/name"
TAG_POD_UID = "vnode.io/pod-uid"


# The one field of the instance itself that a cloud can put into a container's env: its IP,
# which the cloud allocates only when it creates the instance (ECI's EnvironmentVar FieldRef).
FIELD_POD_IP = "status.podIP"


@dataclasses.dataclass(frozen=True, slots=True)
class EnvVar:
    """One environment variable with its value already resolved (ConfigMap, Secret, fieldRef...),
    or, when ``field_path`` is set, left for the cloud to fill in from that field of the instance
    (only :data:`FIELD_POD_IP`); ``value`` is then empty. A provider whose cloud cannot do that
    substitutes the value itself or refuses the spec with ``InvalidSpec``, never sends it empty."""

    name: str
    value: str = ""
    field_path: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Port:
    container_port: int
    protocol: str = "TCP"
    name: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """A liveness, readiness or startup probe; exactly one of exec/http/tcp is set."""

    exec_command: tuple[str, ...] = ()
    http_path: str | None = None
    http_port: int | None = None
    http_scheme: str = "HTTP"
    tcp_port: int | None = None
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Handler:
    """A lifecycle hook (``postStart``/``preStop``): exactly one of exec/http/tcp is set; an empty
    host means the instance's own address, as in the kubelet."""

    exec_command: tuple[str, ...] = ()
    http_path: str | None = None
    http_port: int | None = None
    http_scheme: str = "HTTP"
    http_host: str = ""
    http_headers: tuple[tuple[str, str], ...] = ()  # (name, value)
    tcp_port: int | None = None
    tcp_host: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class KeyToPath:
    """One file of a configMap/secret/projected volume, its content already resolved."""

    path: str
    content: bytes
    mode: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class VolumeSpec:
    """A volume the cloud supports: ``emptyDir`` (optionally in memory), ``files`` (configMap,
    secret, projected service-account token, all delivered as file contents), ``nfs`` (an NFS
    share, from a PersistentVolume), ``disk`` (a cloud disk, from a PersistentVolume of its CSI
    driver) or ``share`` (a pod's inline CSI volume of a driver the provider maps: its
    ``attributes`` as the pod gives them, and in ``files`` the content of the Secret it names,
    which the provider reads its credentials from). A provider declares the kinds it maps
    (``Profile.volume_kinds``)."""

    name: str
    kind: str  # "emptyDir" | "files" | "nfs" | "disk" | "share"
    files: tuple[KeyToPath, ...] = ()
    medium: str = ""
    size_limit_gib: float | None = None
    server: str = ""  # nfs: the server
    path: str = ""  # nfs: the exported path
    read_only: bool = False  # nfs, disk: mounted read-only
    disk_id: str = ""  # disk: the cloud's disk ID (the CSI volumeHandle)
    fs_type: str = ""  # disk: the file system ("" : the cloud's default)
    size_gib: int = 0  # disk: its capacity in GiB (0: unknown)
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # share: the CSI volumeAttributes


@dataclasses.dataclass(frozen=True, slots=True)
class HostAlias:
    """An ``/etc/hosts`` entry of the instance: an IP and its names."""

    ip: str
    hostnames: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class DnsOption:
    """A resolv.conf option (``ndots:5`` is name ``ndots``, value ``5``; ``value`` empty for a flag)."""

    name: str
    value: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Sysctl:
    """A namespaced kernel parameter of the instance (pod ``securityContext.sysctls``)."""

    name: str
    value: str


@dataclasses.dataclass(frozen=True, slots=True)
class RegistryCredential:
    """A login to one image registry (``server`` a host, ``docker.io`` for Docker Hub)."""

    server: str
    username: str
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[Port, ...] = ()
    working_dir: str = ""
    volume_mounts: tuple[VolumeMount, ...] = ()
    cpu: float = 0.0  # vCPU requested for this container (0: share the instance's)
    memory_gib: float = 0.0
    image_pull_policy: str = "IfNotPresent"
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    stdin: bool = False
    tty: bool = False
    # The effective security context (the container's own over the pod's): the uid and gid the
    # processes run as (None: the image's), capabilities added and dropped, a read-only root
    # filesystem, and whether a process may gain privileges (None: the runtime's default).
    run_as_user: int | None = None
    run_as_group: int | None = None
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    read_only_root_filesystem: bool = False
    allow_privilege_escalation: bool | None = None
    gpus: int = 0  # nvidia.com/gpu: the instance's GPUs this container uses
    post_start: Handler | None = None  # run right after the container starts
    pre_stop: Handler | None = None  # run before it is stopped, within the grace period
    # Where the container writes its termination message, and File or FallbackToLogsOnError
    # (the tail of its log when it failed without writing one).
    termination_message_path: str = "/dev/termination-log"
    termination_message_policy: str = "File"


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """Where an instance may go: candidate vSwitches (each in a zone) in order, and how to choose."""

    vswitches: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    security_group: str = ""
    strategy: str = "VSwitchOrdered"  # or "VSwitchRandom"


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceSpec:
    """Everything a provider needs to create one instance for one pod.

    ``client_token`` is derived from the pod UID: creating twice with the same token must yield
    the same instance. ``cpu``/``memory_gib`` are already rounded to a size the cloud sells.
    """

    name: str
    client_token: str
    containers: tuple[ContainerSpec, ...]
    cpu: float
    memory_gib: float
    init_containers: tuple[ContainerSpec, ...] = ()
    volumes: tuple[VolumeSpec, ...] = ()
    restart_policy: str = "Always"  # Always | OnFailure | Never
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    placement: Placement = dataclasses.field(default_factory=Placement)
    instance_type: str = ""  # an explicit cloud type from the eci-use-specs annotation, if any
    termination_grace_seconds: int = 30
    hostname: str = ""
    dns_nameservers: tuple[str, ...] = ()
    # The resolv.conf the instance gets, as the kubelet would write it for the pod's dnsPolicy and
    # dnsConfig (empty: the cloud's own resolver), and its /etc/hosts additions.
    dns_searches: tuple[str, ...] = ()
    dns_options: tuple[DnsOption, ...] = ()
    host_aliases: tuple[HostAlias, ...] = ()
    sysctls: tuple[Sysctl, ...] = ()
    registry_credentials: tuple[RegistryCredential, ...] = ()
    # The pod's annotations the provider reads (those under its profile's annotation_prefixes).
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


class InstanceStatus(enum.StrEnum):
    """A provider-neutral instance status; each provider maps its cloud's words onto these."""

    SCHEDULING = "Scheduling"  # waiting for capacity
    PENDING = "Pending"  # placed; pulling images, starting
    RUNNING = "Running"
    RESTARTING = "Restarting"
    UPDATING = "Updating"
    TERMINATING = "Terminating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    EXPIRED = "Expired"  # reclaimed (spot) or expired
    SCHEDULE_FAILED = "ScheduleFailed"  # the cloud gave up placing it


class Notice(enum.StrEnum):
    """A cloud's advance word about an instance, provider-neutral (each provider maps its own event)."""

    RECLAIM = "Reclaim"  # the cloud takes the (spot) instance back soon: ECI's SpotToBeReleased


class ContainerState(enum.StrEnum):
    WAITING = "Waiting"
    RUNNING = "Running"
    TERMINATED = "Terminated"


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerStatus:
    name: str
    state: ContainerState
    image: str = ""
    image_id: str = ""
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    restart_count: int = 0
    ready: bool = False
    # The previous run, when the container restarted: its exit code, reason and times.
    last_exit_code: int | None = None
    last_reason: str = ""
    last_started_at: datetime.datetime | None = None
    last_finished_at: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceEvent:
    """Something the cloud reports about an instance. Kubelet words where the cloud has them
    (Pulling, Pulled, Created, Started, Killing, BackOff, Failed) and the cloud's own warnings
    (NoStock, OOMKilled, ...). ``container`` is empty for instance-wide events."""

    reason: str
    message: str
    type: EventType = EventType.NORMAL
    timestamp: datetime.datetime | None = None
    container: str = ""
    count: int = 1
    notice: Notice | None = None  # the cloud's advance word this event carries, mapped by the provider


def shared(value: object) -> str:
    """``str(value)``, one copy for everyone who asks: for a provider's strings that instances repeat
    (an image, a zone, a tag's key, an event's reason or message). A decoder makes a new copy of
    each for every instance described, and a node keeps the state of each of its instances; shared,
    they cost a node about 1.3 KB less per instance. Interned strings are freed once unused.
    """
    return sys.intern(str(value))


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceState:
    """What the cloud says about one instance right now."""

    id: str
    status: InstanceStatus
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    containers: tuple[ContainerStatus, ...] = ()
    init_containers: tuple[ContainerStatus, ...] = ()
    ip: str = ""
    zone: str = ""
    vswitch: str = ""
    created_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    reason: str = ""
    message: str = ""
    events: tuple[InstanceEvent, ...] = ()
    cpu: float = 0.0
    memory_gib: float = 0.0
    instance_type: str = ""  # the type the cloud runs it on, when it names one (a GPU type, say)
    # GPUs the cloud attached to its containers, all together, when it attaches them per container
    # (its GPU model is then ``instance_type``, one of the profile's ``gpu_skus``).
    gpus: int = 0
    # Annotations the cloud puts on the pod (a public address it allocated, say); written once.
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    interruptible: bool = False  # the cloud may take it back (spot; ECI gives a notice): watch its events
    # What the cloud bills it per hour when that is not the profile's list price (a spot instance: the
    # market price it was bought at, as near as the provider can tell); 0: the list price.
    hourly_price: float = 0.0

    @property
    def pod_uid(self) -> str:
        return self.tags.get(TAG_POD_UID, "")


@dataclasses.dataclass(frozen=True, slots=True)
class Quota:
    """What the account may still run; ``None`` means the cloud did not say."""

    cpu: float | None = None
    memory_gib: float | None = None
    pods: int | None = None
    gpus: int | None = None  # nvidia.com/gpu
