"""The cloud's own values: what a create asks for, and the record of one instance as it lives.

msgspec Structs: they encode to the store in microseconds and weigh little, which matters at
30,000 live instances. Times are simulated epoch seconds (see ``clock``).
"""

from __future__ import annotations

import re

import msgspec

# Instance (container group) statuses, as ECI names them.
SCHEDULING = "Scheduling"
PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
RESTARTING = "Restarting"
UPDATING = "Updating"  # UpdateContainerGroup: a short stage, then back to Running
TERMINATING = "Terminating"
EXPIRED = "Expired"
SCHEDULE_FAILED = "ScheduleFailed"
STOPPED = "Stopped"  # not an ECI status: ACI's stop (containers ended, compute released) until started again
TERMINAL = frozenset({SUCCEEDED, FAILED, EXPIRED, SCHEDULE_FAILED})
IDLE = TERMINAL | {STOPPED}  # holds no vCPU of the quota, is not billed, has no next step
STATUSES = (
    SCHEDULING,
    PENDING,
    RUNNING,
    SUCCEEDED,
    FAILED,
    RESTARTING,
    UPDATING,
    TERMINATING,
    EXPIRED,
    SCHEDULE_FAILED,
    STOPPED,
)

RESTART_POLICIES = ("Always", "OnFailure", "Never")


class Tag(msgspec.Struct, frozen=True, array_like=True):
    key: str
    value: str


# ECI's EnvironmentVar.N.FieldRef.FieldPath: the fields of the instance the cloud fills into an
# env var (the SDK's models say "Only `status.podIP` is supported").
ENV_FIELDS = frozenset({"status.podIP"})


class EnvVar(msgspec.Struct, frozen=True, array_like=True):
    """A container's env var: a value, or (``field_path``) a field of the instance filled in by the cloud."""

    key: str
    value: str
    field_path: str = ""


class Port(msgspec.Struct, frozen=True, array_like=True):
    port: int
    protocol: str = "TCP"


class NameValue(msgspec.Struct, frozen=True, array_like=True):
    """A DNS option or a sysctl: a name and its value (empty for a flag option)."""

    name: str
    value: str = ""


class HostAlias(msgspec.Struct, frozen=True, array_like=True):
    ip: str
    hostnames: tuple[str, ...]


class RegistryCredential(msgspec.Struct, frozen=True, array_like=True):
    """ImageRegistryCredential.N: a login to one registry server."""

    server: str
    user_name: str
    password: str


class DnsConfig(msgspec.Struct, frozen=True, omit_defaults=True):
    name_servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[NameValue, ...] = ()


class Hook(msgspec.Struct, frozen=True, omit_defaults=True):
    """A lifecycle handler (postStart/preStop): a command, an HTTP GET or a TCP connection."""

    exec: tuple[str, ...] = ()
    http_path: str = ""
    http_port: int | None = None
    http_scheme: str = ""
    http_host: str = ""
    http_headers: tuple[NameValue, ...] = ()
    tcp_port: int | None = None
    tcp_host: str = ""


class Probe(msgspec.Struct, frozen=True, omit_defaults=True):
    """A liveness or readiness probe: a command, an HTTP GET or a TCP connection, and its timing."""

    exec: tuple[str, ...] = ()
    http_path: str = ""
    http_port: int | None = None
    http_scheme: str = ""
    tcp_port: int | None = None
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


class VolumeMount(msgspec.Struct, frozen=True, array_like=True):
    """Where a container mounts one of its instance's volumes."""

    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""


class ContainerSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[Port, ...] = ()
    cpu: float = 0.0
    memory: float = 0.0
    working_dir: str = ""
    image_pull_policy: str = "IfNotPresent"
    run_as_user: int | None = None  # SecurityContext.RunAsUser
    capabilities: tuple[str, ...] = ()  # SecurityContext.Capability.Add
    # ACI's securityContext only: runAsGroup, capabilities.drop, allowPrivilegeEscalation.
    run_as_group: int | None = None
    capabilities_drop: tuple[str, ...] = ()
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool = False
    gpu: int = 0  # Container.N.Gpu: GPUs of the instance's GPU type this container uses
    post_start: Hook | None = None  # LifecyclePostStartHandler*
    pre_stop: Hook | None = None  # LifecyclePreStopHandler*
    liveness_probe: Probe | None = None  # LivenessProbe.*
    readiness_probe: Probe | None = None  # ReadinessProbe.*
    termination_message_path: str = ""  # empty: the default, /dev/termination-log
    termination_message_policy: str = ""  # File (the default) or FallbackToLogsOnError
    volume_mounts: tuple[VolumeMount, ...] = ()


class ConfigFile(msgspec.Struct, frozen=True, array_like=True):
    """One file of a ConfigFileVolume: its path in the volume and its content (base64, as sent)."""

    path: str
    content: str
    mode: int | None = None


class Volume(msgspec.Struct, frozen=True, omit_defaults=True):
    """A volume of an instance: ``ConfigFileVolume`` (files), ``EmptyDirVolume``, ``NFSVolume`` (a NAS
    share: server and path) or ``DiskVolume`` (a cloud disk, attached to one instance at a time)."""

    name: str
    type: str
    files: tuple[ConfigFile, ...] = ()
    medium: str = ""
    size_limit: str = ""
    server: str = ""  # NFSVolume.Server
    path: str = ""  # NFSVolume.Path
    read_only: bool = False  # NFSVolume.ReadOnly
    disk_id: str = ""  # DiskVolume.DiskId
    fs_type: str = ""  # DiskVolume.FsType
    disk_size: int = 0  # DiskVolume.DiskSize, GiB (0: not given)


#: The GiB a disk is billed at when the create did not say its size (ECS's smallest ESSD).
DEFAULT_DISK_GIB = 20


class InstanceSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    """A create request, dialect-neutral. ``cpu``/``memory`` 0 means: sum of the containers'."""

    name: str
    containers: tuple[ContainerSpec, ...]
    vswitch_ids: tuple[str, ...]
    security_group_id: str
    init_containers: tuple[ContainerSpec, ...] = ()
    cpu: float = 0.0
    memory: float = 0.0
    restart_policy: str = "Always"
    zone: str = ""
    tags: tuple[Tag, ...] = ()
    client_token: str = ""
    schedule_strategy: str = "VSwitchOrdered"
    instance_type: str = ""
    volumes: tuple[Volume, ...] = ()
    host_name: str = ""
    dns_config: DnsConfig | None = None
    host_aliases: tuple[HostAlias, ...] = ()
    sysctls: tuple[NameValue, ...] = ()  # SecurityContext.Sysctl
    registry_credentials: tuple[RegistryCredential, ...] = ()
    image_snapshot_id: str = ""  # ECI's ImageSnapshotId: the image cache to use (it must be Ready)
    auto_match_image_cache: bool = False  # ECI's AutoMatchImageCache: use a Ready cache holding its images
    auto_create_eip: bool = False  # AutoCreateEip: a new EIP, released with the instance
    eip_bandwidth: int = 0  # EipBandwidth, Mbit/s (0: the default, 5)
    eip_instance_id: str = ""  # EipInstanceId: an existing EIP to bind (kept when the instance goes)
    spot_strategy: str = ""  # NoSpot (or empty), SpotAsPriceGo, SpotWithPriceLimit
    spot_price_limit: float = 0.0  # USD per hour, with SpotWithPriceLimit
    spot_duration: int = 1  # protection hours (0: none)
    priority: str = ""  # ACI's properties.priority: Regular or Spot (restarted in place when evicted: spot.py)
    termination_grace_seconds: float = 30.0  # TerminationGracePeriodSeconds: how long preStop hooks may run
    max_pending_seconds: float = 0.0  # a failed pull: ECI pulls again until Pending this long; 0: fails at once (ACI)


class Run(msgspec.Struct, frozen=True, omit_defaults=True):
    """One run of a container: its state and, once it ended, how. Replaced, never changed in place."""

    state: str = "Waiting"  # Waiting | Running | Terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0


class ContainerState(msgspec.Struct, omit_defaults=True):
    name: str
    current: Run = msgspec.field(default_factory=Run)
    previous: Run | None = None
    restart_count: int = 0
    ready: bool = False
    ends_at: float | None = None  # when the current run exits (None: runs until stopped)
    restart_at: float | None = None  # when a crashed container starts again
    done: bool = False  # terminated for good
    killed: bool = False  # the current run is being killed: its postStart hook failed (exit 137)


#: The events an instance keeps, newest last.
MAX_EVENTS = 50


class Event(msgspec.Struct, array_like=True):
    at: float
    type: str  # Normal | Warning
    reason: str
    message: str
    count: int = 1


class Instance(msgspec.Struct, omit_defaults=True):
    id: str
    seq: int
    spec: InstanceSpec
    region: str
    zone: str
    vswitch_id: str
    ip: str
    cpu: float  # the rounded spec it runs and is billed at
    memory: float
    created_at: float
    status: str = SCHEDULING
    status_at: float = 0.0  # when the status last changed
    changed_at: float = 0.0  # when anything a status poll shows last changed (SinceSecond polling)
    stage: str = "schedule"  # the next lifecycle step (see lifecycle.py)
    next_at: float | None = None
    expire_at: float | None = None
    containers: list[ContainerState] = msgspec.field(default_factory=list)
    events: list[Event] = msgspec.field(default_factory=list)
    started_at: float = 0.0
    succeeded_at: float = 0.0
    failed_at: float = 0.0
    bill_from: float | None = None  # billing runs from here (image pull) until stopped
    billed_seconds: float = 0.0  # closed billing intervals
    deleted_at: float | None = None
    update_tokens: list[str] = msgspec.field(default_factory=list)  # UpdateContainerGroup ClientTokens applied
    resume: tuple[str, float | None] | None = None  # (stage, next_at) to go back to after Updating
    image_cache_id: str = ""  # the image cache its images come from, chosen at create
    eip_id: str = ""  # the bound EIP, if any (eip.py)
    eip_address: str = ""  # its public address (InternetIp)
    eip_owned: bool = False  # made for this instance: billed with it, released with it
    spot_hourly: float = 0.0  # the spot price it was bought at, USD per hour (0: pay-as-you-go)
    spot_check_at: float | None = None  # the next reclamation check of a spot instance
    noticed_at: float | None = None  # when its reclamation was announced (SpotToBeReleased)
    pull_failures: int = 0  # failed pulls so far (ECI pulls again with back-off: pulls.py)

    def record(self, t: float, kind: str, reason: str, message: str) -> None:
        """Record an event; the same reason and message as the last one counts up instead."""
        last = self.events[-1] if self.events else None
        if last is not None and last.reason == reason and last.message == message:
            last.count += 1
            last.at = t
            return
        self.events.append(Event(at=t, type=kind, reason=reason, message=message))
        if len(self.events) > MAX_EVENTS:
            del self.events[0]

    def billable_seconds(self, now: float) -> float:
        running = (now - self.bill_from) if self.bill_from is not None else 0.0
        return self.billed_seconds + max(0.0, running)

    def disks(self) -> tuple[Volume, ...]:
        return tuple(v for v in self.spec.volumes if v.type == "DiskVolume")

    def disk_gib(self) -> float:
        """The GiB of cloud disk attached to it (billed while it is)."""
        return float(sum(v.disk_size or DEFAULT_DISK_GIB for v in self.disks()))

    def tag(self, key: str) -> str | None:
        for tag in self.spec.tags:
            if tag.key == key:
                return tag.value
        return None

    def environment(self, spec: ContainerSpec) -> dict[str, str]:
        """The env a container of this instance runs with: a base like an image's, then its own
        vars, a field reference filled in from the instance (``status.podIP`` is its IP)."""
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
        for var in spec.env:
            env[var.key] = self.ip if var.field_path == "status.podIP" else var.value
        return env


def tag_role(key: str) -> str:
    """What a tag names, from the last word of its key: ``node``, ``namespace``, ``name``, ``pod`` or "".

    ``vnode.io/node`` (ECI), ``NodeName`` or ``vnode-node`` (ARM forbids ``/`` in tag names) all say node.
    The simulator knows nothing of vnode: the console and the cost by namespace read tags this way.
    """
    word = _WORD.split(key.lower())[-1]
    return _ROLES.get(word, "")


_WORD = re.compile(r"[/.:_\-]")
_ROLES = {
    "node": "node",
    "nodename": "node",
    "namespace": "namespace",
    "podnamespace": "namespace",
    "name": "name",
    "podname": "name",
    "pod": "pod",
}


def namespace_of(inst: Instance) -> str:
    """The namespace an instance's tags name ("" if none)."""
    return next((tag.value for tag in inst.spec.tags if tag_role(tag.key) == "namespace"), "")
