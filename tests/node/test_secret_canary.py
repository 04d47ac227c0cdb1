"""Secrets never leak (issue #13): a canary value in a Secret that a pod uses three ways (env,
envFrom, a volume), and the cloud's own access key secret, through a pod's whole life on an ECI
node (real control plane, the daemon on the simulator) with debug logging and a failing first
create, are found in no log line, event, pod status or annotation, metric, cloud tag, instance
name or simulator console page.

The instance's environment and files carry the value to the cloud, as they must: that is the
one place it goes (DescribeContainerGroups shows an instance's environment, as ECI does).
"""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
from alibabacloud_eci20180808 import models as m
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import eci_daemon, pod_manifest
from tests.waiting import until
from vnode.kube import client

pytestmark = pytest.mark.cluster

CANARY = "canary-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("canary")), profile="fast") as started:
        yield started


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def _group(sim: Sim, uid: str) -> Any:
    request = m.DescribeContainerGroupsRequest(
        region_id=sim.region, tag=[m.DescribeContainerGroupsRequestTag(key="vnode.io/pod-uid", value=uid)]
    )
    groups = sim.client().describe_container_groups(request).body.container_groups
    return groups[0] if groups else None


async def test_a_secrets_value_and_the_cloud_credentials_appear_nowhere_but_in_the_instance(
    sim: Sim,
    kube: client.Client,
    core: k8s.CoreV1Api,
    namespace: str,
    node_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    cloud_secret = sim.info["eci"]["access_key_secret"]
    secret = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="canary"), string_data={"PASSWORD": CANARY})
    await asyncio.to_thread(core.create_namespaced_secret, namespace, secret)
    container = {
        "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "canary", "key": "PASSWORD"}}}],
        "envFrom": [{"secretRef": {"name": "canary"}}],
        "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds", "readOnly": True}],
    }
    body = pod_manifest(
        "app", node_name, container=container, volumes=[{"name": "creds", "secret": {"secretName": "canary"}}]
    )
    found: dict[str, str] = {}
    status, answer = sim.admin(
        "PUT", "faults/create", {"error_rate": 1.0, "error_code": "InternalError", "error_status": 500}
    )
    assert status == 200, answer
    try:
        async with eci_daemon(sim, kube, core, node_name, "canary") as run:
            await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

            def create_failed() -> bool:
                sample = run.daemon.registry.get_sample_value
                return bool(
                    sample(
                        "vnode_cloud_calls_total", {"node": node_name, "action": "create", "result": "InternalError"}
                    )
                )

            await until(create_failed, within=30, what="a create the cloud refused")
            sim.admin("DELETE", "faults/create")

            async def running_pod() -> Any:
                pod = await asyncio.to_thread(core.read_namespaced_pod, "app", namespace)
                return pod if pod.status.phase == "Running" else None

            pod = await until(running_pod, within=60, what="the pod Running after the failed create")
            group = await asyncio.to_thread(_group, sim, pod.metadata.uid)
            assert group is not None
            env = {e.key: e.value for e in group.containers[0].environment_vars}
            assert env["DB_PASSWORD"] == env["PASSWORD"] == CANARY, "the instance gets the value: the canary is live"
            found["pod"] = json.dumps(k8s.ApiClient().sanitize_for_serialization(pod))
            found["cloud tags and name"] = json.dumps(
                [group.container_group_name, [(t.key, t.value) for t in group.tags or []]]
            )
            found["console"] = "".join(
                _get(sim.info["console_url"] + path)
                for path in ("", "console/api/summary", "console/api/instances?limit=200")
            )
            found["metrics"] = prometheus_client.generate_latest(run.daemon.registry).decode()

            await asyncio.to_thread(core.delete_namespaced_pod, "app", namespace)

            async def gone() -> bool:
                listed = await asyncio.to_thread(core.list_namespaced_pod, namespace)
                return not listed.items

            await until(gone, within=60, what="the pod gone")
    finally:
        sim.admin("DELETE", "faults/create")
    listed = await asyncio.to_thread(core.list_namespaced_event, namespace)
    found["events"] = json.dumps([(e.reason, e.message, e.note if hasattr(e, "note") else "") for e in listed.items])
    found["logs"] = caplog.text
    assert "InternalError" in found["logs"], "the failed create was logged: the logs are the daemon's"
    for where, text in found.items():
        assert CANARY not in text, f"the Secret's value is in the {where}"
        assert cloud_secret not in text, f"the cloud's access key secret is in the {where}"
