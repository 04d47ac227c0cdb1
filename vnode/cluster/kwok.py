"""Simulated regular worker nodes for the local control plane, run by KWOK.

Burst mode needs regular nodes to fill before pods overflow to virtual ones. KWOK keeps
Node objects Ready (a Lease renewed every quarter of ``--node-lease-duration-seconds``)
and moves the pods bound to them through its default "fast" stages: Running and Ready at
once, removed at once when deleted. It manages only nodes annotated
``kwok.x-k8s.io/node=fake``, so it never touches vnode's own virtual nodes.

``python -m vnode.cluster.kwok --kubeconfig K --nodes 2`` registers the nodes and then
becomes KWOK (exec), so a process supervisor sees KWOK itself. Tests use ``command``,
``node`` and ``register`` directly.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from vnode.cluster import build

PACKAGE = "sigs.k8s.io/kwok/cmd/kwok"
MANAGED_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# With a 10 s node-monitor grace (the test suite's), a lease renewed every 2 s never lapses.
LEASE_SECONDS = 8


def ensure_binary(version: str = build.KWOK_VERSION) -> pathlib.Path:
    """Build kwok once into the tool cache (``tools/kwok/<version>/kwok``) and return its path."""
    return build.ensure_go_tool("kwok", PACKAGE, version)


def command(
    binary: pathlib.Path, kubeconfig: pathlib.Path, *, server_address: str | None = None, cidr: str = "10.244.0.0/16"
) -> list[str]:
    """The kwok command line: manage only annotated nodes, default stages, short leases."""
    key, value = MANAGED_ANNOTATION
    cmd = [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        f"--node-lease-duration-seconds={LEASE_SECONDS}",
        f"--cidr={cidr}",
    ]
    if server_address:
        cmd.append(f"--server-address={server_address}")  # /healthz and /metrics
    return cmd


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """A Node object KWOK will manage. Nodes accept status on create, so capacity is set here."""
    key, value = MANAGED_ANNOTATION
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0", **(annotations or {})},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok",
                **(labels or {}),
            },
        },
        "spec": {"taints": [dict(t) for t in taints]} if taints else {},
        "status": {"allocatable": dict(resources), "capacity": dict(resources)},
    }


def register(api_client: Any, nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Create the nodes with an official ``kubernetes`` ApiClient; ones that exist are left as they are."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api_client)
    names = []
    for obj in nodes:
        try:
            core.create_node(cast(Any, obj))  # the client takes the plain JSON shape too
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
        names.append(obj["metadata"]["name"])
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vnode.cluster.kwok", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    parser.add_argument("--nodes", type=int, default=2, help="how many regular nodes to register (default 2)")
    parser.add_argument("--prefix", default="kwok-node-", help="node names are <prefix><i> (default kwok-node-)")
    parser.add_argument("--cpu", default="4", help="each node's vCPU (default 4)")
    parser.add_argument("--memory", default="8Gi", help="each node's memory (default 8Gi)")
    parser.add_argument("--server-address", default=None, help="serve kwok's /healthz and /metrics here")
    args = parser.parse_args(argv)

    from kubernetes import config as k8s_config

    binary = ensure_binary()
    api = k8s_config.new_client_from_config(config_file=str(args.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        names = [f"{args.prefix}{i}" for i in range(args.nodes)]
        register(api, (node(name, cpu=args.cpu, memory=args.memory) for name in names))
    finally:
        api.close()
    print(f"vnode kwok: nodes {', '.join(names)} registered; starting kwok", file=sys.stderr, flush=True)
    cmd = command(binary, args.kubeconfig, server_address=args.server_address)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    raise SystemExit(main())
