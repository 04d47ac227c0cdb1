"""How much one pod watch event costs to decode, by decoder: why vnode's client uses msgspec structs.

A daemon at 3,000 pods sees every status change of every pod as a watch event (its own
writes included), so the decoder's cost per event bounds its throughput on a shared core.
Measured on a realistic pod (a Deployment's pod after scheduling and start: ~3.6 KB).

``python -m bench.decode`` prints the table and rewrites its section of docs/benchmarks.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import timeit
from collections.abc import Callable
from typing import Any

import msgspec

from bench import report
from vnode.kube import objects


def realistic_pod() -> dict[str, Any]:
    """A pod as the API server returns it for a Deployment replica that runs (managedFields included)."""
    meta_time = "2026-01-02T03:04:05Z"
    container = {
        "name": "web",
        "image": "registry.example.com/team/web:1.24.3",
        "command": ["/bin/server"],
        "args": ["--port=8080", "--log-level=info", "--config=/etc/web/config.yaml"],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
        "env": [{"name": "MODE", "value": "production"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
        "resources": {"limits": {"cpu": "1", "memory": "2Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/web"},
                         {"name": "kube-api-access-x7k2p", "readOnly": True,
                          "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 5,
                          "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1,
                           "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }  # fmt: skip
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "web-7d9f8b6c5d-x2x9q",
            "generateName": "web-7d9f8b6c5d-",
            "namespace": "shop",
            "uid": "5f0c8f0e-3a4b-4c1d-9e2f-0a1b2c3d4e5f",
            "resourceVersion": "123456",
            "creationTimestamp": meta_time,
            "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5d", "tier": "frontend"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5d",
                                 "uid": "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6", "controller": True,
                                 "blockOwnerDeletion": True}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                               "time": meta_time, "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}}},
                                            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}}}}}},
                              {"manager": "vnode", "operation": "Update", "apiVersion": "v1", "time": meta_time,
                               "fieldsType": "FieldsV1", "subresource": "status",
                               "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {},
                                                         "f:podIP": {}, "f:startTime": {}}}}],
        },
        "spec": {
            "volumes": [{"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                        {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
            "containers": [container],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"type": "virtual-kubelet"},
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": "virtual-node-eci-0",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"},
                            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": meta_time}
                           for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                     "PodScheduled")],
            "hostIP": "192.168.0.10",
            "hostIPs": [{"ip": "192.168.0.10"}],
            "podIP": "10.1.2.3",
            "podIPs": [{"ip": "10.1.2.3"}],
            "startTime": meta_time,
            "containerStatuses": [{"name": "web", "state": {"running": {"startedAt": meta_time}}, "lastState": {},
                                   "ready": True, "restartCount": 0, "image": container["image"],
                                   "imageID": "registry.example.com/team/web@sha256:" + "ab" * 32,
                                   "containerID": "eci://eci-2ze5a8gbhc8b6g9xk3ts", "started": True}],
            "qosClass": "Burstable",
        },
    }  # fmt: skip


def decoders(raw: bytes) -> dict[str, Callable[[], object]]:
    pod_decoder = msgspec.json.Decoder(objects.Pod)
    event_decoder = msgspec.json.Decoder(objects.WatchEvent[objects.Pod])
    event = b'{"type":"MODIFIED","object":' + raw + b"}"
    found: dict[str, Callable[[], object]] = {
        "json.loads (dict)": lambda: json.loads(raw),
        "msgspec, untyped (dict)": lambda: msgspec.json.decode(raw),
        "msgspec, vnode's partial Pod struct": lambda: pod_decoder.decode(raw),
        "vnode watch event (envelope + Pod, one pass)": lambda: event_decoder.decode(event),
    }
    if importlib.util.find_spec("orjson") is not None:
        import orjson

        found["orjson.loads (dict)"] = lambda: orjson.loads(raw)
    if importlib.util.find_spec("kubernetes") is not None:
        from kubernetes import client as k8s

        api = k8s.ApiClient()
        text = raw.decode()
        found["kubernetes V1Pod (official client)"] = lambda: api.deserialize(text, "V1Pod", "application/json")
    return found


def measure(fn: Callable[[], object], budget: float = 0.5) -> float:
    """Microseconds per call: the best of 5 runs, each long enough to mean something."""
    number = 1
    while timeit.timeit(fn, number=number) < budget / 5:
        number *= 2
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> int:
    raw = json.dumps(realistic_pod(), separators=(",", ":")).encode()
    load = os.getloadavg()[0]
    rows = [(name, measure(fn)) for name, fn in decoders(raw).items()]
    base = next(us for name, us in rows if name.startswith("msgspec, vnode"))
    lines = [
        "## Decoding one pod watch event",
        "",
        f"{report.machine()} Load average when it started: {load:.1f} on {os.cpu_count()} cores "
        "(each figure is the best of 5 runs; compare ratios, which vary less than the figures).",
        "",
        f"A realistic running pod of {len(raw):,} bytes (`python -m bench.decode`). "
        "vnode's client decodes watch events into msgspec structs that declare only the fields it reads.",
        "",
        "| decoder | µs per pod | times vnode's |",
        "| --- | ---: | ---: |",
    ]
    for name, us in sorted(rows, key=lambda r: r[1]):
        lines.append(f"| {name} | {us:,.1f} | {us / base:,.1f} |")
    if not any(name.startswith("orjson") for name, _ in rows):
        lines += ["", "orjson is not installed here, so it is not measured."]
    body = "\n".join(lines)
    print(body)
    report.write_section("decode", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
