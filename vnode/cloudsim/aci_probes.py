"""ACI's container probes (``ContainerProbe``): read from a PUT, checked, kept, and returned on GET.

A container's ``livenessProbe`` and ``readinessProbe`` each have one check, ``exec`` (a command)
or ``httpGet`` (a port, a path, a scheme ``http`` or ``https``, headers), and the timing fields
of a Kubernetes probe. ACI has no TCP probe (the type has no such field, and ARM ignores a field
it does not know, so a probe that sent only ``tcpSocket`` has no check at all). The simulator
refuses a probe with no check or with two, a port outside 1 to 65535, an unknown scheme, or a
timing below Kubernetes' minimums (``InvalidContainerProbe``, the simulator's code: ACI's is not
published). The probes are kept (``model.Probe``, the ECI simulator's record too) but
not run: a container's readiness in the instance view follows its state.
"""

from __future__ import annotations

import msgspec

from vnode.cloudsim import aci_arm, model

__all__ = ["CODE", "ContainerProbe", "probe", "render"]

CODE = "InvalidContainerProbe"  # the simulator's name


class _Exec(msgspec.Struct):
    command: list[str] = []


class _Header(msgspec.Struct):
    name: str | None = None
    value: str | None = None


class _HttpGet(msgspec.Struct):
    port: int
    path: str | None = None
    scheme: str | None = None
    httpHeaders: list[_Header] = []


class ContainerProbe(msgspec.Struct):
    exec: _Exec | None = None
    httpGet: _HttpGet | None = None
    initialDelaySeconds: int | None = None
    periodSeconds: int | None = None
    failureThreshold: int | None = None
    successThreshold: int | None = None
    timeoutSeconds: int | None = None


_MINIMUM = {"initialDelaySeconds": 0, "periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1,
            "timeoutSeconds": 1}  # fmt: skip


def _refuse(where: str, what: str) -> aci_arm.ArmError:
    return aci_arm.ArmError(400, CODE, f"The {where} is invalid: {what}.")


def probe(given: ContainerProbe | None, container: str, kind: str) -> model.Probe | None:
    """``kind`` (``livenessProbe`` or ``readinessProbe``) of ``container`` as the cloud keeps it."""
    if given is None:
        return None
    where = f"{kind} of container '{container}'"
    checks = [name for name, check in (("exec", given.exec), ("httpGet", given.httpGet)) if check is not None]
    if len(checks) != 1:
        raise _refuse(where, f"it must have exactly one of exec and httpGet, not {len(checks)}")
    for field, low in _MINIMUM.items():
        value = getattr(given, field)
        if value is not None and value < low:
            raise _refuse(where, f"{field} {value} is below {low}")
    if kind == "livenessProbe" and given.successThreshold not in (None, 1):
        raise _refuse(where, "successThreshold must be 1 for a liveness probe")
    timing = model.Probe(
        initial_delay_seconds=given.initialDelaySeconds or 0,
        period_seconds=given.periodSeconds or 10,
        timeout_seconds=given.timeoutSeconds or 1,
        success_threshold=given.successThreshold or 1,
        failure_threshold=given.failureThreshold or 3,
    )
    if given.exec is not None:
        if not given.exec.command:
            raise _refuse(where, "exec.command is empty")
        return msgspec.structs.replace(timing, exec=tuple(given.exec.command))
    http = given.httpGet
    assert http is not None
    if not 1 <= http.port <= 65535:
        raise _refuse(where, f"httpGet.port {http.port} is not 1 to 65535")
    scheme = (http.scheme or "http").lower()
    if scheme not in ("http", "https"):
        raise _refuse(where, f"httpGet.scheme {http.scheme!r} is not http or https")
    return msgspec.structs.replace(timing, http_path=http.path or "/", http_port=http.port, http_scheme=scheme)


def render(kept: model.Probe) -> dict[str, object]:
    """A kept probe as GET returns it."""
    out: dict[str, object] = {
        "initialDelaySeconds": kept.initial_delay_seconds,
        "periodSeconds": kept.period_seconds,
        "failureThreshold": kept.failure_threshold,
        "successThreshold": kept.success_threshold,
        "timeoutSeconds": kept.timeout_seconds,
    }
    if kept.exec:
        out["exec"] = {"command": list(kept.exec)}
    else:
        out["httpGet"] = {"path": kept.http_path, "port": kept.http_port, "scheme": kept.http_scheme}
    return out
