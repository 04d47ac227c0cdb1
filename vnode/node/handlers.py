"""A container's probes and lifecycle hooks as the instance spec carries them.

A named port (``port: http``) is resolved against the container's ports here, once, so that a
provider sends numbers. A hook's ``sleep`` action (Kubernetes 1.29+) is refused: no cloud API
vnode speaks has it, and an ``exec`` of ``sleep`` would depend on the image having the binary.
"""

from __future__ import annotations

import dataclasses

from vnode import errors, models
from vnode.kube import objects

__all__ = ["handler", "port", "probe"]


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
