"""What the core knows of the process provider: no sizes, no prices, its own taint and scheme."""

from __future__ import annotations

from vnode.provider import profile

__all__ = ["PROFILE"]

PROFILE = profile.Profile(
    name="process",
    factory="vnode.provider.process.provider:create",
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
            "containers.command",
            "containers.args",
            "containers.env",
            "containers.volumeMounts",
            "containers.workingDir",
            "volumes",
            "restartPolicy",
            "terminationGracePeriodSeconds",
        }
    ),
)
