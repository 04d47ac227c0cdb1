"""Simulated resource usage: what a container's CPU and memory read at a given moment.

The clouds' metrics APIs report a rate (ECI's ``UsageNanoCores``, Azure Monitor's ``CpuUsage``
in millicores) next to a cumulative counter (ECI's ``UsageCoreNanoSeconds``), and their readers
(metrics-server) compute rates by differencing the counter. So usage is defined here by the
cumulative CPU of a container's current run, a pure function of the run's start (and end) and
the time asked: a rate that is constant over the run, times the seconds it ran. Nothing is
stored, 30,000 instances cost nothing, the counter only grows within a run, and a restart starts
it again from zero (as cAdvisor's does for a new container).

The rate comes from what the container does (``workloads.demand``): a busy command (``perl``
computing pi, ``stress --cpu N``, ``yes``, a ``while true`` loop) uses all the CPU it wants up to
its limit; a server idles at a few millicores; ``sleep`` and finished scripts use none. Tests
pin the figures with two tags on the instance: ``cloudsim-cpu-millicores`` (the whole instance's
CPU, shared evenly by its containers) and ``cloudsim-memory-mib`` (likewise).
"""

from __future__ import annotations

import dataclasses
import hashlib

from vnode.cloudsim import model, workloads

TAG_CPU = "cloudsim-cpu-millicores"
TAG_MEMORY = "cloudsim-memory-mib"
MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclasses.dataclass(frozen=True, slots=True)
class RunUsage:
    """One container's current run as the metrics see it: a constant rate between start and end."""

    name: str
    cores: float  # CPU rate while it runs
    memory_bytes: int  # working set while it runs
    started: float  # 0: never started
    ended: float | None  # None: still running
    cpu_limit: float  # cores the container may use
    memory_limit: int  # bytes

    def running(self, at: float) -> bool:
        return bool(self.started) and self.started <= at and (self.ended is None or at < self.ended)

    def overlap(self, start: float, end: float) -> float:
        """Seconds of ``[start, end)`` the run was running."""
        if not self.started:
            return 0.0
        stop = end if self.ended is None else min(end, self.ended)
        return max(0.0, stop - max(start, self.started))

    def core_seconds(self, now: float, start: float | None = None) -> float:
        """Cumulative CPU of the run up to ``now`` (or over ``[start, now)``)."""
        return self.cores * self.overlap(self.started if start is None else start, now)


def _wobble(instance_id: str, container: str) -> float:
    """A stable factor in [0.95, 1.0): instances of one workload do not read exactly alike."""
    digest = hashlib.blake2b(f"{instance_id}/{container}".encode(), digest_size=2).digest()
    return 0.95 + 0.05 * int.from_bytes(digest, "big") / 65536


def _override(inst: model.Instance, key: str) -> float | None:
    value = inst.tag(key)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def of_instance(inst: model.Instance) -> list[RunUsage]:
    """Each container's current run, in spec order."""
    runs = [state.current for state in inst.containers]
    share = len(runs)  # not the running ones: the split must not change a run's past
    cpu_tag = _override(inst, TAG_CPU)
    memory_tag = _override(inst, TAG_MEMORY)
    usages = []
    for spec, run in zip(inst.spec.containers, runs, strict=True):
        cpu_limit = spec.cpu or inst.cpu
        memory_limit = int((spec.memory or inst.memory) * GIB)
        demand = workloads.demand(spec.image, spec.command, spec.args)
        if cpu_tag is not None:
            cores = cpu_tag / 1000 / share
        else:
            cores = min(demand.cores, cpu_limit) * _wobble(inst.id, spec.name)
        if memory_tag is not None:
            memory = int(memory_tag * MIB / share)
        else:
            memory = min(int(demand.memory_mib * MIB * _wobble(inst.id, spec.name + "/memory")), memory_limit)
        started = run.started_at if run.state != "Waiting" else 0.0
        ended = (run.finished_at or started) if run.state == "Terminated" else None
        usages.append(RunUsage(spec.name, cores, memory, started, ended, cpu_limit, memory_limit))
    return usages
