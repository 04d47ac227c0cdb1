"""The daemon reads its pods' Secrets and requests their tokens as its node, as a kubelet does.

With the chart's grants only (tests/node/least_privilege.py), on the real control plane with the
Node authorizer and NodeRestriction: the daemon's own account may read no Secret and mint no
token; acting as its node, it reads exactly the Secrets of the pods bound to that node and
requests tokens only bound to them; it may act as no other node. A stolen daemon token therefore
reads no Secret of a pod elsewhere and mints no token for another account (kube-system's
controllers, say), which the grants it had before (``secrets get`` and ``serviceaccounts/token
create`` on the whole cluster) allowed.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.node import least_privilege
from tests.node.conftest import harnessed, pod_manifest
from tests.waiting import until
from vnode import errors
from vnode.cluster import launcher
from vnode.kube import api, client, identity

pytestmark = pytest.mark.cluster


def token_body(pod_name: str = "", pod_uid: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"expirationSeconds": 600}
    if pod_name:
        spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": pod_uid}
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


async def refused(call: Any) -> str:
    """The message of the Forbidden ``call`` raises (it must raise one)."""
    with pytest.raises(errors.Forbidden) as raised:
        await call
    return raised.value.message


async def running(core: k8s.CoreV1Api, namespace: str, name: str) -> Any:
    pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
    return pod if pod.status.phase == "Running" else None


async def test_the_daemon_reads_its_pods_secrets_as_its_node_and_nothing_else(
    cluster: launcher.Info, kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    for name, value in (("creds", b"mine"), ("elsewhere", b"not-mine")):
        body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), data={"pw": base64.b64encode(value).decode()})
        await asyncio.to_thread(core.create_namespaced_secret, namespace, body)
    manifest = pod_manifest(
        "web",
        node_name,
        container={"env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}]},
    )
    async with (
        least_privilege.daemon_client(cluster, kube_api, namespace, node_name) as limited,
        harnessed(limited, core, node_name) as harness,
    ):
        as_node = identity.as_node(limited, node_name)
        # The daemon's own account: no Secret, no token.
        assert 'cannot get resource "secrets"' in await refused(api.read(limited, api.secrets(namespace), "creds"))
        await refused(api.request_token(limited, namespace, "default", token_body()))
        # As the node, before any pod of it uses the Secret: refused too.
        assert "no relationship found" in await refused(api.read(as_node, api.secrets(namespace), "creds"))

        await harness.start()
        await asyncio.to_thread(core.create_namespaced_pod, namespace, manifest)
        pod = await until(lambda: running(core, namespace, "web"), within=30, what="pod web Running")
        [instance] = [s for s in harness.cloud.instances() if s.pod_uid == pod.metadata.uid]
        container = harness.cloud.spec_of(instance.id).containers[0]
        assert {e.name: e.value for e in container.env}["PW"] == "mine"
        assert any(v.name.startswith("kube-api-access") for v in harness.cloud.spec_of(instance.id).volumes), (
            "the pod's token was requested as the node"
        )

        # As the node: its pod's Secret, and a token bound to its pod; nothing else.
        assert (await api.read(as_node, api.secrets(namespace), "creds")).data["pw"]
        assert "no relationship found" in await refused(api.read(as_node, api.secrets(namespace), "elsewhere"))
        await refused(api.request_token(as_node, "kube-system", "default", token_body()))
        await refused(api.request_token(as_node, namespace, "default", token_body()))  # bound to no pod
        issued = await api.request_token(as_node, namespace, "default", token_body("web", pod.metadata.uid))
        assert issued.status.token
        # No other node: a real node's name is not among the daemon's.
        other = identity.as_node(limited, "a-real-node")
        assert "cannot impersonate" in await refused(api.read(other, api.NODES, node_name))
        with pytest.raises(errors.ConfigError, match="VNODE_NODE_IDENTITY=false"):
            await identity.check(limited, "a-real-node")
        await identity.check(limited, node_name)


async def test_without_node_identity_the_daemon_reads_as_its_own_account(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node_name: str
) -> None:
    """``VNODE_NODE_IDENTITY=false`` (the chart's ``daemon.nodeIdentity=false``): no impersonation at all."""
    body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="creds"), data={"pw": base64.b64encode(b"v").decode()})
    await asyncio.to_thread(core.create_namespaced_secret, namespace, body)
    manifest = pod_manifest(
        "web",
        node_name,
        container={"env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}]},
    )
    async with harnessed(kube, core, node_name) as harness:
        harness.overrides["node_identity"] = False
        run = await harness.start()
        assert run.daemon.as_node is kube
        assert run.daemon.pods.reconciler.as_node is kube
        await asyncio.to_thread(core.create_namespaced_pod, namespace, manifest)
        await until(lambda: running(core, namespace, "web"), within=30, what="pod web Running")
