"""The soak's workload, all at once: Deployments scaled up and down, Jobs that succeed and fail,
pods deleted one by one and forcibly, whole namespaces deleted, pods whose Secret appears late.

Every action goes through the API server like a user's kubectl; one that fails (the API server
is being killed, say) is counted and skipped: the workload never stops for a fault.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes import client as k8s

from soak import world as world_mod

log = logging.getLogger("soak.workload")

NAMESPACES = ("soak-a", "soak-b", "soak-c")
LABEL = "soak.vnode.io/workload"


@dataclasses.dataclass(frozen=True)
class Size:
    """How big the workload is for ``pods`` pods: most in Deployments, a tenth in Jobs at any time."""

    pods: int

    @property
    def deployment_size(self) -> int:
        return 100 if self.pods >= 2000 else max(5, self.pods // 20)

    @property
    def deployments(self) -> int:
        return max(1, round(self.pods * 0.8 / self.deployment_size))

    @property
    def job_parallelism(self) -> int:
        return 10 if self.pods >= 2000 else 3

    @property
    def jobs_per_second(self) -> float:
        """Jobs started per second so that about a tenth of the pods are Job pods (about 50 s each)."""
        return self.pods * 0.1 / 50 / self.job_parallelism


def pod_template(labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    container = {
        "name": "app", "image": "nginx:alpine",
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
    }  # fmt: skip
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"labels": labels},
        "spec": {
            "nodeSelector": {"type": "virtual-kubelet"},
            "tolerations": [{"key": world_mod.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 10,
            "containers": [container],
            **spec,
        },
    }


def deployment(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    labels = {"app": name, LABEL: "deployment"}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": pod_template(labels, **spec)},
    }  # fmt: skip


def job(name: str, parallelism: int, seconds: int, exit_code: int) -> dict[str, Any]:
    labels = {LABEL: "job"}
    script = f"sleep {seconds}; exit {exit_code}"
    template = pod_template(
        labels, restartPolicy="Never", container={"image": "busybox", "command": ["sh", "-c", script]}
    )
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"parallelism": parallelism, "completions": parallelism, "backoffLimit": 0,
                 "ttlSecondsAfterFinished": 20, "template": template},
    }  # fmt: skip


class Workload:
    """Runs every stream of actions until :meth:`stop`; ``counts`` says what was done and failed."""

    def __init__(self, api: k8s.ApiClient, size: Size, rng: random.Random, live_pods: Callable[[], list[str]]) -> None:
        self.core, self.apps, self.batch = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.BatchV1Api(api)
        self.size = size
        self.rng = rng
        self.live_pods = live_pods  # namespace/name of the live workload pods (from the soak's pod watch)
        self.counts: collections.Counter[str] = collections.Counter()
        self.stopping = asyncio.Event()
        self.sequence = 0

    async def act(self, what: str, call: Callable[[], Any]) -> bool:
        try:
            await asyncio.to_thread(call)
        except Exception as exc:  # the workload outlives every fault (the API server killed, say)
            if isinstance(exc, k8s.ApiException) and exc.status in (404, 409):
                self.counts[f"{what} (already done)"] += 1
                return False
            self.counts[f"{what} failed"] += 1
            log.debug("%s failed: %s", what, exc)
            return False
        self.counts[what] += 1
        return True

    def name(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}-{self.sequence}"

    async def setup(self) -> None:
        for ns in NAMESPACES:
            await self.act("namespace created", lambda ns=ns: self.core.create_namespace({"metadata": {"name": ns}}))
        for n in range(self.size.deployments):
            ns = NAMESPACES[n % 2]
            body = deployment(f"web-{n}", self.size.deployment_size)
            await self.act(
                "deployment created", lambda ns=ns, body=body: self.apps.create_namespaced_deployment(ns, body)
            )

    async def run(self) -> None:
        streams: list[Callable[[], Awaitable[None]]] = [
            self._scaling, self._jobs, self._deletes, self._namespaces, self._late_secrets,
        ]  # fmt: skip
        async with asyncio.TaskGroup() as group:
            for stream in streams:
                group.create_task(stream())

    def stop(self) -> None:
        self.stopping.set()

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while not self.stopping.is_set():
            await action()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=seconds * (0.5 + self.rng.random()))

    async def _scaling(self) -> None:
        async def scale() -> None:
            n = self.rng.randrange(self.size.deployments)
            replicas = round(self.size.deployment_size * self.rng.uniform(0.5, 1.5))
            body = {"spec": {"replicas": replicas}}
            await self.act("deployment scaled", lambda: self.apps.patch_namespaced_deployment_scale(
                f"web-{n}", NAMESPACES[n % 2], body))  # fmt: skip

        await self._every(20, scale)

    async def burst(self, more: int) -> None:
        """Scale one Deployment up by ``more`` at once: many creates in flight (a daemon kill's moment)."""
        n = self.rng.randrange(self.size.deployments)
        body = {"spec": {"replicas": self.size.deployment_size + more}}
        await self.act("deployment scaled", lambda: self.apps.patch_namespaced_deployment_scale(
            f"web-{n}", NAMESPACES[n % 2], body))  # fmt: skip

    async def _jobs(self) -> None:
        async def start() -> None:
            body = job(self.name("job"), self.size.job_parallelism, self.rng.randint(10, 60),
                       1 if self.rng.random() < 0.2 else 0)  # fmt: skip
            await self.act("job created", lambda: self.batch.create_namespaced_job("soak-c", body))

        await self._every(1 / self.size.jobs_per_second, start)

    async def _deletes(self) -> None:
        async def delete() -> None:
            pods = [p for p in self.live_pods() if p.split("/")[0] in NAMESPACES[:2]]
            if not pods:
                return
            ns, name = self.rng.choice(pods).split("/")
            force = self.rng.random() < 0.1
            what = "pod force-deleted" if force else "pod deleted"
            await self.act(what, lambda: self.core.delete_namespaced_pod(
                name, ns, grace_period_seconds=0 if force else None))  # fmt: skip

        await self._every(2, delete)

    async def delete_fresh(self, pods: list[str]) -> None:
        """Delete pods created moments ago (their creates are still slow in the cloud): deletes racing creates."""
        for key in pods:
            ns, name = key.split("/")
            await self.act("fresh pod deleted", lambda ns=ns, name=name: self.core.delete_namespaced_pod(name, ns))

    async def _namespaces(self) -> None:
        async def cycle() -> None:
            ns = self.name("soak-tmp")
            if not await self.act("namespace created", lambda: self.core.create_namespace({"metadata": {"name": ns}})):
                return
            body = deployment("tmp", max(5, self.size.deployment_size // 4))
            await self.act("deployment created", lambda: self.apps.create_namespaced_deployment(ns, body))
            await self._pause(90)
            await self.act("namespace deleted", lambda: self.core.delete_namespace(ns))

        await self._every(120, cycle)

    async def _late_secrets(self) -> None:
        async def late() -> None:
            name = self.name("late")
            volume = {"name": "s", "secret": {"secretName": name}}
            mount = {"volumeMounts": [{"name": "s", "mountPath": "/etc/late"}]}
            body = deployment(name, 3, volumes=[volume], container=mount)
            await self.act("deployment created", lambda: self.apps.create_namespaced_deployment("soak-c", body))
            await self._pause(self.rng.uniform(20, 60))
            secret = {"metadata": {"name": name}, "stringData": {"token": name}}
            await self.act("late secret created", lambda: self.core.create_namespaced_secret("soak-c", secret))
            await self._pause(120)
            await self.act("deployment deleted", lambda: self.apps.delete_namespaced_deployment(name, "soak-c"))

        await self._every(60, late)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def teardown(self, namespaces: list[str]) -> None:
        for ns in namespaces:
            await self.act("namespace deleted", lambda ns=ns: self.core.delete_namespace(ns))
