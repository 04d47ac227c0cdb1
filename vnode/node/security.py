"""A container's effective security context: the pod's ``securityContext`` under the container's.

The container's own ``runAsUser`` and ``runAsGroup`` win over the pod's, as in the kubelet, and
``runAsNonRoot`` is checked against them before anything runs. A privileged container is refused:
a virtual node runs on a cloud's sandbox, which grants no host privileges. What the cloud allows
(which capabilities, which sysctls) is the cloud's to refuse, with its own error.
"""

from __future__ import annotations

import dataclasses

from vnode import errors, models
from vnode.kube import objects, podfields

__all__ = ["Effective", "effective", "sysctls"]


@dataclasses.dataclass(frozen=True)
class Effective:
    """What a container runs with: its uid and gid (None: the image's), capabilities added and
    dropped, read-only root, and whether its processes may gain privileges (None: the default)."""

    run_as_user: int | None = None
    capabilities_add: tuple[str, ...] = ()
    read_only_root_filesystem: bool = False
    run_as_group: int | None = None
    capabilities_drop: tuple[str, ...] = ()
    allow_privilege_escalation: bool | None = None


def effective(pod: objects.Pod, container: objects.Container, *, check_non_root: bool = True) -> Effective:
    """The container's effective security context; raises ``errors.InvalidSpec`` if privileged, or if
    ``runAsNonRoot`` cannot hold (unless ``check_non_root`` is False: a provider that ignores it)."""
    own = container.security_context or podfields.SecurityContext()
    shared = pod.spec.security_context or podfields.PodSecurityContext()
    if own.privileged:
        raise errors.InvalidSpec(
            f"container {container.name}: securityContext.privileged is not allowed on a virtual node"
        )
    user = own.run_as_user if own.run_as_user is not None else shared.run_as_user
    group = own.run_as_group if own.run_as_group is not None else shared.run_as_group
    for name, value in (("runAsUser", user), ("runAsGroup", group)):
        if value is not None and value < 0:
            raise errors.InvalidSpec(f"container {container.name}: securityContext.{name} {value} is negative")
    non_root = own.run_as_non_root if own.run_as_non_root is not None else shared.run_as_non_root
    if non_root and check_non_root:
        _check_non_root(container.name, user)
    added = tuple(dict.fromkeys(c.upper() for c in (own.capabilities.add if own.capabilities else [])))
    dropped = tuple(dict.fromkeys(c.upper() for c in (own.capabilities.drop if own.capabilities else [])))
    return Effective(user, added, bool(own.read_only_root_filesystem), group, dropped, own.allow_privilege_escalation)


def _check_non_root(container: str, user: int | None) -> None:
    """``runAsNonRoot``, checked before anything runs, as the kubelet checks it: a uid 0 breaks it. The
    kubelet also reads the image's user when no ``runAsUser`` is given; the cloud runs the image without
    telling vnode its user, so then the pod is refused, saying how to make it run."""
    if user == 0:
        raise errors.InvalidSpec(f"container {container}: securityContext.runAsNonRoot is true and runAsUser is 0: "
                                 "the container's runAsUser breaks the non-root policy")  # fmt: skip
    if user is None:
        raise errors.InvalidSpec(
            f"container {container}: securityContext.runAsNonRoot is true without a runAsUser: a virtual node "
            "cannot read the image's user to check it; set runAsUser (the image's non-root uid)"
        )


def sysctls(pod: objects.Pod) -> tuple[models.Sysctl, ...]:
    """The pod's ``securityContext.sysctls``; the cloud decides which it allows."""
    context = pod.spec.security_context
    if context is None:
        return ()
    return tuple(models.Sysctl(s.name, s.value) for s in context.sysctls)
