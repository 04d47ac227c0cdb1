"""Simulated workloads: what a container does, decided by its image and command.

Nothing is executed. A small catalog maps what people run in demos to behaviour: a web server
runs until stopped and writes an access-log line every few seconds; ``perl -Mbignum=bpi -wle
'print bpi(N)'`` prints N digits of pi (really computed) and exits 0; ``sleep N`` exits after
N s; ``sh -c`` scripts of ``echo``/``sleep``/``exit``/``true``/``false``/``env``/``printenv``
do what they say, with ``$VAR`` expanded from the container's env. An image outside the
catalog fails to pull, unless the profile's ``any_image`` is set (then, with no command, it
runs until stopped, like virtual-kubelet's mock provider). Logs are a function of the run's start and end time,
so 30,000 web servers cost no memory for their access logs.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence

# Image names (without registry, path and tag) the simulated registry holds.
SERVERS = frozenset({"nginx", "httpd", "caddy", "traefik", "redis", "memcached", "pause", "postgres", "mysql", "flink"})
TOOLS = frozenset(
    {
        "busybox",
        "alpine",
        "ubuntu",
        "debian",
        "centos",
        "perl",
        "python",
        "bash",
        "node",
        "golang",
        "curl",
        "stress",
        "stress-ng",
    }
)
WEB_SERVERS = frozenset({"nginx", "httpd", "caddy", "traefik"})
SHELLS = frozenset({"sh", "bash", "ash", "dash", "/bin/sh", "/bin/bash", "/bin/ash", "/usr/bin/bash"})


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """What one run of a container does."""

    run_seconds: float | None  # None: runs until stopped
    exit_code: int = 0
    output: tuple[str, ...] = ()  # printed when it starts
    web_server: bool = False  # writes access-log lines while it runs


@dataclasses.dataclass(frozen=True)
class ShellResult:
    output: tuple[str, ...]
    exit_code: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class Demand:
    """What a running container would use given room: CPU cores and a working set."""

    cores: float
    memory_mib: float


# Working sets of idle servers, roughly what `docker stats` shows for the stock images.
_SERVER_MIB = {"nginx": 8.0, "httpd": 12.0, "caddy": 14.0, "traefik": 30.0, "redis": 4.0, "memcached": 3.0,
               "pause": 0.3, "postgres": 40.0, "mysql": 360.0}  # fmt: skip
_BUSY_PROGRAMS = frozenset({"yes", "md5sum", "sha1sum", "sha256sum", "sha512sum", "dd", "openssl", "gzip"})


def demand(image: str, command: Sequence[str], args: Sequence[str]) -> Demand:
    """How much CPU and memory a container started with ``command`` + ``args`` wants while it runs.

    Busy: ``perl`` computing pi (one core), ``stress``/``stress-ng`` (``--cpu N`` cores, default
    one), ``yes``, a checksum of ``/dev/zero``, a ``while true``/``while :`` loop without a
    ``sleep`` (one core each).
    A server idles at a few millicores; ``sleep`` and short scripts use nothing measurable; any
    other long-running command a little.
    """
    argv = [*command, *args]
    name = image_name(image)
    if not argv:
        if name in SERVERS or image.startswith("sim/"):
            return Demand(0.002, _SERVER_MIB.get(name, 16.0))
        return Demand(0.0, 0.5)
    program = argv[0].rsplit("/", 1)[-1]
    if program in WEB_SERVERS:
        return Demand(0.002, _SERVER_MIB.get(program, 16.0))
    if program == "perl":
        return Demand(1.0, 24.0) if _perl(argv).run_seconds else Demand(0.0, 2.0)
    if program in ("stress", "stress-ng"):
        return Demand(_workers(argv), 6.0)
    text = " ".join(argv)
    words = text.replace(";", " ").split()
    programs = {w.rsplit("/", 1)[-1] for w in words}
    if programs & _BUSY_PROGRAMS or (re.search(r"while\s+(true|:)", text) and "sleep" not in programs):
        return Demand(1.0, 2.0)
    if run_shell(argv, unknown_runs_forever=True) is None:
        return Demand(0.01, 8.0)  # some program of its own: mostly waiting
    return Demand(0.0, 0.5)  # sleep, echo, exit: nothing measurable


def _workers(argv: Sequence[str]) -> float:
    """``stress --cpu 2`` / ``-c 2`` / ``--cpu=2``: the number of spinning workers (default 1)."""
    for i, word in enumerate(argv):
        value = None
        if word in ("--cpu", "-c") and i + 1 < len(argv):
            value = argv[i + 1]
        elif word.startswith("--cpu="):
            value = word.split("=", 1)[1]
        if value is not None:
            try:
                return max(1.0, float(value))
            except ValueError:
                return 1.0
    return 1.0


def image_name(image: str) -> str:
    """``registry.example.com/library/nginx:1.27@sha256:..`` -> ``nginx``."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


#: Registry hosts the simulator treats as private: pulling from them needs an ImageRegistryCredential
#: for that server (any user and password: the simulator keeps no accounts).
PRIVATE_REGISTRIES = frozenset({"registry.private.example"})


def pull_allowed(image: str, servers: Iterable[str]) -> bool:
    """False for an image of a private registry without a credential for its server."""
    host = image.split("/", 1)[0] if "/" in image else ""
    return host not in PRIVATE_REGISTRIES or host in set(servers)


# Compressed sizes (MB, linux/amd64, rounded) of the simulated registry's images: what a pull
# downloads. flink is ECI's published example (386 MB, 50 s from Docker Hub without a cache).
IMAGE_MEGABYTES: dict[str, float] = {
    "nginx": 70, "httpd": 60, "caddy": 20, "traefik": 45, "redis": 45, "memcached": 30, "pause": 1,
    "postgres": 150, "mysql": 170, "flink": 386, "busybox": 2, "alpine": 4, "ubuntu": 30, "debian": 50,
    "centos": 75, "perl": 350, "python": 380, "bash": 6, "node": 400, "golang": 300, "curl": 6,
    "stress": 30, "stress-ng": 30,
}  # fmt: skip
DEFAULT_MEGABYTES = 100.0  # a ``sim/`` image


def image_megabytes(image: str) -> float:
    """What pulling ``image`` downloads, in MB."""
    return IMAGE_MEGABYTES.get(image_name(image), DEFAULT_MEGABYTES)


def pullable(image: str, servers: Iterable[str], *, any_image: bool = False) -> bool:
    """Whether the registry has ``image`` (any, in a conformance run) and lets an instance with
    credentials for ``servers`` pull it."""
    return (any_image or known_image(image)) and pull_allowed(image, servers)


def known_image(image: str) -> bool:
    name = image_name(image)
    return name in SERVERS or name in TOOLS or image.startswith("sim/")


def behaviour(
    image: str, command: Sequence[str], args: Sequence[str], env: Mapping[str, str] | None = None
) -> Behaviour:
    """How a container of a known image behaves when started with ``command`` + ``args`` in ``env``."""
    argv = [*command, *args]
    name = image_name(image)
    if not argv:
        if name in TOOLS:
            return Behaviour(0.0)  # a shell or interpreter with no input exits at once
        # A server, or an image outside the catalog (pulled only with the any-image setting): runs until stopped.
        return Behaviour(None, web_server=name in WEB_SERVERS, output=_banner(name))
    program = argv[0].rsplit("/", 1)[-1]
    if program in WEB_SERVERS:
        return Behaviour(None, web_server=True, output=_banner(program))
    if program == "perl":
        return _perl(argv)
    result = run_shell(argv, unknown_runs_forever=True, env=env)
    if result is None:
        return Behaviour(None, output=(f"simulated: {shlex.join(argv)}",))
    return Behaviour(result.seconds, result.exit_code, result.output)


def run_shell(
    argv: Sequence[str], *, unknown_runs_forever: bool = False, env: Mapping[str, str] | None = None
) -> ShellResult | None:
    """Interpret a tiny shell: ``sh -c SCRIPT`` or a single command; None if it would run forever.

    Commands: echo, printf (no formats), sleep, exit, true, false, pwd, hostname, env, printenv;
    joined by ``;``, ``&&`` and ``||``; ``$VAR`` and ``${VAR}`` in a script expand from ``env``
    (not inside single quotes). An unknown command is "not found" (127), or, for a container's
    main command when ``unknown_runs_forever``, a process that runs until stopped (None).
    """
    env = env or {}
    if not argv:
        return ShellResult((), 0, 0.0)
    if argv[0] in SHELLS:
        if len(argv) >= 3 and argv[1] == "-c":
            script = argv[2]
        elif len(argv) == 1:
            return ShellResult((), 0, 0.0)
        else:
            return ShellResult((f"{argv[0]}: can't open '{argv[1]}': No such file or directory",), 2, 0.0)
        script = _expand(script, env)
        try:
            words = shlex.split(script.replace(";", " ; ").replace("&&", " && ").replace("||", " || "))
        except ValueError as exc:
            return ShellResult((f"sh: syntax error: {exc}",), 2, 0.0)
    else:
        words = list(argv)
    output: list[str] = []
    seconds, status = 0.0, 0
    skip = False
    for command, joiner in _split(words):
        if not skip:
            result = _builtin(command, env)
            if result is None:
                if unknown_runs_forever:
                    return None
                output.append(f"sh: {command[0]}: not found")
                status = 127
            else:
                lines, status, took, exited = result
                output.extend(lines)
                seconds += took
                if exited:
                    break
        skip = (joiner == "&&" and status != 0) or (joiner == "||" and status == 0)
    return ShellResult(tuple(output), status, seconds)


def _split(words: list[str]) -> list[tuple[list[str], str]]:
    commands: list[tuple[list[str], str]] = []
    current: list[str] = []
    for word in words:
        if word in (";", "&&", "||"):
            if current:
                commands.append((current, word))
            current = []
        else:
            current.append(word)
    if current:
        commands.append((current, ";"))
    return commands


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _expand(script: str, env: Mapping[str, str]) -> str:
    """``$VAR``/``${VAR}`` replaced by its value (empty when unset), except inside single quotes."""
    parts = script.split("'")
    for i in range(0, len(parts), 2):  # even parts are outside single quotes
        parts[i] = _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), parts[i])
    return "'".join(parts)


def _builtin(command: list[str], env: Mapping[str, str]) -> tuple[list[str], int, float, bool] | None:
    """(output lines, exit status, seconds taken, whether the shell exits) or None if unknown."""
    name, rest = command[0].rsplit("/", 1)[-1], command[1:]
    if name == "echo":
        if rest[:1] == ["-n"]:
            rest = rest[1:]
        return [" ".join(rest)], 0, 0.0, False
    if name == "printf":
        return ["".join(rest).replace("\\n", "\n").rstrip("\n")], 0, 0.0, False
    if name == "sleep":
        try:
            return [], 0, float(rest[0].rstrip("s")) if rest else 0.0, False
        except ValueError:
            return [f"sleep: invalid number '{rest[0]}'"], 1, 0.0, False
    if name == "exit":
        try:
            return [], int(rest[0]) % 256 if rest else 0, 0.0, True
        except ValueError:
            return [f"sh: exit: Illegal number: {rest[0]}"], 2, 0.0, True
    if name == "true":
        return [], 0, 0.0, False
    if name == "false":
        return [], 1, 0.0, False
    if name == "pwd":
        return ["/"], 0, 0.0, False
    if name == "hostname":
        return ["eci-sim"], 0, 0.0, False
    if name == "env" and not rest:
        return [f"{key}={value}" for key, value in env.items()], 0, 0.0, False
    if name == "printenv":
        if not rest:
            return [f"{key}={value}" for key, value in env.items()], 0, 0.0, False
        return [env[key] for key in rest if key in env], 0 if all(key in env for key in rest) else 1, 0.0, False
    return None


def _perl(argv: list[str]) -> Behaviour:
    script = " ".join(argv[1:])
    match = re.search(r"bpi\((\d+)\)", script)
    if match and "bignum" in script:
        digits = min(int(match.group(1)), 100_000)
        return Behaviour(max(1.0, digits / 2000), 0, (pi(digits),))
    return Behaviour(0.0)


def pi(digits: int) -> str:
    """Pi to ``digits`` significant digits, rounded, as Perl's ``bpi(digits)`` prints it."""
    if digits < 1:
        raise ValueError("digits must be >= 1")
    guard = 10
    scale: int = 10 ** (digits + guard)

    def arctan_inverse(x: int) -> int:  # arctan(1/x) * scale, by its Taylor series
        total = term = scale // x
        x2, n, sign = x * x, 1, 1
        while term:
            term //= x2
            n += 2
            sign = -sign
            total += sign * (term // n)
        return total

    value: int = 4 * (4 * arctan_inverse(5) - arctan_inverse(239))  # Machin's formula
    rounded = (value + 5 * 10**guard) // 10 ** (guard + 1)  # "3" and digits-1 decimals
    text = str(rounded)
    return text if digits == 1 else f"{text[0]}.{text[1:]}"


def _banner(name: str) -> tuple[str, ...]:
    if name == "nginx":
        return (
            "/docker-entrypoint.sh: Configuration complete; ready for start up",
            "nginx: [notice] start worker processes",
        )
    return (f"{name}: started",)


def access_line(at: float, index: int) -> str:
    stamp = datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'10.0.0.1 - - [{stamp}] "GET / HTTP/1.1" 200 615 "-" "kube-probe/1.33" "-" {index}'


def log_lines(
    behaviour: Behaviour,
    started: float,
    until: float,
    *,
    interval: float,
    since: float | None = None,
    tail: int | None = None,
) -> list[tuple[float, str]]:
    """The lines a run wrote between ``started`` and ``until`` (timestamp, text), oldest first.

    ``since`` drops older lines and ``tail`` keeps the last N, without generating the rest: a
    web server up for a day has thousands of access lines and only the asked-for ones are made.
    """
    lines: list[tuple[float, str]] = []
    if until < started:
        return lines
    for line in behaviour.output:
        for part in line.split("\n"):
            lines.append((started, part))
    if behaviour.web_server and interval > 0:
        count = int((until - started) // interval)
        first = 1
        if since is not None:
            first = max(first, int((since - started) // interval))
        if tail is not None:
            first = max(first, count - tail + 1)
        lines.extend((started + k * interval, access_line(started + k * interval, k)) for k in range(first, count + 1))
    if since is not None:
        lines = [line for line in lines if line[0] >= since]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return lines
