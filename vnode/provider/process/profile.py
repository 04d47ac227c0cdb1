"""What the core knows of the process provider: its settings, no sizes, no prices, its own taint and scheme."""

from __future__ import annotations

import pydantic

from vnode.provider import profile

__all__ = ["PROFILE", "ProcessSettings"]


class ProcessSettings(pydantic.BaseModel):
    model_config = profile.FROZEN

    state_dir: str = ""  # where the instances live; empty: ~/.local/state/vnode/process/<node>
    # The API server (and its CA) that pods' in-cluster clients use; empty: the daemon's kubeconfig's.
    api_server: str = ""
    ca_file: str = ""
    lifeline: str = ""  # a pid whose death stops every instance (tests); not a pid: none


ENV = {
    "state_dir": ("VNODE_PROCESS_DIR",),
    "api_server": ("VNODE_PROCESS_API_SERVER",),
    "ca_file": ("VNODE_PROCESS_CA_FILE",),
    "lifeline": ("VNODE_PROCESS_LIFELINE",),
}

PROFILE = profile.Profile(
    name="process",
    factory="vnode.provider.process.provider:create",
    settings=ProcessSettings,
    env=ENV,
    # A process takes what it needs: the size is bookkeeping only, never rounded, never billed.
    default_size=profile.Size(2, 4),
    limits=profile.Limits(max_containers=20, max_volumes=20),
    taint="process",
    container_id_scheme="process",
    live_configmap="kube-system/eci-profile",  # the name the chart creates, for every provider
    volume_kinds=frozenset({"emptyDir", "files"}),
    pod_fields=frozenset(
        {
            "containers",
            "initContainers",
            "containers.name",
            "containers.image",
            "containers.command",
            "containers.args",
            "containers.env",
            "containers.volumeMounts",
            "containers.workingDir",
            "volumes",
            "restartPolicy",
            "terminationGracePeriodSeconds",
            "hostname",  # as HOSTNAME in the processes' environment
        }
    ),
    # A development provider: the chart's own pods (probes, a hardened securityContext) must run.
    ignored_fields={
        "containers.livenessProbe": "the process provider runs no probes",
        "containers.readinessProbe": "the process provider runs no probes: a running process is ready",
        "containers.startupProbe": "the process provider runs no probes: a running process has started",
        "containers.securityContext": "processes run as the daemon's user",
        "securityContext.runAsNonRoot": "processes run as the daemon's user",
    },
)
