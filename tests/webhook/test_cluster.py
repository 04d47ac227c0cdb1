"""The webhook against the real control plane: registration, force and burst modes, outages.

The webhook runs in-process on loopback and registers a ``clientConfig.url`` configuration;
KWOK keeps fake nodes Ready and runs the pods bound to them. The fake virtual nodes carry the
labels and taint of vnode's real ones, so scheduling and binding are the real scheduler's.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import json
import socket
import ssl
import subprocess
import sys
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client as k8s

from tests.waiting import wait_for
from tests.webhook.conftest import (
    TEST_LABEL,
    NodePool,
    WebhookFactory,
    deployment,
    free_port,
    pods_of,
)
from vnode.cluster import launcher, procs
from vnode.webhook import certs, registration, service

pytestmark = pytest.mark.cluster

TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}


def tolerations(pod: k8s.V1Pod) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in {"key": t.key, "operator": t.operator, "effect": t.effect}.items() if v}
        for t in pod.spec.tolerations or []
    ]


def is_virtual_ready(pod: k8s.V1Pod) -> bool:
    return TOLERATION in tolerations(pod) and (pod.spec.node_selector or {}).get("type") == "virtual-kubelet"


def all_running(core: k8s.CoreV1Api, namespace: str, app: str, count: int) -> list[k8s.V1Pod] | None:
    pods = pods_of(core, namespace, app)
    if len(pods) == count and all(p.status.phase == "Running" for p in pods):
        return pods
    return None


def test_configuration_is_registered_as_specified(webhooks: WebhookFactory, kube_api: k8s.ApiClient) -> None:
    served = webhooks.serve()
    reg = served.settings.registration
    assert reg is not None
    config = k8s.AdmissionregistrationV1Api(kube_api).read_mutating_webhook_configuration(reg.name)
    ca = (served.settings.tls.cert_dir / "ca.crt").read_bytes()  # type: ignore[union-attr]
    assert len(config.webhooks) == 3
    for hook in config.webhooks:
        assert hook.admission_review_versions == ["v1"]
        assert hook.side_effects == "None"
        assert hook.failure_policy == "Ignore"
        assert hook.timeout_seconds == 3
        assert [(r.operations, r.resources) for r in hook.rules] == [(["CREATE"], ["pods"])]
        assert hook.client_config.url == reg.url
        assert base64.b64decode(hook.client_config.ca_bundle) == ca
        expressions = {(e.key, e.operator, tuple(e.values)) for e in hook.namespace_selector.match_expressions}
        assert ("kubernetes.io/metadata.name", "NotIn", ("kube-system",)) in expressions
        assert (TEST_LABEL, "In", (webhooks.token,)) in expressions
        objects = {(e.key, e.operator, tuple(e.values)) for e in hook.object_selector.match_expressions}
        assert ("vnode.io/virtual-node", "NotIn", ("disabled",)) in objects


def test_replicas_share_the_ca_through_a_secret_and_apply_one_configuration(
    webhooks: WebhookFactory, kube_api: k8s.ApiClient, namespace: str
) -> None:
    name = f"vnode-test-{webhooks.token}"

    def replica(shared: registration.Registration | None = None) -> service.Settings:
        port = free_port()
        tls = service.SelfManagedTLS(webhooks.tmp / f"replica-{port}", ("127.0.0.1",), (namespace, "webhook-ca"))
        settings = webhooks.settings(port=port, name=name, tls=tls)
        # Replicas serve one configuration (in a cluster, behind one Service): the same registration.
        return dataclasses.replace(settings, registration=shared) if shared else settings

    first = webhooks.serve(replica())
    admission = k8s.AdmissionregistrationV1Api(kube_api)
    before = admission.read_mutating_webhook_configuration(name)
    second = webhooks.serve(replica(first.settings.registration))
    after = admission.read_mutating_webhook_configuration(name)
    assert after.metadata.generation == before.metadata.generation  # the second apply changed nothing

    secret = k8s.CoreV1Api(kube_api).read_namespaced_secret("webhook-ca", namespace)
    bundle = base64.b64decode(after.webhooks[0].client_config.ca_bundle)
    assert bundle == base64.b64decode(secret.data["ca.crt"])
    # Both replicas' serving certificates verify against the one registered bundle.
    context = ssl.create_default_context(cadata=bundle.decode())
    for served in (first, second):
        assert served.webhook is not None
        with (
            socket.create_connection(("127.0.0.1", served.webhook.port)) as sock,
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version()


def test_labelled_namespace_sends_a_deployment_to_the_virtual_nodes_spread_over_them(
    webhooks: WebhookFactory, nodes: NodePool, core: k8s.CoreV1Api, namespace: str
) -> None:
    nodes.add_virtual(2)
    nodes.wait_ready()
    served = webhooks.serve()
    webhooks.label(namespace, **{"virtual-node-affinity-injection": "enabled"})
    apps = k8s.AppsV1Api(core.api_client)
    apps.create_namespaced_deployment(namespace, deployment("nginx", 10, extra_spec=nodes.pod_constraints()))

    pods = wait_for(lambda: all_running(core, namespace, "nginx", 10), timeout=60, what="10 nginx pods Running")
    assert all(is_virtual_ready(p) for p in pods)
    placed = collections.Counter(p.spec.node_name for p in pods)
    assert set(placed) == set(nodes.virtual), f"pods should spread over every virtual node: {placed}"
    metrics = served.metrics_text()
    assert 'vnode_webhook_reviews_total{mode="force",result="mutated"} 10.0' in metrics
    # Labels come from the watch cache: at most one read, when the label was newer than the cache.
    fetches = next(line for line in metrics.splitlines() if line.startswith("vnode_webhook_namespace_fetches_total"))
    assert float(fetches.split()[-1]) <= 1


def test_pod_label_sends_one_pod_and_leaves_the_rest_of_the_namespace_alone(
    webhooks: WebhookFactory, core: k8s.CoreV1Api, namespace: str
) -> None:
    webhooks.serve()
    webhooks.label(namespace)  # only the test label: the namespace itself asks for nothing
    container = [{"name": "c", "image": "nginx:alpine"}]
    labelled = {
        "metadata": {"name": "eci", "labels": {"alibabacloud.com/eci": "true"}},
        "spec": {"containers": container},
    }
    plain = {"metadata": {"name": "plain"}, "spec": {"containers": container}}
    opted_out = {"metadata": {"name": "opted-out", "labels": {"alibabacloud.com/eci": "true",
                 "vnode.io/virtual-node": "disabled"}}, "spec": {"containers": container}}  # fmt: skip

    assert is_virtual_ready(core.create_namespaced_pod(namespace, labelled))
    for body in (plain, opted_out):
        created = core.create_namespaced_pod(namespace, body)
        assert not created.spec.tolerations or TOLERATION not in tolerations(created)
        assert not created.spec.node_selector


def test_impossible_constraints_leave_the_pod_unchanged_with_a_warning(
    webhooks: WebhookFactory, cluster: launcher.Info, namespace: str
) -> None:
    webhooks.serve()
    webhooks.label(namespace, **{"virtual-node-affinity-injection": "enabled"})
    spec = {"nodeSelector": {"type": "gpu"}, "containers": [{"name": "c", "image": "nginx:alpine"}]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu"}, "spec": spec}
    result = cluster.kubectl("-n", namespace, "create", "-f", "-", "-o", "json", input=json.dumps(pod))
    created = json.loads(result.stdout)
    assert created["spec"]["nodeSelector"] == {"type": "gpu"}
    assert "tolerations" not in created["spec"] or TOLERATION not in created["spec"]["tolerations"]
    assert "Warning: vnode: pod left unchanged" in result.stderr


def test_burst_fills_regular_nodes_first_and_scale_in_removes_virtual_pods_first(
    webhooks: WebhookFactory, nodes: NodePool, core: k8s.CoreV1Api, namespace: str
) -> None:
    nodes.add_regular(2, cpu="4", memory="8Gi")
    nodes.add_virtual(2)
    nodes.wait_ready()
    served = webhooks.serve()
    webhooks.label(namespace, **{"virtual-node-affinity-injection": "burst"})
    apps = k8s.AppsV1Api(core.api_client)
    apps.create_namespaced_deployment(namespace, deployment("burst", 12, cpu="1", extra_spec=nodes.pod_constraints()))

    pods = wait_for(lambda: all_running(core, namespace, "burst", 12), timeout=90, what="12 burst pods Running")
    placed = collections.Counter("virtual" if p.spec.node_name in nodes.virtual else "regular" for p in pods)
    assert placed == {"regular": 8, "virtual": 4}, placed
    assert all(not p.spec.node_selector for p in pods)  # burst mode never forces

    def costs_set() -> bool:
        current = pods_of(core, namespace, "burst")
        cost = {p.metadata.name: (p.metadata.annotations or {}).get("controller.kubernetes.io/pod-deletion-cost")
                for p in current}  # fmt: skip
        on_virtual = {p.metadata.name for p in current if p.spec.node_name in nodes.virtual}
        return all(cost[n] == "-100" for n in on_virtual) and all(cost[n] is None for n in cost if n not in on_virtual)

    wait_for(costs_set, timeout=30, what="the deletion cost on the 4 pods on virtual nodes (and only on them)")

    apps.patch_namespaced_deployment_scale("burst", namespace, {"spec": {"replicas": 8}})

    def scaled_in() -> list[k8s.V1Pod] | None:
        current = core.list_namespaced_pod(namespace, label_selector="app=burst").items
        return current if len(current) == 8 else None

    remaining = wait_for(scaled_in, timeout=60, what="the deployment to scale in to 8 pods")
    assert all(p.spec.node_name in nodes.regular for p in remaining), "the virtual-node pods should go first"
    assert 'vnode_webhook_deletion_cost_patches_total{result="patched"} 4.0' in served.metrics_text()


def fail_open_count(cluster: launcher.Info, webhook_name: str) -> float:
    metrics = cluster.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("apiserver_admission_webhook_fail_open_count") and f'name="{webhook_name}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_outage_with_failure_policy_ignore_creates_pods_unchanged(
    webhooks: WebhookFactory, cluster: launcher.Info, core: k8s.CoreV1Api, namespace: str
) -> None:
    served = webhooks.serve()
    webhooks.label(namespace, **{"virtual-node-affinity-injection": "enabled"})
    container = [{"name": "c", "image": "nginx:alpine"}]
    assert is_virtual_ready(core.create_namespaced_pod(namespace, {"metadata": {"name": "before"},
                                                                    "spec": {"containers": container}}))  # fmt: skip
    assert served.settings.registration is not None
    hook = f"namespace-injection.{served.settings.registration.name}.vnode.io"
    failed_before = fail_open_count(cluster, hook)

    served.stop()  # the configuration stays; nothing answers at its URL
    during = core.create_namespaced_pod(namespace, {"metadata": {"name": "during"}, "spec": {"containers": container}})
    assert not is_virtual_ready(during)
    assert not during.spec.node_selector
    # The API server counts and logs the call it failed open on.
    assert fail_open_count(cluster, hook) == failed_before + 1
    log = (cluster.state_dir / "logs" / "kube-apiserver.log").read_text(errors="replace")
    assert f"Failed calling webhook, failing open {hook}" in log

    served.start()
    after = core.create_namespaced_pod(namespace, {"metadata": {"name": "after"}, "spec": {"containers": container}})
    assert is_virtual_ready(after)


def test_vnode_webhook_command_serves_registers_logs_and_stops(
    webhooks: WebhookFactory, cluster: launcher.Info, core: k8s.CoreV1Api, namespace: str
) -> None:
    port = free_port()
    name = f"vnode-test-{webhooks.token}"
    webhooks.names.add(name)
    log_path = webhooks.tmp / "webhook.log"
    cmd = [sys.executable, "-m", "vnode", "webhook", f"--kubeconfig={cluster.kubeconfig}", f"--port={port}",
           f"--cert-dir={webhooks.tmp / 'cli-certs'}", f"--configuration-name={name}",
           f"--namespace-match={TEST_LABEL}={webhooks.token}", "--log-format=json"]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=procs.die_with_parent)
    try:
        admission = k8s.AdmissionregistrationV1Api(core.api_client)
        wait_for(lambda: admission.read_mutating_webhook_configuration(name), timeout=60, what="the registration")
        webhooks.label(namespace, **{"alibabacloud.com/eci": "true"})
        body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx:alpine"}]}}
        assert is_virtual_ready(core.create_namespaced_pod(namespace, body))
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    reviewed = [entry for entry in lines if entry["msg"] == "pod reviewed"]
    assert reviewed, log_path.read_text()
    assert reviewed[-1]["namespace"] == namespace
    assert reviewed[-1]["mode"] == "force"
    assert reviewed[-1]["result"] == "mutated"


def test_a_rotated_ca_and_certificate_reach_the_configuration_without_a_restart(
    webhooks: WebhookFactory, kube_api: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str
) -> None:
    """Given files (as cert-manager writes them): a new CA and certificate are served and registered in place."""
    files = certs.Files(webhooks.tmp / "tls.crt", webhooks.tmp / "tls.key", webhooks.tmp / "ca.crt")

    def issue(name: str) -> tuple[certs.Pem, certs.Pem]:
        ca = certs.make_ca(name)
        return ca, certs.issue_serving(ca, ["127.0.0.1"])

    first_ca, first = issue("issuer-1")
    files.ca.write_bytes(first_ca.cert)
    certs.write_pair(first, files.cert, files.key)
    served = webhooks.serve(webhooks.settings(tls=service.GivenTLS(files)))
    webhooks.label(namespace, **{"virtual-node-affinity-injection": "enabled"})
    container = [{"name": "c", "image": "nginx:alpine"}]
    assert is_virtual_ready(core.create_namespaced_pod(namespace, {"metadata": {"name": "before"},
                                                                    "spec": {"containers": container}}))  # fmt: skip

    second_ca, second = issue("issuer-2")
    certs.write_pair(second, files.cert, files.key)
    files.ca.write_bytes(second_ca.cert)
    assert served.settings.registration is not None
    admission = k8s.AdmissionregistrationV1Api(kube_api)

    def registered_bundle() -> bytes:
        config = admission.read_mutating_webhook_configuration(served.settings.registration.name)  # type: ignore[union-attr]
        return base64.b64decode(config.webhooks[0].client_config.ca_bundle)

    wait_for(lambda: registered_bundle() == second_ca.cert, timeout=20, what="the new CA bundle in the configuration")
    context = ssl.create_default_context(cadata=second_ca.cert.decode())
    assert served.webhook is not None
    with (
        socket.create_connection(("127.0.0.1", served.webhook.port)) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        # The handshake verifies against the new CA alone; the serial says it is the new certificate.
        peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        assert peer.serial_number == x509.load_pem_x509_certificate(second.cert).serial_number
    after = core.create_namespaced_pod(namespace, {"metadata": {"name": "after"}, "spec": {"containers": container}})
    assert is_virtual_ready(after), "the API server should trust the rotated certificate through the new bundle"
    assert "vnode_webhook_certificate_reloads_total 1.0" in served.metrics_text()
