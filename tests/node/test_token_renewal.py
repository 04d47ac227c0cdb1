"""Projected service-account tokens are renewed in running instances at 80 % of their life, on a real
control plane (the daemon's token clock is moved forward, not waited for)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.node.conftest import AheadClock, Harness, Running, pod_manifest
from tests.waiting import until
from vnode.node import renewal, tokens

pytestmark = pytest.mark.cluster

SHORT = 600  # the API server's minimum expirationSeconds


def short_token_pod(name: str, node: str) -> dict[str, Any]:
    return pod_manifest(
        name,
        node,
        container={"volumeMounts": [{"name": "tok", "mountPath": "/var/run/secrets/tokens"}]},
        volumes=[
            {
                "name": "tok",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": SHORT}}]},
            }
        ],
    )


def token_in_cloud(harness: Harness, uid: str) -> str:
    [instance] = [s for s in harness.cloud.instances() if s.pod_uid == uid]
    [volume] = [v for v in harness.cloud.spec_of(instance.id).volumes if v.name == "tok"]
    return {f.path: f.content for f in volume.files}["token"].decode()


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return result


def renewer(run: Running) -> renewal.Renewer:
    assert run.daemon.tokens is not None, "the fake cloud updates volumes"
    return run.daemon.tokens


async def running(core: k8s.CoreV1Api, namespace: str, name: str) -> Any:
    pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
    return pod if pod.status.phase == "Running" else None


async def test_a_short_lived_token_is_renewed_in_the_instance_at_80_percent_of_its_life(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    run = await harness.start()
    clock = AheadClock()
    renewer(run).clock = clock
    await asyncio.to_thread(core.create_namespaced_pod, namespace, short_token_pod("web", harness.node_name))
    pod = await until(lambda: running(core, namespace, "web"), within=20, what="pod Running")
    uid = pod.metadata.uid
    first = token_in_cloud(harness, uid)
    assert claims(first)["exp"] - claims(first)["iat"] == SHORT

    clock.advance(0.8 * SHORT + 5)
    renewer(run).wake()
    second = await until(
        lambda: (t := token_in_cloud(harness, uid)) != first and t, within=20, what="a new token in the instance"
    )
    assert claims(second)["iat"] > claims(first)["iat"] or claims(second)["jti"] != claims(first)["jti"]
    assert claims(second)["kubernetes.io"]["pod"]["uid"] == uid  # bound to the pod, as the first
    review = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=second))
    answer = await asyncio.to_thread(k8s.AuthenticationV1Api(core.api_client).create_token_review, review)
    assert answer.status.authenticated, answer.status.error
    assert answer.status.user.username == f"system:serviceaccount:{namespace}:default"
    # Both token volumes (this one and kube-api-access) went out in one update; env is untouched.
    [(_, _, names)] = harness.cloud.volume_updates
    assert "tok" in names
    assert len(names) == 2

    # Deleted, the pod leaves the schedule and the renewer's maps.
    await asyncio.to_thread(core.delete_namespaced_pod, "web", namespace)
    await until(lambda: f"{namespace}/web" not in renewer(run).schedule, within=20, what="the pod off the schedule")
    assert renewer(run).footprint <= 16  # stale heap entries at most, until the heap's next rebuild


async def test_a_restarted_daemon_does_not_renew_young_tokens_at_once_and_renews_them_when_due(
    harness: Harness, core: k8s.CoreV1Api, namespace: str
) -> None:
    first_run = await harness.start()
    await asyncio.to_thread(core.create_namespaced_pod, namespace, short_token_pod("web", harness.node_name))
    pod = await until(lambda: running(core, namespace, "web"), within=20, what="pod Running")
    uid = pod.metadata.uid
    first = token_in_cloud(harness, uid)
    await first_run.stop()

    second_run = await harness.start()
    clock = AheadClock()
    renewer(second_run).clock = clock
    key = f"{namespace}/web"
    # It did not see the token issued: it derives the due time from the instance's creation (a first
    # look comes a few seconds later, once the cloud is listed).
    schedule = renewer(second_run).schedule
    due = await until(
        lambda: (d := schedule.due(key)) is not None and d > clock() + 60 and d, within=20, what="the derived due time"
    )
    [instance] = [s for s in harness.cloud.instances() if s.pod_uid == uid]
    assert instance.created_at is not None
    assert due == pytest.approx(instance.created_at.timestamp() - tokens.CREATE_MARGIN + 0.8 * SHORT)
    assert harness.cloud.volume_updates == []
    clock.advance(0.8 * SHORT)
    renewer(second_run).wake()
    await until(lambda: token_in_cloud(harness, uid) != first, within=20, what="the renewed token")
