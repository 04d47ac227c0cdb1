"""A container's probes and lifecycle hooks as the instance spec carries them.

A named port (``port: http``) is resolved against the container's ports here, once, so that a
provider sends numbers. A hook's ``sleep`` action (Kubernetes 1.29+) is refused: no cloud API
vnode speaks has it, and an ``exec`` of ``sleep`` would depend on the image having the binary.

A ``startupProbe`` on a cloud that has none (ECI's and ACI's APIs do not) is folded into the
probes it has, so that it does what the kubelet's does (:func:`fold_startup`).
"""

from __future__ import annotations

import dataclasses

from vnode import errors, models
from vnode.kube import objects

__all__ = ["fold_startup", "handler", "port", "probe"]


def port(value: int | str, container: objects.Container, what: str) -> int:
    """A port number, or the number of the container's port of that name."""
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    for p in container.ports:
        if p.name == value:
            return p.container_port
    raise errors.InvalidSpec(f"container {container.name}: {what} port {value!r} names no port")


def probe(spec: objects.Probe | None, container: objects.Container) -> models.Probe | None:
    if spec is None:
        return None
    timing = models.Probe(
        initial_delay_seconds=spec.initial_delay_seconds,
        period_seconds=spec.period_seconds,
        timeout_seconds=spec.timeout_seconds,
        success_threshold=spec.success_threshold,
        failure_threshold=spec.failure_threshold,
    )
    if spec.exec:
        return dataclasses.replace(timing, exec_command=tuple(spec.exec.command))
    if spec.http_get:
        http = spec.http_get
        number = port(http.port, container, "probe")
        return dataclasses.replace(timing, http_path=http.path, http_port=number, http_scheme=http.scheme)
    if spec.tcp_socket:
        return dataclasses.replace(timing, tcp_port=port(spec.tcp_socket.port, container, "probe"))
    raise errors.InvalidSpec(f"container {container.name}: only exec, httpGet and tcpSocket probes are supported")


def handler(spec: objects.LifecycleHandler | None, container: objects.Container, hook: str) -> models.Handler | None:
    """``lifecycle.<hook>`` of ``container``; raises ``errors.InvalidSpec`` for an empty or sleep action."""
    if spec is None:
        return None
    what = f"lifecycle.{hook}"
    if spec.exec:
        if not spec.exec.command:
            raise errors.InvalidSpec(f"container {container.name}: {what}.exec has no command")
        return models.Handler(exec_command=tuple(spec.exec.command))
    if spec.http_get:
        http = spec.http_get
        number = port(http.port, container, what)
        headers = tuple((h.name, h.value) for h in http.http_headers)
        return models.Handler(
            http_path=http.path, http_port=number, http_scheme=http.scheme, http_host=http.host, http_headers=headers
        )
    if spec.tcp_socket:
        tcp = spec.tcp_socket
        return models.Handler(tcp_port=port(tcp.port, container, what), tcp_host=tcp.host)
    if spec.sleep:
        raise errors.InvalidSpec(f"container {container.name}: {what}.sleep is not supported on a virtual node")
    raise errors.InvalidSpec(f"container {container.name}: {what} needs exec, httpGet or tcpSocket")


def fold_startup(
    liveness: models.Probe | None, readiness: models.Probe | None, startup: models.Probe | None
) -> tuple[models.Probe | None, models.Probe | None]:
    """The liveness and readiness probes that give a cloud without startup probes the kubelet's effect.

    The kubelet runs no liveness or readiness probe until the startup probe succeeds, and restarts
    the container if it fails ``failureThreshold`` times in a row; so a slow starter has a window of
    ``initialDelaySeconds + periodSeconds * failureThreshold`` before anything may kill it, and is
    not Ready before it answers. Folded:

    * a liveness probe starts once that window has passed (its own initial delay, if longer);
      without one, the startup probe itself becomes the liveness probe: a container that never
      answers is restarted when the kubelet would (unlike the kubelet, it keeps probing afterwards);
    * without a readiness probe, the startup probe is the readiness probe, so the pod is not Ready
      before it answers; a readiness probe of its own starts no sooner than the startup probe.
    """
    if startup is None:
        return liveness, readiness
    window = startup.initial_delay_seconds + startup.period_seconds * startup.failure_threshold
    if liveness is None:
        liveness = dataclasses.replace(startup, success_threshold=1)
    else:
        liveness = dataclasses.replace(liveness, initial_delay_seconds=max(liveness.initial_delay_seconds, window))
    if readiness is None:
        readiness = startup
    else:
        delay = max(readiness.initial_delay_seconds, startup.initial_delay_seconds)
        readiness = dataclasses.replace(readiness, initial_delay_seconds=delay)
    return liveness, readiness
