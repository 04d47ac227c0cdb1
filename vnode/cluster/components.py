"""The command lines of the control plane's components: etcd, kube-apiserver, controller-manager, scheduler.

The launcher decides where things are (ports, certificates, the state directory) and runs the
processes; this module only says how each component is told about them. Everything listens on
127.0.0.1 and speaks TLS with the launcher's CA; the flags that differ from a component's
defaults say why where it is not obvious.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping

__all__ = ["SERVICE_CIDR", "Plan", "commands", "lease_timing"]

SERVICE_CIDR = "10.96.0.0/16"
_ALWAYS_ALLOW = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where a cluster's parts are and how they are tuned: what its command lines are made of."""

    bin_dir: pathlib.Path
    state_dir: pathlib.Path
    #: apiserver, etcd, etcd_peer, controller_manager, scheduler
    ports: Mapping[str, int]
    #: the PKI's files by role (``ca.crt``, ``apiserver.key``, ...)
    pki: Mapping[str, pathlib.Path]
    node_monitor_grace_period: int
    client_qps: int
    client_burst: int
    leader_lease_seconds: int
    #: log every request's metadata to <state>/audit.log (benchmarks count API calls per client)
    audit: bool = False


def commands(plan: Plan) -> dict[str, list[str]]:
    """Each component's command line, by name."""
    return {
        "etcd": _etcd(plan),
        "kube-apiserver": _apiserver(plan),
        "kube-controller-manager": _controller_manager(plan),
        "kube-scheduler": _scheduler(plan),
    }


def lease_timing(seconds: int) -> dict[str, str]:
    """Leader-election timing for a lease of ``seconds``, as KubeSchedulerConfiguration spells it."""
    # Short leader leases: after a crash the new instance must wait out the old lease,
    # and the defaults (15 s) would make a warm `up` slow.
    return {"leaseDuration": f"{seconds}s", "renewDeadline": f"{seconds * 2 // 3}s", "retryPeriod": "1s"}


def _etcd(plan: Plan) -> list[str]:
    p, url = plan.pki, f"https://127.0.0.1:{plan.ports['etcd']}"
    peer_url = f"https://127.0.0.1:{plan.ports['etcd_peer']}"
    return [
        str(plan.bin_dir / "etcd"),
        "--name=vnode",
        f"--data-dir={plan.state_dir / 'etcd'}",
        f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=vnode={peer_url}",
        f"--cert-file={p['etcd.crt']}",
        f"--key-file={p['etcd.key']}",
        f"--trusted-ca-file={p['ca.crt']}",
        "--client-cert-auth=true",
        f"--peer-cert-file={p['etcd.crt']}",
        f"--peer-key-file={p['etcd.key']}",
        f"--peer-trusted-ca-file={p['ca.crt']}",
        "--peer-client-cert-auth=true",
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


def _apiserver(plan: Plan) -> list[str]:
    p = plan.pki
    return [
        str(plan.bin_dir / "kube-apiserver"),
        f"--etcd-servers=https://127.0.0.1:{plan.ports['etcd']}",
        f"--etcd-cafile={p['ca.crt']}",
        f"--etcd-certfile={p['etcd-client.crt']}",
        f"--etcd-keyfile={p['etcd-client.key']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        # 1.37 refuses a loopback address in the `kubernetes` Service's endpoints; on a
        # loopback-only cluster there is nothing to reconcile them to anyway.
        "--endpoint-reconciler-type=none",
        f"--secure-port={plan.ports['apiserver']}",
        f"--tls-cert-file={p['apiserver.crt']}",
        f"--tls-private-key-file={p['apiserver.key']}",
        f"--client-ca-file={p['ca.crt']}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={p['sa.pub']}",
        f"--service-account-signing-key-file={p['sa.key']}",
        f"--kubelet-client-certificate={p['kubelet-client.crt']}",
        f"--kubelet-client-key={p['kubelet-client.key']}",
        f"--kubelet-certificate-authority={p['ca.crt']}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--requestheader-client-ca-file={p['front-proxy-ca.crt']}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--proxy-client-cert-file={p['proxy-client.crt']}",
        f"--proxy-client-key-file={p['proxy-client.key']}",
        "--enable-aggregator-routing=true",
        "--max-requests-inflight=2000",
        "--max-mutating-requests-inflight=1000",
        "--profiling=false",
        *_audit_flags(plan),
        "--v=1",
    ]


def _audit_flags(plan: Plan) -> list[str]:
    """With ``plan.audit``, the audit flags; writes the policy they name."""
    if not plan.audit:
        return []
    policy = plan.state_dir / "audit-policy.json"
    rules = {"level": "Metadata", "omitStages": ["RequestReceived"]}
    policy.write_text(json.dumps({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [rules]}))
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={plan.state_dir / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-mode=batch",
        "--audit-log-maxsize=0",
    ]


def _controller_manager(plan: Plan) -> list[str]:
    p, kubeconfig = plan.pki, plan.state_dir / "cm.kubeconfig"
    grace = plan.node_monitor_grace_period
    lease = lease_timing(plan.leader_lease_seconds)
    return [
        str(plan.bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={plan.ports['controller_manager']}",
        _ALWAYS_ALLOW,
        f"--root-ca-file={p['ca.crt']}",
        f"--service-account-private-key-file={p['sa.key']}",
        f"--cluster-signing-cert-file={p['ca.crt']}",
        f"--cluster-signing-key-file={p['ca.key']}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--kube-api-qps={plan.client_qps}",
        f"--kube-api-burst={plan.client_burst}",
        f"--node-monitor-grace-period={grace}s",
        f"--node-monitor-period={1 if grace < 20 else 5}s",
        "--concurrent-deployment-syncs=20",
        "--concurrent-replicaset-syncs=20",
        "--concurrent-statefulset-syncs=10",
        "--concurrent-job-syncs=20",
        "--concurrent-gc-syncs=50",
        "--profiling=false",
        "--leader-elect=true",
        f"--leader-elect-lease-duration={lease['leaseDuration']}",
        f"--leader-elect-renew-deadline={lease['renewDeadline']}",
        f"--leader-elect-retry-period={lease['retryPeriod']}",
        "--v=1",
    ]


def _scheduler(plan: Plan) -> list[str]:
    """The scheduler's own settings (its client, its leader election) are in ``scheduler.json``."""
    kubeconfig = plan.state_dir / "sched.kubeconfig"
    return [
        str(plan.bin_dir / "kube-scheduler"),
        f"--config={plan.state_dir / 'scheduler.json'}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={plan.ports['scheduler']}",
        _ALWAYS_ALLOW,
        "--profiling=false",
        "--v=1",
    ]
