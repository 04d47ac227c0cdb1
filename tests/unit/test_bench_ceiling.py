"""The benchmark's ceiling for a node that makes a kubelet's calls (``kwok+tokens``, ``kwok+kubelet``
beside KWOK): KWOK's CPU per pod over that plus what the calls added to the API server and etcd,
and the rows of the aims table that report it, only when the run had those targets."""

from __future__ import annotations

import collections

import pytest

from bench import scale_report
from bench.scale_pods import Run


def _run(target: str, seconds: float, api: float, etcd: float, own: float, helper: float = 0.0) -> Run:
    """1,000 pods Running ``seconds`` after the start, with these CPU seconds in each process."""
    run = Run(target, 1000, 4, round=1, cpu_seconds=own)
    run.created = {f"p{i}": 0.0 for i in range(1000)}
    run.running = {f"p{i}": seconds * (i + 1) / 1000 for i in range(1000)}
    run.control_plane_cpu = {"kube-apiserver": api, "etcd": etcd}
    run.helper_cpu = {"kubelet calls": helper} if helper else {}
    return run


def test_the_ceiling_is_kwoks_cpu_per_pod_over_that_plus_what_the_kubelets_calls_add() -> None:
    kwok = _run("kwok", 5.0, api=5.0, etcd=1.0, own=2.0)  # 8 ms a pod
    kubelet = _run("kwok+kubelet", 8.0, api=7.5, etcd=1.5, own=2.0, helper=1.5)  # +3 ms in the control plane
    # The helper's own CPU is not counted: the ceiling is for a maker of the calls that costs nothing.
    assert scale_report.ceiling(kwok, kubelet) == pytest.approx(8 / 11)


def test_the_aims_table_reports_the_ceiling_only_with_the_kubelet_targets() -> None:
    kwok = _run("kwok", 5.0, api=5.0, etcd=1.0, own=2.0)
    vnode = _run("vnode", 7.5, api=7.0, etcd=1.2, own=3.5, helper=1.0)
    tokens = _run("kwok+tokens", 6.0, api=6.5, etcd=1.5, own=2.0, helper=1.0)
    account = _run("kwok+tokens-sa", 5.5, api=6.0, etcd=1.2, own=2.0, helper=0.8)
    kubelet = _run("kwok+kubelet", 8.0, api=7.5, etcd=1.5, own=2.0, helper=1.5)
    kubelet.requests_by_client = {"kube-system:kubelet-calls": collections.Counter({"create events": 1500})}
    table = "\n".join(scale_report._aims([kwok, tokens, account, kubelet, vnode], None, []))
    row = next(line for line in table.splitlines() if "`kwok+tokens`" in line)
    assert "0.83x of KWOK's throughput" in row  # 167 against 200 pods/s
    assert "API server 6.5 ms per pod (KWOK 5.0 ms)" in row
    assert "about 0.80x" in row  # 8 / (8 + 2)
    assert "vnode 0.80x of its throughput" in row  # 133 against 167 pods/s
    assert "the most to expect of any node that gives its pods their tokens" in row
    row = next(line for line in table.splitlines() if "`kwok+tokens-sa`" in line)
    assert "0.91x of KWOK's throughput" in row  # 182 against 200 pods/s
    assert "about 0.87x" in row  # 8 / (8 + 1.2): 1.0 ms more in the API server, 0.2 in etcd
    assert "the same with one TokenRequest a pod, the fewest" in row
    row = next(line for line in table.splitlines() if "`kwok+kubelet`" in line)
    assert "0.62x of KWOK's throughput" in row
    assert "about 0.73x" in row
    assert "Events 1.50 per pod in the window" in row
    without = "\n".join(scale_report._aims([kwok, vnode], None, []))
    assert "kwok+" not in without
