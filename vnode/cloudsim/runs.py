"""What an instance's containers say and do: their logs and exec, from the workload model.

Nothing is stored: a container's log is computed on read from its image, command and run
times (``workloads``), and an exec runs the command in the workload model's small shell.
"""

from __future__ import annotations

import dataclasses

from vnode.cloudsim import errors, model, timefmt, workloads


@dataclasses.dataclass(frozen=True)
class LogQuery:
    container: str = ""
    tail: int | None = None
    since_seconds: float | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False


@dataclasses.dataclass(frozen=True)
class ExecResult:
    output: str
    exit_code: int


def logs(inst: model.Instance, query: LogQuery, now: float, *, interval: float) -> tuple[str, str]:
    """(container name, log text) of one container's current or previous run."""
    index = 0
    if query.container:
        names = [c.name for c in inst.spec.containers]
        if query.container not in names:
            raise errors.NotFound(f"The container {query.container} does not exist in {inst.id}.")
        index = names.index(query.container)
    spec, state = inst.spec.containers[index], inst.containers[index]
    run = state.previous if query.previous else state.current
    if run is None or not run.started_at:
        if query.previous:
            raise errors.InvalidParameter("LastTime", f"container {spec.name} has no previous run")
        return spec.name, ""
    until = run.finished_at if run.state == "Terminated" else now
    behaviour = workloads.behaviour(spec.image, spec.command, spec.args, inst.environment(spec))
    since = now - query.since_seconds if query.since_seconds is not None else None
    lines = workloads.log_lines(
        behaviour,
        run.started_at,
        until,
        interval=interval,
        since=since,
        tail=query.tail,
    )
    if query.timestamps:
        text = "".join(f"{timefmt.rfc3339_exact(at, nanos=True)} {line}\n" for at, line in lines)
    else:
        text = "".join(f"{line}\n" for _, line in lines)
    if query.limit_bytes is not None:
        text = text.encode()[: query.limit_bytes].decode(errors="ignore")
    return spec.name, text


def exec(inst: model.Instance, container: str, command: list[str]) -> ExecResult:
    """Run ``command`` in a running container, as the workload model answers it."""
    names = [c.name for c in inst.spec.containers]
    name = container or names[0]
    if name not in names:
        raise errors.NotFound(f"The container {name} does not exist in {inst.id}.")
    if inst.containers[names.index(name)].current.state != "Running":
        raise errors.IncorrectStatus(f"The container {name} is not running.")
    result = workloads.run_shell(command, env=inst.environment(inst.spec.containers[names.index(name)]))
    assert result is not None  # run_shell returns None only when unknown_runs_forever
    return ExecResult("".join(f"{line}\n" for line in result.output), result.exit_code)
