"""No process the process provider ran outlives its pod, whatever the order of kills, restarts and scaling.

The leak once found in a playground (a ``vnode run`` left running without its pod, its directory
deleted and its runner gone) came from daemons killed with ``kill -9`` and restarted by their
runners while the StatefulSet was scaled in and out in quick succession. Five things happen to one
pod's instance here, in every order: its runner is killed, its container is killed (a restart is
due), the daemon restarts (a new provider over the same state dir, which lists first), the pod is
deleted (scale-in), and a pod of the same name is created again (scale-out: a new instance, a new
token). Then the node deletes what is left, as it retries, and ``/proc`` must hold nothing that
names the state dir.

``make fuzz`` (``VNODE_FUZZ_PROFILE=long``) runs all 120 orders; ``make test`` a fixed sample of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import pathlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

from tests.provider.test_process import gone, sh, spec, state_dir
from tests.provider.test_process_mounts_and_reaping import _none_left
from vnode.provider.process import provider as process
from vnode.provider.process import records

OPS = ("kill the runner", "kill the container", "restart the daemon", "delete the pod", "create it again")
__all__ = ["state_dir"]  # the fixture, used by name

ORDERS = list(itertools.permutations(OPS))
SAMPLE = 12  # orders in `make test`, run together
CONTAINER = "setsid sleep 300 & exec sleep 300"  # a child in a session of its own, as daemons have


def _orders() -> list[tuple[str, ...]]:
    if os.environ.get("VNODE_FUZZ_PROFILE", "ci") == "long":
        return ORDERS
    return random.Random(0).sample(ORDERS, SAMPLE)


def _new_provider(state_dir: pathlib.Path) -> process.ProcessProvider:
    return process.ProcessProvider(state_dir, lifeline=os.getpid(), poll_interval=0.05)


def _record(path: pathlib.Path) -> dict[str, Any]:
    """A record the provider wrote, or nothing where it is gone (deleted with its instance)."""
    found = records.read_json(path) if path.exists() else None
    return found if isinstance(found, dict) else {}


def _kill(process_record: object) -> None:
    """kill -9 the process a record names, if it is still the one running."""
    if isinstance(process_record, dict) and records.alive(process_record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process_record["pid"], 9)


class Pod:
    """One pod of the StatefulSet, as the node's controller sees it through its daemon's provider."""

    def __init__(self, state_dir: pathlib.Path, name: str) -> None:
        self.state_dir = state_dir
        self.name = name
        self.provider = _new_provider(state_dir)
        self.instances: list[str] = []

    async def create(self) -> None:
        token = f"{self.name}-{len(self.instances)}"
        created = await self.provider.create(dataclasses.replace(spec(sh("c", CONTAINER), token=token), name=self.name))
        self.instances.append(created.id)

    async def kill_the_runner(self) -> None:
        _kill(_record(self.provider.instance_dir(self.instances[-1]) / "state.json").get("runner"))

    async def kill_the_container(self) -> None:
        status = _record(self.provider.instance_dir(self.instances[-1]) / "status.json")
        for container in status.get("containers") or ():
            _kill(container.get("process"))

    async def restart_the_daemon(self) -> None:
        self.provider = _new_provider(self.state_dir)
        await self.provider.list({})

    async def delete_the_pod(self) -> None:
        await self.provider.delete(self.instances[-1], grace_seconds=1)

    async def run(self, order: tuple[str, ...]) -> None:
        steps: dict[str, Callable[[], Awaitable[None]]] = {
            "kill the runner": self.kill_the_runner,
            "kill the container": self.kill_the_container,
            "restart the daemon": self.restart_the_daemon,
            "delete the pod": self.delete_the_pod,
            "create it again": self.create,
        }
        await self.create()
        for op in order:
            await steps[op]()
        for instance_id in self.instances:  # the node retries until each instance is gone
            await self.provider.delete(instance_id, grace_seconds=1)
            await gone(self.provider, instance_id, within=30)


async def test_no_process_outlives_its_pod_in_any_order(state_dir: pathlib.Path) -> None:
    orders = _orders()
    pods = [Pod(state_dir, f"virtual-node-{i}") for i in range(len(orders))]
    async with asyncio.timeout(120):
        await asyncio.gather(*(pod.run(order) for pod, order in zip(pods, orders, strict=True)))
    await _none_left(state_dir, within=30)
