"""A ConfigMap update, and a renewed service-account token, reach a running pod's volume on ECI: the daemon
(ECI provider) against the simulator."""

from __future__ import annotations

import asyncio
import base64
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cloudsim.conftest import Sim, running
from tests.node.conftest import AheadClock, eci_daemon, pod_manifest
from tests.waiting import until
from vnode.kube import client

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(pathlib.Path(tmp_path_factory.mktemp("refresh-eci")), profile="fast") as started:
        yield started


def groups(sim: Sim, uid: str) -> list[dict[str, Any]]:
    params = {"RegionId": sim.region, "Tag.1.Key": "vnode.io/pod-uid", "Tag.1.Value": uid, "Limit": "20"}
    status, body = sim.raw("DescribeContainerGroups", params)
    assert status == 200, body
    return [g for g in body["ContainerGroups"] if g["Status"] != "Terminating"]


def config_file(sim: Sim, uid: str) -> str | None:
    found = groups(sim, uid)
    if len(found) != 1:
        return None
    (volume,) = [v for v in found[0]["Volumes"] if v["Name"] == "cfg"]
    (item,) = volume["ConfigFileVolumeConfigFileToPaths"]
    return base64.b64decode(item["Content"]).decode()


async def test_a_configmap_update_reaches_the_eci_instance_volume(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    async with eci_daemon(sim, kube, core, node_name, "refresh-eci"):
        cm = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="app"), data={"app.conf": "mode=one"})
        await asyncio.to_thread(core.create_namespaced_config_map, namespace, cm)
        body = pod_manifest(
            "web",
            node_name,
            container={"volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]},
            volumes=[{"name": "cfg", "configMap": {"name": "app"}}],
        )
        await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

        async def running_pod() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "web", namespace)
            return pod if pod.status.phase == "Running" else None

        pod = await until(running_pod, within=30, what="the pod Running")
        uid = pod.metadata.uid
        assert config_file(sim, uid) == "mode=one"
        cm.data = {"app.conf": "mode=two"}
        await asyncio.to_thread(core.replace_namespaced_config_map, "app", namespace, cm)
        await until(lambda: config_file(sim, uid) == "mode=two", within=30, what="the new content on the instance")
        await until(running_pod, within=30, what="the pod Running again after Updating")
        (group,) = groups(sim, uid)
        assert {"Updating", "Updated"} <= {e["Reason"] for e in group["Events"]}
        assert group["Containers"][0]["RestartCount"] == 0


def token_file(sim: Sim, uid: str) -> str | None:
    found = groups(sim, uid)
    if len(found) != 1:
        return None
    (volume,) = [v for v in found[0]["Volumes"] if v["Name"] == "tok"]
    (item,) = [i for i in volume["ConfigFileVolumeConfigFileToPaths"] if i["Path"] == "token"]
    return base64.b64decode(item["Content"]).decode()


async def test_a_short_lived_token_is_renewed_in_the_eci_instance_volume(
    sim: Sim, kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    async with eci_daemon(sim, kube, core, node_name, "tokens-eci") as run:
        assert run.daemon.tokens is not None, "ECI updates volumes"
        clock = run.daemon.tokens.clock = AheadClock()
        body = pod_manifest(
            "web",
            node_name,
            container={"volumeMounts": [{"name": "tok", "mountPath": "/var/run/secrets/tokens"}]},
            volumes=[
                {
                    "name": "tok",
                    "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 600}}]},
                }
            ],
        )
        await asyncio.to_thread(core.create_namespaced_pod, namespace, body)

        async def running_pod() -> Any:
            pod = await asyncio.to_thread(core.read_namespaced_pod, "web", namespace)
            return pod if pod.status.phase == "Running" else None

        pod = await until(running_pod, within=30, what="the pod Running")
        uid = pod.metadata.uid
        first = token_file(sim, uid)
        assert first
        clock.advance(0.8 * 600 + 5)  # 80 % of the token's life, as the API server issued it
        run.daemon.tokens.wake()
        second = await until(
            lambda: (t := token_file(sim, uid)) != first and t, within=30, what="a new token in the instance's volume"
        )
        review = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=second))
        answer = await asyncio.to_thread(k8s.AuthenticationV1Api(core.api_client).create_token_review, review)
        assert answer.status.authenticated, answer.status.error
        await until(running_pod, within=30, what="the pod Running again after Updating")
        (group,) = groups(sim, uid)
        assert group["Containers"][0]["RestartCount"] == 0
