"""Resource usage of a virtual node's pods: the Summary API and the metrics-server scrape."""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.kubelet.conftest import Kubelet
from vnode.kubelet import pods

pytestmark = pytest.mark.cluster


def _fetch(kubelet: Kubelet, path: str) -> tuple[str, str]:
    """GET ``path`` as the API server would (its kubelet-client certificate), checking our serving cert.

    (Not through ``/api/v1/nodes/<node>/proxy``: the API server refuses to proxy to a loopback
    node address, and the test node's address is 127.0.0.1.)
    """
    context = ssl.create_default_context(cafile=str(kubelet.ca_file))
    context.load_cert_chain(kubelet.pki / "apiserver-kubelet-client.crt", kubelet.pki / "apiserver-kubelet-client.key")
    with urllib.request.urlopen(f"https://127.0.0.1:{kubelet.port}{path}", context=context) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_stats_summary_has_the_summary_api_shape(kubelet: Kubelet, pod: pods.PodInstance) -> None:
    content_type, raw = _fetch(kubelet, "/stats/summary")
    assert content_type.startswith("application/json")
    summary = json.loads(raw)
    assert summary["node"]["nodeName"] == kubelet.node
    mine = [p for p in summary["pods"] if p["podRef"]["uid"] == pod.uid]
    assert len(mine) == 1
    (container,) = mine[0]["containers"]
    assert container["name"] == "app"
    assert container["cpu"]["usageNanoCores"] == 250_000_000
    assert container["memory"]["workingSetBytes"] == 64 * 1024 * 1024
    assert container["cpu"]["usageCoreNanoSeconds"] > 0
    assert summary["node"]["cpu"]["usageNanoCores"] >= 250_000_000
    # one provider call for all of the node's pods, not one per pod
    assert pod.instance_id in kubelet.provider.stats_calls[-1]


def test_metrics_resource_is_the_prometheus_text_metrics_server_reads(kubelet: Kubelet, pod: pods.PodInstance) -> None:
    content_type, text = _fetch(kubelet, "/metrics/resource")
    assert content_type.startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    # The client library strips "_total" from counter family names.
    for name in ("container_cpu_usage_seconds", "container_memory_working_set_bytes", "container_start_time_seconds",
                 "node_cpu_usage_seconds", "node_memory_working_set_bytes", "pod_cpu_usage_seconds",
                 "pod_memory_working_set_bytes", "resource_scrape_error"):  # fmt: skip
        assert name in families, name
    labels = {"container": "app", "namespace": pod.namespace, "pod": pod.name}
    (memory,) = [s for s in families["container_memory_working_set_bytes"].samples if s.labels == labels]
    assert memory.value == 64 * 1024 * 1024
    assert memory.timestamp is not None
    (cpu,) = [s for s in families["container_cpu_usage_seconds"].samples if s.labels == labels]
    assert cpu.value > 0
    assert families["resource_scrape_error"].samples[0].value == 0
