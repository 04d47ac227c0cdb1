"""CreateContainerGroup's pod-level and security parameters: DNS, host aliases, security contexts.

``DnsConfig.NameServer.N``, ``DnsConfig.Search.N``, ``DnsConfig.Option.N.Name/Value``,
``HostAliase.N.Ip`` with ``HostAliase.N.Hostname.M``, ``SecurityContext.Sysctl.N.Name/Value``
and a container's ``SecurityContext.RunAsUser``, ``.ReadOnlyRootFilesystem`` and
``.Capability.Add.N``, its ``LivenessProbe.*`` and ``ReadinessProbe.*``. ECI refuses what it does
not allow: capabilities other than ``NET_ADMIN`` and ``NET_RAW``, a probe with two checks or a
liveness SuccessThreshold other than 1, sysctls outside its namespaced set (``kernel.shm*``, ``kernel.msg*``,
``kernel.sem``, ``fs.mqueue.*``, ``net.*`` but ``net.ipv4.tcp_syncookies``,
``vm.min_free_kbytes``), more than 3 name servers.
"""

from __future__ import annotations

from typing import Any

from vnode.cloudsim import eci_numbers, errors, model
from vnode.cloudsim.eci_numbers import MAX_INDEX

__all__ = [
    "CAPABILITIES",
    "container_security",
    "dns_config",
    "host_aliases",
    "probe",
    "registry_credentials",
    "sysctl_allowed",
    "sysctls",
]

#: The capabilities ECI lets a container add (Container.N.SecurityContext.Capability.Add.N).
CAPABILITIES = frozenset({"NET_ADMIN", "NET_RAW"})
_SYSCTL_PREFIXES = ("kernel.shm", "kernel.msg", "fs.mqueue.", "net.")
_SYSCTL_NAMES = frozenset({"kernel.sem", "vm.min_free_kbytes"})
_MAX_NAME_SERVERS = 3
MAX_UID = 2**31 - 1  # Kubernetes' runAsUser is an int64, Linux's uid a 32-bit value; ECI's bound is not published


def _list(raw: dict[str, str], prefix: str) -> tuple[str, ...]:
    """``Prefix.1``, ``Prefix.2``.. in index order."""
    items: dict[int, str] = {}
    for key, value in raw.items():
        if key.startswith(prefix + "."):
            n = eci_numbers.index(key[len(prefix) + 1 :])
            if n is None:
                raise errors.InvalidParameter(key, f"expected {prefix}.N with N in 1..{MAX_INDEX}")
            items[n] = value
    return tuple(items[i] for i in sorted(items))


def _pairs(raw: dict[str, str], prefix: str) -> list[tuple[str, dict[str, str]]]:
    """``Prefix.N.Field`` -> [(``Prefix.N``, {Field: value})] in N order."""
    groups: dict[int, dict[str, str]] = {}
    for key, value in raw.items():
        if key.startswith(prefix + "."):
            text, _, field = key[len(prefix) + 1 :].partition(".")
            n = eci_numbers.index(text)
            if n is None or not field:
                raise errors.InvalidParameter(key, f"expected {prefix}.N.<Field> with N in 1..{MAX_INDEX}")
            groups.setdefault(n, {})[field] = value
    return [(f"{prefix}.{n}", groups[n]) for n in sorted(groups)]


def dns_config(raw: dict[str, str]) -> model.DnsConfig | None:
    servers = _list(raw, "DnsConfig.NameServer")
    if len(servers) > _MAX_NAME_SERVERS:
        raise errors.InvalidParameter("DnsConfig.NameServer", f"at most {_MAX_NAME_SERVERS} name servers")
    options = []
    for where, fields in _pairs(raw, "DnsConfig.Option"):
        if not fields.get("Name"):
            raise errors.MissingParameter(f"{where}.Name")
        options.append(model.NameValue(fields["Name"], fields.get("Value", "")))
    config = model.DnsConfig(servers, _list(raw, "DnsConfig.Search"), tuple(options))
    return config if (config.name_servers or config.searches or config.options) else None


def host_aliases(raw: dict[str, str]) -> tuple[model.HostAlias, ...]:
    aliases = []
    for where, fields in _pairs(raw, "HostAliase"):
        if not fields.get("Ip"):
            raise errors.MissingParameter(f"{where}.Ip")
        names = _list(fields, "Hostname")
        if not names:
            raise errors.MissingParameter(f"{where}.Hostname.1")
        aliases.append(model.HostAlias(fields["Ip"], names))
    return tuple(aliases)


def sysctl_allowed(name: str) -> bool:
    if name == "net.ipv4.tcp_syncookies":
        return False
    return name in _SYSCTL_NAMES or name.startswith(_SYSCTL_PREFIXES)


def sysctls(raw: dict[str, str]) -> tuple[model.NameValue, ...]:
    out = []
    for where, fields in _pairs(raw, "SecurityContext.Sysctl"):
        name = fields.get("Name", "")
        if not name:
            raise errors.MissingParameter(f"{where}.Name")
        if not sysctl_allowed(name):
            raise errors.InvalidParameter(f"{where}.Name", f"the sysctl {name!r} is not supported")
        out.append(model.NameValue(name, fields.get("Value", "")))
    return tuple(out)


def container_security(fields: dict[str, str], where: str) -> tuple[int | None, tuple[str, ...], bool]:
    """A container's (RunAsUser, Capability.Add, ReadOnlyRootFilesystem) from its fields."""
    user_text = fields.get("SecurityContext.RunAsUser", "")
    user = eci_numbers.digits(user_text, high=MAX_UID) if user_text else None
    if user_text and user is None:
        raise errors.InvalidParameter(f"{where}.SecurityContext.RunAsUser", f"{user_text!r} is not a uid")
    added = _list(fields, "SecurityContext.Capability.Add")
    for n, capability in enumerate(added, 1):
        if capability.upper() not in CAPABILITIES:
            raise errors.InvalidParameter(
                f"{where}.SecurityContext.Capability.Add.{n}",
                f"the capability {capability!r} is not supported (only {', '.join(sorted(CAPABILITIES))})",
            )
    read_only_text = fields.get("SecurityContext.ReadOnlyRootFilesystem", "false").lower()
    if read_only_text not in ("true", "false"):
        raise errors.InvalidParameter(f"{where}.SecurityContext.ReadOnlyRootFilesystem", "true or false")
    read_only = read_only_text == "true"
    return user, added, read_only


def _port(fields: dict[str, str], where: str, name: str) -> int | None:
    text = fields.get(name, "")
    if not text:
        return None
    port = eci_numbers.digits(text, high=65535)
    if not port:
        raise errors.InvalidParameter(f"{where}.{name}", f"{text!r} is not a port number")
    return port


def _one_check(
    fields: dict[str, str], where: str, name: str, prefix: str, given: tuple[Any, ...], what: str, needs: str
) -> bool:
    """Whether exactly one of (exec, HTTP GET, TCP) is ``given``; False if none is and nothing else of
    ``name`` is either; ``InvalidParameter`` for two, or for fields of ``name`` without a check."""
    kinds = [kind for kind, value in zip(("Exec", "HttpGet", "TcpSocket"), given, strict=True) if value]
    if len(kinds) > 1:
        raise errors.InvalidParameter(f"{where}.{name}", f"one {what} only, not {' and '.join(kinds)}")
    if not kinds and any(key.startswith(prefix) for key in fields):
        raise errors.InvalidParameter(f"{where}.{name}", f"needs {needs}")
    return bool(kinds)


def _scheme(fields: dict[str, str], where: str, key: str, http_port: int | None) -> str:
    """An HTTP check's scheme, HTTP or HTTPS (HTTP if not given); empty without an HTTP check."""
    scheme = fields.get(key, "HTTP" if http_port else "").upper()
    if http_port and scheme not in ("HTTP", "HTTPS"):
        raise errors.InvalidParameter(f"{where}.{key}", "HTTP or HTTPS")
    return scheme


def hook(fields: dict[str, str], where: str, name: str) -> model.Hook | None:
    """``<name>Exec.N``, ``<name>HttpGetPath/Port/Scheme/Host`` or ``<name>TcpSocketPort/Host``
    (``name`` is ``LifecyclePostStartHandler`` or ``LifecyclePreStopHandler``): exactly one kind."""
    command = _list(fields, f"{name}Exec")
    http_port = _port(fields, where, f"{name}HttpGetPort")
    tcp_port = _port(fields, where, f"{name}TcpSocketPort")
    given = (command, http_port, tcp_port)
    if not _one_check(fields, where, name, name, given, "handler", "Exec, HttpGetPort or TcpSocketPort"):
        return None
    headers = _pairs(fields, f"{name}HttpGetHttpHeader")
    for where_header, header in headers:
        if not header.get("Name"):
            raise errors.MissingParameter(f"{where}.{where_header}.Name")
    scheme = _scheme(fields, where, f"{name}HttpGetScheme", http_port)
    return model.Hook(
        exec=command,
        http_path=fields.get(f"{name}HttpGetPath", "/") if http_port else "",
        http_port=http_port,
        http_scheme=scheme,
        http_host=fields.get(f"{name}HttpGetHost", ""),
        http_headers=tuple(model.NameValue(h.get("Name", ""), h.get("Value", "")) for _, h in headers),
        tcp_port=tcp_port,
        tcp_host=fields.get(f"{name}TcpSocketHost", ""),
    )


_PROBE_TIMING = (("InitialDelaySeconds", 0, 0), ("PeriodSeconds", 10, 1), ("TimeoutSeconds", 1, 1),
                 ("SuccessThreshold", 1, 1), ("FailureThreshold", 3, 1))  # (field, default, least)  # fmt: skip


def probe(fields: dict[str, str], where: str, name: str) -> model.Probe | None:
    """``<name>.Exec.Command.N``, ``<name>.HttpGet.Path/Port/Scheme`` or ``<name>.TcpSocket.Port``, and its
    timing (``name`` is ``LivenessProbe`` or ``ReadinessProbe``): exactly one kind. A liveness probe's
    SuccessThreshold must be 1, as ECI (and Kubernetes) say."""
    command = _list(fields, f"{name}.Exec.Command")
    http_port = _port(fields, where, f"{name}.HttpGet.Port")
    tcp_port = _port(fields, where, f"{name}.TcpSocket.Port")
    given = (command, http_port, tcp_port)
    if not _one_check(fields, where, name, f"{name}.", given, "check", "Exec.Command, HttpGet.Port or TcpSocket.Port"):
        return None
    timing: dict[str, int] = {}
    for field, default, least in _PROBE_TIMING:
        text = fields.get(f"{name}.{field}", "")
        value = eci_numbers.digits(text, high=MAX_UID) if text else default
        if value is None or value < least:
            raise errors.InvalidParameter(f"{where}.{name}.{field}", f"{text!r}: a whole number, at least {least}")
        timing[field] = value
    if name == "LivenessProbe" and timing["SuccessThreshold"] != 1:
        raise errors.InvalidParameter(f"{where}.{name}.SuccessThreshold", "must be 1 for a liveness probe")
    scheme = _scheme(fields, where, f"{name}.HttpGet.Scheme", http_port)
    return model.Probe(
        exec=command,
        http_path=fields.get(f"{name}.HttpGet.Path", "/") if http_port else "",
        http_port=http_port,
        http_scheme=scheme,
        tcp_port=tcp_port,
        initial_delay_seconds=timing["InitialDelaySeconds"],
        period_seconds=timing["PeriodSeconds"],
        timeout_seconds=timing["TimeoutSeconds"],
        success_threshold=timing["SuccessThreshold"],
        failure_threshold=timing["FailureThreshold"],
    )


_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")


def container_fields(fields: dict[str, str], where: str) -> dict[str, Any]:
    """A container's security context, lifecycle hooks and termination message, as ContainerSpec's fields."""
    user, capabilities, read_only = container_security(fields, where)
    policy = fields.get("TerminationMessagePolicy", "")
    if policy and policy not in _MESSAGE_POLICIES:
        raise errors.InvalidParameter(f"{where}.TerminationMessagePolicy", " or ".join(_MESSAGE_POLICIES))
    path = fields.get("TerminationMessagePath", "")
    if path and not path.startswith("/"):
        raise errors.InvalidParameter(f"{where}.TerminationMessagePath", f"{path!r} is not an absolute path")
    return {
        "run_as_user": user,
        "capabilities": capabilities,
        "read_only_root_filesystem": read_only,
        "post_start": hook(fields, where, "LifecyclePostStartHandler"),
        "pre_stop": hook(fields, where, "LifecyclePreStopHandler"),
        "liveness_probe": probe(fields, where, "LivenessProbe"),
        "readiness_probe": probe(fields, where, "ReadinessProbe"),
        "termination_message_path": path,
        "termination_message_policy": policy,
    }


def registry_credentials(raw: dict[str, str]) -> tuple[model.RegistryCredential, ...]:
    """``ImageRegistryCredential.N.Server/UserName/Password``, each required."""
    logins = []
    for where, fields in _pairs(raw, "ImageRegistryCredential"):
        for field in ("Server", "UserName", "Password"):
            if not fields.get(field):
                raise errors.MissingParameter(f"{where}.{field}")
        logins.append(model.RegistryCredential(fields["Server"], fields["UserName"], fields["Password"]))
    return tuple(logins)
