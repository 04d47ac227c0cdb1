"""Lifecycle hooks and termination messages in the simulated cloud, from the workload model.

Nothing runs. An ``exec`` hook is interpreted by the workload model's small shell
(``sh -c 'sleep 5'`` takes 5 simulated seconds, an unknown command is "not found", 127); an HTTP
GET or a TCP connection to the instance succeeds when the container listens on the port (one it
declares, or 80 for a web server image), else it is refused, as a connection would be. A preStop
hook runs when the instance is deleted and holds it Terminating for as long as it takes, at most
the grace period (``TerminationGracePeriodSeconds``). A container that fails with
``FallbackToLogsOnError`` leaves the tail of its log as its termination message, as the kubelet
reads it (the last 80 lines, at most 2048 bytes).
"""

from __future__ import annotations

import dataclasses

from vnode.cloudsim import model, workloads

__all__ = ["Outcome", "message", "post_start", "pre_stop", "run"]

#: What the kubelet keeps of a log as a termination message.
MESSAGE_LINES = 80
MESSAGE_BYTES = 2048


@dataclasses.dataclass(frozen=True)
class Outcome:
    seconds: float  # how long the hook ran (inf: it would not end by itself)
    ok: bool
    detail: str = ""  # why it failed


def _describe(hook: model.Hook) -> str:
    if hook.exec:
        return f"Exec lifecycle hook ({list(hook.exec)})"
    if hook.http_port is not None:
        return f"HTTP lifecycle hook ({hook.http_path}:{hook.http_port})"
    return f"TCP lifecycle hook ({hook.tcp_port})"


def run(inst: model.Instance, spec: model.ContainerSpec, hook: model.Hook) -> Outcome:
    """What ``hook`` of the container ``spec`` of ``inst`` does, per the workload model."""
    if hook.exec:
        result = workloads.run_shell(hook.exec, env=inst.environment(spec), unknown_runs_forever=False)
        assert result is not None  # run_shell returns None only when unknown_runs_forever
        if result.exit_code != 0:
            output = "\n".join(result.output)
            return Outcome(result.seconds, False, f"command exited with {result.exit_code}: {output}")
        return Outcome(result.seconds, True)
    port = hook.http_port if hook.http_port is not None else hook.tcp_port
    host = hook.http_host or hook.tcp_host
    listening = {p.port for p in spec.ports}
    if workloads.image_name(spec.image) in workloads.WEB_SERVERS:
        listening.add(80)
    if (host and host != inst.ip) or port in listening:
        return Outcome(0.0, True)
    return Outcome(0.0, False, f"dial tcp {host or inst.ip}:{port}: connect: connection refused")


def pre_stop(inst: model.Instance, t: float) -> float:
    """Run the preStop hooks of the running containers at deletion, recording an event for each:
    how long the instance stays Terminating for them (the longest, at most the grace period)."""
    grace = float(inst.spec.termination_grace_seconds)
    longest = 0.0
    for spec, container in zip(inst.spec.containers, inst.containers, strict=True):
        if spec.pre_stop is None or container.current.state != "Running":
            continue
        outcome = run(inst, spec, spec.pre_stop)
        what = f"{_describe(spec.pre_stop)} for container {spec.name}"
        if not outcome.ok:
            inst.record(t, "Warning", "FailedPreStopHook", f"{what} failed - error: {outcome.detail}")
        elif outcome.seconds > grace:
            inst.record(t, "Warning", "FailedPreStopHook", f"{what} did not finish within the {grace:g}s grace period")
        else:
            inst.record(t, "Normal", "PreStopHook", f"{what} ran in {outcome.seconds:g}s")
        longest = max(longest, min(outcome.seconds, grace))
    return longest


def post_start(inst: model.Instance, index: int, t: float) -> bool:
    """Run the postStart hook of container ``index`` as it starts (if it has one), recording an
    event; False if it failed: the kubelet then kills the container (restarted per its policy)."""
    spec = inst.spec.containers[index]
    if spec.post_start is None:
        return True
    outcome = run(inst, spec, spec.post_start)
    what = f"{_describe(spec.post_start)} for container {spec.name}"
    if not outcome.ok:
        inst.record(t, "Warning", "FailedPostStartHook", f"{what} failed - error: {outcome.detail}")
        inst.record(t, "Normal", "Killing", f"FailedPostStartHook: stopping container {spec.name}")
        return False
    inst.record(t, "Normal", "PostStartHook", f"{what} ran in {outcome.seconds:g}s")
    return True


def message(inst: model.Instance, index: int, run: model.Run, code: int, t: float, *, interval: float) -> str:
    """The termination message of a run of container ``index`` that ended at ``t`` with ``code``:
    the tail of its log if it failed under ``FallbackToLogsOnError``, else none (the simulated
    processes write no termination-log file)."""
    spec = inst.spec.containers[index]
    if code == 0 or spec.termination_message_policy != "FallbackToLogsOnError":
        return ""
    behaviour = workloads.behaviour(spec.image, spec.command, spec.args, inst.environment(spec))
    lines = workloads.log_lines(behaviour, run.started_at or t, t, interval=interval, tail=MESSAGE_LINES)
    text = "\n".join(line for _, line in lines)
    return text.encode()[-MESSAGE_BYTES:].decode(errors="ignore")
