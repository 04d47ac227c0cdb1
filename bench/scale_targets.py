"""The targets of bench.scale: KWOK's fake nodes (the reference) and vnode's virtual nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from vnode.cluster import kwok, launcher, procs


def _wait_nodes_ready(info: launcher.Info, names: list[str], timeout: float = 60) -> None:
    api = k8s_config.new_client_from_config(config_file=str(info.kubeconfig))  # type: ignore[no-untyped-call]
    core = k8s.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready = {
                n.metadata.name
                for n in core.list_node().items
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            }
            if set(names) <= ready:
                return
            time.sleep(0.2)
    finally:
        api.close()
    raise RuntimeError(f"nodes not Ready after {timeout:.0f}s: {sorted(set(names) - ready)}")


class Kwok:
    name = "kwok"

    def node_names(self, nodes: int) -> list[str]:
        return [f"kwok-bench-{i}" for i in range(nodes)]

    async def start(self, info: launcher.Info, supervisor: procs.Supervisor, nodes: int) -> list[int]:
        binary = kwok.ensure_binary()
        api = k8s_config.new_client_from_config(config_file=str(info.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            taint = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
            manifests = (
                kwok.node(n, cpu="10000", memory="4Ti", pods="5000", taints=[taint]) for n in self.node_names(nodes)
            )
            kwok.register(api, manifests)
        finally:
            api.close()
        proc = supervisor.spawn("kwok", kwok.command(binary, info.kubeconfig))
        await asyncio.to_thread(_wait_nodes_ready, info, self.node_names(nodes))
        return [proc.pid]


TARGETS: dict[str, Callable[[], object]] = {"kwok": Kwok}
