"""`make up`'s world, and stories 1 and 5 on it: scale the StatefulSet of virtual nodes out and in, lose nothing.

The whole playground (control plane, simulated cloud, webhook, KWOK workers, vnode-host and the
Helm chart) starts in a temporary directory, attached to this test session.
"""

from __future__ import annotations

import json
import pathlib
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.waiting import wait_for
from vnode import playground
from vnode.cluster import launcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# Known, open (see the session note): one replica out of several sometimes does not drain on
# scale-in (its node stays NotReady with its pods), and then uninstall leaves its instances.
# Kept running so that every report shows whether it still happens; not strict, since it is
# intermittent.
INTERMITTENT_DRAIN = pytest.mark.xfail(reason="a replica sometimes skips its drain on scale-in", strict=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, bin_dir: pathlib.Path) -> Iterator[playground.Context]:
    state = tmp_path_factory.mktemp("playground")
    options = launcher.Options(state_dir=state, bin_dir=bin_dir, attach=True, node_monitor_grace_period=10)
    pg = playground.Playground(state, options=options)
    try:
        yield pg.up()
    finally:
        pg.down()


def _json(ctx: playground.Context, *args: str) -> Any:
    return json.loads(ctx.cluster.kubectl(*args, "-o", "json").stdout)


def _virtual_nodes(ctx: playground.Context) -> dict[str, bool]:
    nodes = _json(ctx, "get", "nodes")["items"]
    return {
        n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        for n in nodes
        if n["metadata"]["name"].startswith("virtual-node-eci-")
    }


def _cloud(ctx: playground.Context, path: str) -> Any:
    admin = playground.cloud_info(ctx.state_dir)["admin_url"]
    with urllib.request.urlopen(admin + path, timeout=5) as resp:
        return json.loads(resp.read())


def _running_pods(ctx: playground.Context, namespace: str) -> list[dict[str, Any]]:
    pods = _json(ctx, "-n", namespace, "get", "pods")["items"]
    return [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def test_make_up_gives_a_ready_virtual_node_on_the_chart(world: playground.Context) -> None:
    assert _virtual_nodes(world) == {"virtual-node-eci-0": True}
    sts = _json(world, "-n", "kube-system", "get", "statefulset", "virtual-node-eci")
    assert sts["status"]["readyReplicas"] == 1


@INTERMITTENT_DRAIN
def test_scale_out_to_4_then_in_to_1_loses_nothing(world: playground.Context) -> None:
    world.cluster.kubectl("-n", "kube-system", "scale", "statefulset", "virtual-node-eci", "--replicas=4")
    wanted = {f"virtual-node-eci-{i}": True for i in range(4)}
    wait_for(lambda: _virtual_nodes(world) == wanted, timeout=60, what="4 Ready virtual nodes")

    world.cluster.kubectl("create", "namespace", "vk")
    world.cluster.kubectl("label", "namespace", "vk", "virtual-node-affinity-injection=enabled")
    world.cluster.kubectl("-n", "vk", "create", "deployment", "web", "--image=nginx:alpine", "--replicas=40")
    wait_for(lambda: len(_running_pods(world, "vk")) == 40, timeout=180, what="40 pods Running")
    spread = {p["spec"]["nodeName"] for p in _running_pods(world, "vk")}
    assert spread == set(wanted), f"pods only on {sorted(spread)}"

    world.cluster.kubectl("-n", "kube-system", "scale", "statefulset", "virtual-node-eci", "--replicas=1")

    wait_for(lambda: _virtual_nodes(world) == {"virtual-node-eci-0": True}, timeout=150, what="nodes 1-3 deleted")

    def all_back_on_node_0() -> bool:
        running = _running_pods(world, "vk")
        return len(running) == 40 and {p["spec"]["nodeName"] for p in running} == {"virtual-node-eci-0"}

    wait_for(all_back_on_node_0, timeout=180, what="40 pods Running on virtual-node-eci-0")
    live_uids = {p["metadata"]["uid"] for p in _json(world, "-n", "vk", "get", "pods")["items"]}

    def no_instance_of_a_deleted_pod() -> bool:
        tags = _cloud(world, "totals")["by_tag"]
        instance_uids = {key.split("=", 1)[1] for key in tags if key.startswith("vnode.io/pod-uid=")}
        return instance_uids == live_uids

    wait_for(no_instance_of_a_deleted_pod, timeout=60, what="one instance per live pod, none for deleted ones")


@INTERMITTENT_DRAIN
def test_helm_uninstall_leaves_no_instance(world: playground.Context) -> None:
    pg = playground.Playground(world.state_dir)
    result = pg._helm(world, "uninstall", playground.RELEASE, "--timeout=3m", "--wait")
    assert result.returncode == 0, result.stderr

    wait_for(lambda: _cloud(world, "totals")["live"] == 0, timeout=120, what="no live instance in the cloud")
