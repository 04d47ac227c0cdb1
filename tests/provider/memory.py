"""A fourth provider, written from the profile and the protocol alone: instances in a dict.

It is what a new provider's author writes first: a ``PROFILE`` (what the core must know), a
``create`` factory, the seven coroutines of ``base.Provider`` with a change feed whose cursor is a
sequence number, and four optional abilities (logs, exec, attach, stats). The contract suite
(``test_contract.py``) runs it next to the built-in providers.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence

from vnode import errors, models, settings
from vnode.provider import base, profile, streams

PROFILE = profile.Profile(
    name="memory",
    factory="tests.provider.memory:create",
    sizes=profile.table({0.5: (1,), 1: (1, 2), 2: (2, 4), 4: (4, 8)}),
    limits=profile.Limits(max_containers=4, max_volumes=4),
    prices=profile.Prices(per_vcpu_second=0.00001, per_gib_second=0.000001),
    taint="memory",
    container_id_scheme="mem",
    volume_kinds=frozenset({"emptyDir"}),
    pod_fields=frozenset({"containers", "containers.command", "containers.args", "restartPolicy"}),
    labels=(("example.com/memory", "true"),),
)


@dataclasses.dataclass(frozen=True)
class Cursor:
    seq: int  # the last change the holder has seen


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class MemoryProvider:
    name = "memory"
    container_id_scheme = PROFILE.container_id_scheme

    def __init__(self) -> None:
        self.instances: dict[str, models.InstanceState] = {}
        self._tokens: dict[str, str] = {}  # client token -> instance id
        self._seq = itertools.count(1)
        self._changed: dict[str, int] = {}  # instance id -> the change that last touched it
        self._gone: dict[str, int] = {}  # instance id -> the change that removed it
        self._ids = itertools.count(1)

    def _touch(self, state: models.InstanceState) -> models.InstanceState:
        self.instances[state.id] = state
        self._changed[state.id] = next(self._seq)
        return state

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        known = self._tokens.get(spec.client_token)
        if known is not None and known in self.instances:
            return self.instances[known]
        containers = tuple(
            models.ContainerStatus(c.name, models.ContainerState.RUNNING, image=c.image, started_at=_now(), ready=True)
            for c in spec.containers
        )
        state = models.InstanceState(
            id=f"mem-{next(self._ids)}",
            status=models.InstanceStatus.RUNNING,
            tags=dict(spec.tags),
            containers=containers,
            ip="10.0.0.1",
            created_at=_now(),
            started_at=_now(),
            cpu=spec.cpu,
            memory_gib=spec.memory_gib,
        )
        self._tokens[spec.client_token] = state.id
        return self._touch(state)

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        if self.instances.pop(instance_id, None) is not None:
            self._changed.pop(instance_id, None)
            self._gone[instance_id] = next(self._seq)

    async def get(self, instance_id: str) -> models.InstanceState:
        if instance_id not in self.instances:
            raise errors.NotFound(f"memory: no instance {instance_id}")
        return self.instances[instance_id]

    async def list(self, tags: Mapping[str, str]) -> Sequence[models.InstanceState]:
        return [s for s in self.instances.values() if s.tags.items() >= tags.items()]

    async def changes(self, tags: Mapping[str, str], cursor: base.Cursor | None) -> base.Changes:
        seq = next(self._seq)
        if not isinstance(cursor, Cursor):
            return base.Changes(changed=await self.list(tags), cursor=Cursor(seq), complete=True)
        changed = [s for i, s in self.instances.items() if self._changed[i] > cursor.seq]
        gone = [i for i, at in self._gone.items() if at > cursor.seq]
        wanted = tags.items()
        return base.Changes([s for s in changed if s.tags.items() >= wanted], gone, Cursor(seq))

    async def quota(self) -> models.Quota:
        return models.Quota(cpu=64, memory_gib=256, pods=100)

    async def close(self) -> None:
        return None

    # --- optional abilities, found by protocol ---

    async def logs(self, instance_id: str, container: str, options: base.LogOptions) -> AsyncIterator[bytes]:
        state = await self.get(instance_id)
        if container not in {c.name for c in state.containers}:
            raise errors.NotFound(f"memory: no container {container} in {instance_id}")
        yield f"{container} of {instance_id} started\n".encode()

    async def exec(
        self, instance_id: str, container: str, command: Sequence[str], *, stdin: bytes = b"", tty: bool = False
    ) -> base.ExecOutput:
        await self.get(instance_id)
        script = list(command[2:3]) if list(command[:2]) == ["sh", "-c"] else [" ".join(command)]
        if script and script[0].startswith("echo "):
            return base.ExecOutput(exit_code=0, stdout=script[0].removeprefix("echo ").encode() + b"\n")
        return base.ExecOutput(exit_code=127, stdout=b"", stderr=f"{command[0]}: not found\n".encode())

    async def attach(self, instance_id: str, container: str, session: streams.Streams, *, tty: bool) -> int | None:
        await self.get(instance_id)
        await session.write_stdout(f"attached to {container}\n".encode())
        return None

    async def stats(self, instance_ids: Sequence[str]) -> Mapping[str, Mapping[str, Mapping[str, float]]]:
        figures = {"cpu_nanocores": 1e6, "memory_working_set_bytes": 2**20, "cpu_usage_core_nanoseconds": 1e9}
        return {i: {c.name: figures for c in self.instances[i].containers} for i in instance_ids if i in self.instances}


def create(config: settings.Settings) -> MemoryProvider:
    return MemoryProvider()
