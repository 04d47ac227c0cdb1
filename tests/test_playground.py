"""`make up`'s world, and stories 1 and 5 on it: scale the StatefulSet of virtual nodes out and in, lose nothing.

The whole playground (control plane, simulated cloud, webhook, KWOK workers, vnode-host and the
Helm chart) starts in a temporary directory, attached to this test session.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.waiting import wait_for
from vnode import models, playground, playground_aci
from vnode.cluster import launcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory, bin_dir: pathlib.Path) -> Iterator[playground.Playground]:
    """The one Playground object: its supervisors hold the children they reap, so every ``down`` is its."""
    state = tmp_path_factory.mktemp("playground")
    options = launcher.Options(state_dir=state, bin_dir=bin_dir, attach=True, node_monitor_grace_period=10)
    made = playground.Playground(state, options=options)
    try:
        yield made
    finally:
        made.down()


@pytest.fixture(scope="module")
def world(pg: playground.Playground) -> playground.Context:
    return pg.up()


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
    assert playground.Playground._node_ready(world, playground_aci.VIRTUAL_NODE)

    # The StatefulSet controller reports the ready replica a little after the node is Ready.
    def ready_statefulset() -> dict[str, Any] | None:
        got: dict[str, Any] = _json(world, "-n", "kube-system", "get", "statefulset", "virtual-node-eci")
        return got if got["status"].get("readyReplicas") == 1 else None

    wait_for(ready_statefulset, timeout=60, what="statefulset virtual-node-eci readyReplicas 1")


def test_scale_out_to_4_then_in_to_1_loses_nothing(world: playground.Context) -> None:
    world.cluster.kubectl("-n", "kube-system", "scale", "statefulset", "virtual-node-eci", "--replicas=4")
    wanted = {f"virtual-node-eci-{i}": True for i in range(4)}
    wait_for(lambda: _virtual_nodes(world) == wanted, timeout=60, what="4 Ready virtual nodes")

    world.cluster.kubectl("create", "namespace", "vk")
    world.cluster.kubectl("label", "namespace", "vk", "virtual-node-affinity-injection=enabled")
    # Pinned to ECI's nodes: the webhook's force mode would spread it over the ACI node too.
    deployment = _json(
        world, "-n", "vk", "create", "deployment", "web", "--image=nginx:alpine", "--replicas=40", "--dry-run=client"
    )
    deployment["spec"]["template"]["spec"]["nodeSelector"] = {"vnode.io/provider": "eci"}
    world.cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    wait_for(lambda: len(_running_pods(world, "vk")) == 40, timeout=180, what="40 pods Running")
    spread = {p["spec"]["nodeName"] for p in _running_pods(world, "vk")}
    assert spread == set(wanted), f"pods only on {sorted(spread)}"

    _kill_9_replica_2_and_see_its_pods_adopted(world)

    world.cluster.kubectl("-n", "kube-system", "scale", "statefulset", "virtual-node-eci", "--replicas=1")

    try:
        wait_for(lambda: _virtual_nodes(world) == {"virtual-node-eci-0": True}, timeout=150, what="nodes 1-3 deleted")
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc}\n{_scale_in_diagnostics(world)}")

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


def _scale_in_diagnostics(ctx: playground.Context) -> str:
    """What the replicas and the host said about stopping: the lines that explain a drain that did not happen."""
    wanted = ("drain", "scale-in", "restart", "signal", "error", "Traceback", "warning", "lease", "standing")
    lines = [ctx.cluster.kubectl("get", "nodes,pods", "-A", "-o", "wide").stdout]
    for log in sorted((ctx.state_dir).glob("process*/*/logs/*.log")):
        picked = [line[:400] for line in log.read_text(errors="replace").splitlines() if any(w in line for w in wanted)]
        lines.append(f"--- {log.relative_to(ctx.state_dir)}: {len(picked)} lines")
        lines += picked[-40:]
    host = (ctx.state_dir / "logs" / "vnode-host.log").read_text(errors="replace").splitlines()
    lines.append("--- vnode-host.log (replica pods)")
    lines += [line[:400] for line in host if "virtual-node-eci-" in line][-60:]
    return "\n".join(lines)


def _replica_pid(ctx: playground.Context, pod_name: str) -> int:
    """The pid of the `vnode run` process that the process provider runs for a replica's pod."""
    for directory in (ctx.state_dir / "process").glob("proc-*"):
        state = json.loads((directory / "state.json").read_text())
        if state.get("tags", {}).get(models.TAG_NAME) != pod_name:
            continue
        status = json.loads((directory / "status.json").read_text())
        return int(status["containers"][0]["process"]["pid"])
    raise AssertionError(f"no process-provider instance for pod {pod_name}")


def _replica_diagnostics(ctx: playground.Context, pod_name: str) -> str:
    """The replica pod as the API server has it, what the host said of it, and what the runners of its
    instances (live, or deleted and kept beside the state directory) said."""
    lines = [ctx.cluster.kubectl("-n", "kube-system", "get", "pod", pod_name, "-o", "yaml", check=False).stdout]
    host = (ctx.state_dir / "logs" / "vnode-host.log").read_text(errors="replace").splitlines()
    lines += ["--- vnode-host.log", *[line[:400] for line in host if pod_name in line][-40:]]
    for directory in [*(ctx.state_dir / "process").glob("proc-*"), *(ctx.state_dir / "process-logs").glob("proc-*")]:
        state = directory / "state.json"
        if state.exists() and json.loads(state.read_text()).get("tags", {}).get(models.TAG_NAME) == pod_name:
            runner = directory / "runner.log"
            said = runner.read_text(errors="replace").splitlines()[-30:] if runner.exists() else ["(no runner.log)"]
            lines += [f"--- {directory.relative_to(ctx.state_dir)}/runner.log", *said]
    return "\n".join(lines)


def _kill_9_replica_2_and_see_its_pods_adopted(ctx: playground.Context) -> None:
    """A controller dying hard: its restart adopts the node's pods, no instance made or lost."""

    def instances_on_node_2() -> dict[str, str]:
        pods = _json(ctx, "-n", "vk", "get", "pods", "--field-selector=spec.nodeName=virtual-node-eci-2")["items"]
        return {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["containerID"] for p in pods}

    before = instances_on_node_2()
    assert before, "no pod on virtual-node-eci-2"
    totals = _cloud(ctx, "totals")
    made = totals["live"] + totals["deleted"]

    def renewed() -> str:
        lease = _json(ctx, "-n", "kube-node-lease", "get", "lease", "virtual-node-eci-2")
        return str(lease["spec"]["renewTime"])

    last_renewal = renewed()
    os.kill(_replica_pid(ctx, "virtual-node-eci-2"), signal.SIGKILL)

    def restarted_and_ready() -> bool:
        pod = _json(ctx, "-n", "kube-system", "get", "pod", "virtual-node-eci-2")
        statuses = pod["status"].get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) >= 1 and bool(statuses[0].get("ready"))

    try:
        wait_for(restarted_and_ready, timeout=60, what="replica 2 restarted and ready")
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc}\n{_replica_diagnostics(ctx, 'virtual-node-eci-2')}")
    # The process runs before it is up (the playground has no readiness probe): its first Lease
    # renewal says the new controller holds the node.
    wait_for(lambda: renewed() != last_renewal, timeout=60, what="the restarted controller renewing its Lease")
    wait_for(lambda: _virtual_nodes(ctx).get("virtual-node-eci-2"), timeout=30, what="virtual-node-eci-2 Ready")
    assert instances_on_node_2() == before  # the same pods on the same instances
    totals = _cloud(ctx, "totals")
    assert totals["live"] + totals["deleted"] == made, "an instance was created or deleted by the restart"


def test_an_aci_node_beside_the_eci_one_runs_a_pod_that_tolerates_azure(world: playground.Context) -> None:
    """Story 3's node: the chart's ACI StatefulSet on vnode-host reads its CA at /etc/vnode/aci-ca."""
    node = _json(world, "get", "node", playground_aci.VIRTUAL_NODE)
    assert {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"} in node["spec"]["taints"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "on-aci", "namespace": "default"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": playground_aci.VIRTUAL_NODE},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}],
            "containers": [{"name": "web", "image": "nginx:alpine"}],
        },
    }
    world.cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:

        def running() -> bool:
            status = _json(world, "get", "pod", "on-aci")["status"]
            return status.get("phase") == "Running"

        wait_for(running, timeout=120, what="pod on-aci Running on virtual-node-aci-0")
        container_id = _json(world, "get", "pod", "on-aci")["status"]["containerStatuses"][0]["containerID"]
        assert container_id.startswith("aci://")
    finally:
        world.cluster.kubectl("delete", "pod", "on-aci", "--wait=true", "--timeout=120s", check=False)


def test_helm_uninstall_leaves_no_instance(pg: playground.Playground, world: playground.Context) -> None:
    result = pg._helm(world, "uninstall", playground.RELEASE, "--timeout=3m", "--wait")
    assert result.returncode == 0, result.stderr

    wait_for(lambda: _cloud(world, "totals")["live"] == 0, timeout=120, what="no live instance in the cloud")


def test_down_leaves_no_process_behind(pg: playground.Playground, world: playground.Context) -> None:
    pg.down()
    mark = os.fsencode(str(world.state_dir))

    def left() -> list[str]:
        found = []
        for entry in pathlib.Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                parts = [(entry / "cmdline").read_bytes(), (entry / "environ").read_bytes()]
                parts.append(os.fsencode(os.readlink(entry / "cwd")))
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and any(mark in part for part in parts):
                found.append(parts[0].replace(b"\0", b" ").decode(errors="replace"))
        return found

    wait_for(lambda: not left(), timeout=30, what=lambda: f"no process of the playground left: {left()}")
