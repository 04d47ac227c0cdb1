"""Every field of a pod's spec and what a virtual node does with it: mapped, emulated, ignored or refused.

A pod that works on a regular node must work on a virtual node or be refused with a reason the
user can act on, never run with a field silently dropped. :data:`POD` and :data:`CONTAINER`
list every field of ``PodSpec`` and ``Container`` of the Kubernetes version vnode is tested
against (tests/cluster/test_pod_fields.py compares them with the control plane's OpenAPI). A
field is *mapped* where the provider's profile declares it (``Profile.pod_fields``); otherwise
it gets the row's treatment when unmapped: *emulated* by the core with the kubelet's semantics,
*ignored* where a kubelet would itself do nothing on a virtual node (the scheduler's fields), or
*refused*. :func:`refusals` names every refused field a pod sets; a value the API server sets on
every pod (``dnsPolicy: ClusterFirst``...) is not "set". docs/pod-spec.md is rendered from here.

Pure: no I/O; reads the typed pod (``objects.Pod``), where a field the code does not use yet is
a loose placeholder (a dict) so that its presence survives decoding.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from vnode.kube import objects
from vnode.node import status

__all__ = ["CONTAINER", "POD", "POD_SUB", "REASON", "Field", "Treatment", "message", "refusals", "treatment"]

#: The reason of a refused pod's status, Ready condition and Warning event.
REASON = "UnsupportedField"


class Treatment(enum.StrEnum):
    MAPPED = "mapped"  # the provider carries it to its cloud
    EMULATED = "emulated"  # the core does it with the kubelet's semantics, whatever the provider
    IGNORED = "ignored-harmless"  # a kubelet would do nothing with it on a virtual node
    REFUSED = "refused"  # a pod setting it fails at once, naming it
    PARTS = "by-subfield"  # an object whose subfields have rows of their own (securityContext...)


@dataclasses.dataclass(frozen=True)
class Field:
    """One field: its path under ``spec`` (containers' fields under ``containers.``), what happens
    when its provider does not map it, why, and the value the API server gives a pod that omits it."""

    path: str
    unmapped: Treatment
    why: str
    default: Any = None
    attr: str = ""  # the attribute on the typed object when snake_case of the name is not it


E, IGN, R = Treatment.EMULATED, Treatment.IGNORED, Treatment.REFUSED
SCHEDULER = "the scheduler's: it placed the pod on the virtual node, the node has nothing to do"
NOT_MAPPED = "not mapped by this provider"
NON_ROOT = (
    "checked against runAsUser before the instance is made, as the kubelet checks it; without a runAsUser "
    "(the cloud does not tell the image's user) the pod is refused, saying so"
)

# fmt: off
POD: tuple[Field, ...] = (
    Field("volumes", R, NOT_MAPPED),
    Field("initContainers", R, NOT_MAPPED),
    Field("containers", R, NOT_MAPPED),
    Field("ephemeralContainers", R, status.EPHEMERAL),
    Field("restartPolicy", R, NOT_MAPPED, default="Always"),
    Field("terminationGracePeriodSeconds", R, "the instance is stopped without a grace period", default=30),
    Field("activeDeadlineSeconds", E, "once active that long the pod fails (DeadlineExceeded) and its instance is "
          "deleted, as on a kubelet"),
    Field("dnsPolicy", R, "the instance uses the cloud's DNS", default="ClusterFirst"),
    Field("dnsConfig", R, "the rows of its subfields say"),
    Field("nodeSelector", IGN, SCHEDULER),
    Field("serviceAccountName", E, "its token is requested for the pod and mounted as the kubelet does, and "
          "renewed at 80 % of its life where the provider can update volumes"),
    Field("serviceAccount", E, "the deprecated alias of serviceAccountName"),
    Field("automountServiceAccountToken", IGN, "admission adds (or not) the token volume vnode mounts"),
    Field("nodeName", E, "the node runs the pods bound to it, like a kubelet"),
    Field("hostNetwork", R, "virtual nodes have no host network", default=False),
    Field("hostPID", R, "virtual nodes have no host PID namespace", default=False, attr="host_pid"),
    Field("hostIPC", R, "virtual nodes have no host IPC namespace", default=False, attr="host_ipc"),
    Field("shareProcessNamespace", R, "containers of the instance do not share a PID namespace", default=False),
    Field("securityContext", R, "the rows of its subfields say"),
    Field("imagePullSecrets", R, "no registry credentials are given to the cloud"),
    Field("hostname", R, NOT_MAPPED),
    Field("subdomain", IGN, "the pod's DNS name comes from its headless Service's endpoints, not the node"),
    Field("affinity", IGN, SCHEDULER),
    Field("schedulerName", IGN, SCHEDULER, default="default-scheduler"),
    Field("tolerations", IGN, SCHEDULER),
    Field("hostAliases", R, "the instance's /etc/hosts is the cloud's"),
    Field("priorityClassName", IGN, SCHEDULER),
    Field("priority", IGN, SCHEDULER),
    Field("readinessGates", E, "the pod is Ready only once every gate's condition is True, as on a kubelet"),
    Field("runtimeClassName", R, "the cloud chooses the container runtime"),
    Field("enableServiceLinks", IGN, "no <SVC>_SERVICE_HOST variables are added, on or off: use the cluster's DNS",
          default=True),
    Field("preemptionPolicy", IGN, SCHEDULER, default="PreemptLowerPriority"),
    Field("overhead", IGN, "the scheduler's accounting of the RuntimeClass"),
    Field("topologySpreadConstraints", IGN, SCHEDULER),
    Field("setHostnameAsFQDN", R, "the instance's hostname is its short name", default=False,
          attr="set_hostname_as_fqdn"),
    Field("os", R, "virtual nodes run Linux instances", default={"name": "linux"}),
    Field("hostUsers", R, "the instance's user namespace is the cloud's", default=True),
    Field("schedulingGates", IGN, SCHEDULER),
    Field("resourceClaims", R, "dynamic resource allocation has no device on a cloud instance"),
    Field("resources", R, "the instance is sized from its containers' requests"),
    Field("hostnameOverride", R, "the instance's hostname is its pod's"),
    Field("schedulingGroup", IGN, SCHEDULER),
    Field("evictionResponders", IGN, "the eviction API's: responders act on evictions, the node does nothing"),
)

#: The subfields of the pod's objects a provider maps piecemeal; their parent rows are PARTS.
POD_SUB: tuple[Field, ...] = (
    Field("securityContext.runAsUser", R, "the instance runs as its image says"),
    Field("securityContext.runAsGroup", R, "the instance's group is its image's"),
    Field("securityContext.runAsNonRoot", E, NON_ROOT),
    Field("securityContext.supplementalGroups", R, "no supplementary groups are given to the processes"),
    Field("securityContext.supplementalGroupsPolicy", R, "no supplementary groups are given to the processes"),
    Field("securityContext.fsGroup", R, "volumes are not chowned to a group"),
    Field("securityContext.fsGroupChangePolicy", R, "volumes are not chowned to a group"),
    Field("securityContext.sysctls", R, "no kernel parameters are set on the instance"),
    Field("securityContext.seLinuxOptions", R, "the cloud's sandbox sets no SELinux labels"),
    Field("securityContext.seLinuxChangePolicy", R, "the cloud's sandbox sets no SELinux labels"),
    Field("securityContext.seccompProfile", R, "the cloud's sandbox applies its own seccomp profile"),
    Field("securityContext.appArmorProfile", R, "the cloud's sandbox applies no AppArmor profile"),
    Field("securityContext.windowsOptions", R, "virtual nodes run Linux instances"),
    Field("dnsConfig.nameservers", R, "the instance's resolver is the cloud's"),
    Field("dnsConfig.searches", R, "the instance's resolver is the cloud's"),
    Field("dnsConfig.options", R, "the instance's resolver is the cloud's"),
)

CONTAINER: tuple[Field, ...] = (
    Field("containers.name", R, NOT_MAPPED),
    Field("containers.image", R, NOT_MAPPED),
    Field("containers.command", R, NOT_MAPPED),
    Field("containers.args", R, NOT_MAPPED),
    Field("containers.workingDir", R, NOT_MAPPED),
    Field("containers.ports", IGN, "containerPort is informational; the process listens where it binds"),
    Field("containers.envFrom", E, "resolved from the ConfigMaps and Secrets into variables, as the kubelet does"),
    Field("containers.env", R, NOT_MAPPED),
    Field("containers.resources", E, "sizes the instance and counts against the node; limits are not enforced"),
    Field("containers.resizePolicy", IGN, "matters only to an in-place resize, which virtual nodes do not do"),
    Field("containers.restartPolicy", R, "sidecar init containers are not run as sidecars"),
    Field("containers.restartPolicyRules", R, "per-exit-code restart rules are not applied"),
    Field("containers.volumeMounts", R, NOT_MAPPED),
    Field("containers.volumeDevices", R, "block devices cannot be attached to a cloud instance"),
    Field("containers.livenessProbe", R, "the probe is not run"),
    Field("containers.readinessProbe", R, "the probe is not run"),
    Field("containers.startupProbe", E, "folded into the probes the cloud runs: liveness waits out its window "
          "(initialDelaySeconds + periodSeconds x failureThreshold), or it is the liveness probe; without a "
          "readiness probe it is that too, so the pod is Ready only once it answers"),
    Field("containers.lifecycle", R, "the hooks are not run"),
    Field("containers.terminationMessagePath", R, "the termination message is not read",
          default="/dev/termination-log"),
    Field("containers.terminationMessagePolicy", R, "the termination message is not read", default="File"),
    Field("containers.imagePullPolicy", IGN, "the cloud pulls as it does for every instance"),
    Field("containers.securityContext", R, "the rows of its subfields say"),
    Field("containers.securityContext.privileged", R, "virtual nodes run no privileged containers", default=False),
    Field("containers.securityContext.runAsUser", R, "the container runs as its image says"),
    Field("containers.securityContext.runAsGroup", R, "the container's group is its image's"),
    Field("containers.securityContext.runAsNonRoot", E, NON_ROOT),
    Field("containers.securityContext.readOnlyRootFilesystem", R, "the root filesystem stays writable"),
    Field("containers.securityContext.allowPrivilegeEscalation", R, "no_new_privs is not set on the processes"),
    Field("containers.securityContext.capabilities", R, "the rows of its subfields say"),
    Field("containers.securityContext.capabilities.add", R, "no capabilities are added"),
    Field("containers.securityContext.capabilities.drop", R, "the runtime's default capabilities are kept"),
    Field("containers.securityContext.procMount", R, "the cloud's sandbox mounts /proc its own way"),
    Field("containers.securityContext.seLinuxOptions", R, "the cloud's sandbox sets no SELinux labels"),
    Field("containers.securityContext.seccompProfile", R, "the cloud's sandbox applies its own seccomp profile"),
    Field("containers.securityContext.appArmorProfile", R, "the cloud's sandbox applies no AppArmor profile"),
    Field("containers.securityContext.windowsOptions", R, "virtual nodes run Linux instances"),
    Field("containers.stdin", R, "attach is not supported", default=False),
    Field("containers.stdinOnce", R, "attach is not supported", default=False),
    Field("containers.tty", R, "no terminal is allocated", default=False),
)
# fmt: on

#: Refused whatever a provider declares: a virtual node can never do them.
NEVER = frozenset({"hostNetwork", "hostPID", "hostIPC", "ephemeralContainers", "containers.securityContext.privileged"})
BY_PATH: Mapping[str, Field] = {f.path: f for f in POD + POD_SUB + CONTAINER}
#: Rows whose subfields have rows: a pod is checked field by field below them.
PARENTS = frozenset(
    ".".join(names[:n])
    for f in POD_SUB + CONTAINER
    for names in [f.path.split(".")]
    for n in range(2 if names[0] == "containers" else 1, len(names))
)


def treatment(field: Field, pod_fields: frozenset[str], ignored: Mapping[str, str] | None = None) -> Treatment:
    """What a provider declaring ``pod_fields`` (and accepting ``ignored`` unapplied) does with ``field``."""
    if field.path in NEVER:
        return Treatment.REFUSED
    if field.path in pod_fields:
        return Treatment.MAPPED
    names = field.path.split(".")
    if ignored and any(".".join(names[:n]) in ignored for n in range(1, len(names) + 1)):
        return Treatment.IGNORED  # an object ignored whole ignores its subfields
    if field.path in PARENTS:
        return Treatment.PARTS
    return field.unmapped


def _attr(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z]+)", lambda m: "_" + m.group(1).lower(), name)


def _get(obj: Any, name: str, attr: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, attr, None)


def _set(value: Any, default: Any) -> bool:
    """Whether ``value`` says more than an omitted field (or the API server's default) would."""
    if value is None or value == default:
        return False
    if isinstance(value, msgspec.Struct):  # a typed object: set if any of its fields is
        return any(_set(v, None) for v in msgspec.structs.asdict(value).values())
    return isinstance(value, bool | int | float) or bool(value)


def _where(pod: objects.Pod) -> Iterable[tuple[str, Any]]:
    yield "spec", pod.spec
    for kind, containers in (("containers", pod.spec.containers), ("initContainers", pod.spec.init_containers)):
        for n, container in enumerate(containers):
            yield f"spec.{kind}[{n}]", container


#: A refused field and the steps to its value: (name in the object, attribute on the typed object).
_Refused = tuple[Field, tuple[tuple[str, str], ...]]


@functools.lru_cache(maxsize=32)
def _refused(pod_fields: frozenset[str], ignored: frozenset[tuple[str, str]]) -> tuple[tuple[_Refused, ...], ...]:
    """The refused rows of a pod's spec and of a container, with their steps: the same for every pod of
    a provider, so worked out once, not for each field of each pod (a daemon creating hundreds a second)."""
    named = dict(ignored)
    tables = []
    for rows, container in ((POD + POD_SUB, False), (CONTAINER, True)):
        refused = []
        for field in rows:
            if treatment(field, pod_fields, named) is not Treatment.REFUSED:
                continue
            names = field.path.split(".")[1:] if container else field.path.split(".")
            last = len(names) - 1
            steps = tuple(
                (name, field.attr if i == last and field.attr else _attr(name)) for i, name in enumerate(names)
            )
            refused.append((field, steps))
        tables.append(tuple(refused))
    return tuple(tables)


def refusals(pod: objects.Pod, pod_fields: frozenset[str], ignored: Mapping[str, str] | None = None) -> list[str]:
    """``spec.<path>: why`` for every refused field ``pod`` sets, in the catalogue's order."""
    pod_rows, container_rows = _refused(pod_fields, frozenset((ignored or {}).items()))
    found: list[str] = []
    for where, obj in _where(pod):
        for field, steps in pod_rows if where == "spec" else container_rows:
            value: Any = obj
            for name, attr in steps:
                value = _get(value, name, attr)
            if _set(value, field.default):
                found.append(f"{where}.{'.'.join(name for name, _ in steps)}: {field.why}")
    return found


def message(found: list[str], provider: str) -> str:
    """One message naming every refused field: ``<field>: <why>; ... (provider <name>)``."""
    return "; ".join(found) + f" (provider {provider})"
