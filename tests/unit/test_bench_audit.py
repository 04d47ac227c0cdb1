"""The benchmark reads the API server's audit log: requests per client and call, and one client's
requests over time; a line that is not an audit event with a client and a verb is skipped."""

from __future__ import annotations

import datetime
import json
import pathlib

from bench import scale_pods


def _event(user: str, verb: str, resource: str, at: str, **extra: object) -> str:
    event = {"user": {"username": user}, "verb": verb, "objectRef": {"resource": resource},
             "requestURI": f"/api/v1/{resource}", "requestReceivedTimestamp": at, **extra}  # fmt: skip
    return json.dumps(event)


def test_counts_per_client_and_one_clients_timeline(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    lines = [
        _event("vnode-admin", "create", "pods", "2026-12-08T00:00:00.000000Z"),
        "not json",
        json.dumps({"user": {"username": "no-verb"}}),
        _event(
            "system:serviceaccount:kube-system:n-0",
            "list",
            "pods",
            "2026-12-08T00:00:01.500000Z",
            requestURI="/api/v1/pods?continue=x",
        ),
        _event("system:serviceaccount:kube-system:n-0", "patch", "leases", "2026-12-08T00:00:02.000000Z"),
    ]
    log.write_text("\n".join(lines) + "\n")
    counts, end = scale_pods.audit_counts(log, 0)
    assert end == log.stat().st_size
    assert counts == {
        "vnode-admin": {"create pods": 1},
        "kube-system:n-0": {"list pods (next page)": 1, "patch leases": 1},
    }
    start = datetime.datetime(2026, 12, 8, tzinfo=datetime.UTC).timestamp()
    timeline = scale_pods.audit_timeline(log, 0, "kube-system:n-0")
    assert [(round(at - start, 1), verb) for at, verb in timeline] == [(1.5, "list"), (2.0, "patch")]
