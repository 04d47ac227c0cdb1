"""Kubernetes is only a transport: no module outside ``vnode/kube/`` writes an API server path.

``vnode/kube/api.py`` (and ``extra.py``) offer typed calls per resource; a path such as
``"/api/v1/namespaces/..."`` or ``f"/apis/{group}/..."`` anywhere else means a caller builds
requests by hand again. What is exempt, and why:

- ``vnode/kube/``: the one place that knows where resources live.
- ``vnode/cloudsim/``: a separate world behind its own HTTP API (it imports nothing of vnode),
  so its routes are not the API server's, whatever they are named.
- docstrings: they document paths (the kubelet's ``/api/v1/nodes/<node>/proxy``), they do not
  request them.
- other HTTP paths are not caught at all, as only the API server's roots ``/api`` and
  ``/apis`` match: the kubelet API's own routes (``/containerLogs``, ``/exec``,
  ``/stats/summary``), ``/healthz``, ``/readyz``, the webhook's ``/mutate``; nor are Go
  package paths such as ``k8s.io/kubelet/pkg/apis/stats`` (``/apis/`` follows a name there).

Tests are not scanned: they check the API server itself and may name its paths.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "vnode"
EXEMPT = ("kube", "cloudsim")
# "/api" or "/apis" as a whole path segment at the start of a string part or after a
# non-name character ("{server}/api/v1" is caught, "etcd/api/v3" is not).
_API_PATH = re.compile(r"(?:^|[^\w.-])/apis?(?:/|$)")


def raw_paths(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal or f-string part in ``source`` that holds an API path."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        if _API_PATH.search(node.value)
    )


def _modules() -> list[pathlib.Path]:
    return sorted(p for p in ROOT.rglob("*.py") if p.relative_to(ROOT).parts[0] not in EXEMPT)


def test_no_module_outside_vnode_kube_writes_an_api_path() -> None:
    offenders = [
        f"vnode/{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in _modules()
        for line, text in raw_paths(path.read_text())
    ]
    assert not offenders, "API paths outside vnode/kube (use vnode.kube.api):\n" + "\n".join(offenders)


def test_the_scan_covers_the_modules_that_call_the_api() -> None:
    scanned = {str(p.relative_to(ROOT)) for p in _modules()}
    assert {"gc.py", "node/reconcile.py", "webhook/registration.py", "kubelet/certs.py"} <= scanned
    assert not any(name.startswith(("kube/", "cloudsim/")) for name in scanned)


@pytest.mark.parametrize(
    "source",
    [
        'PATH = "/api/v1/nodes"',
        'x = f"/api/v1/namespaces/{ns}/pods/{name}"',
        'x = f"/apis/{group}/v1/things"',
        'x = f"{server}/api/v1/pods"',
        'x = "/apis"',
        'def f():\n    """Doc."""\n    return kube.get("/api/v1/pods")',
    ],
)
def test_the_scan_finds_a_path(source: str) -> None:
    assert raw_paths(source)


@pytest.mark.parametrize(
    "source",
    [
        '"""A module that documents /api/v1/nodes/<node>/proxy."""',
        'def f():\n    """Reads /apis/apps/v1 (documented only)."""',
        'ROUTE = "/containerLogs/{namespace}/{pod}/{container}"',
        'FLAGS = "-X go.etcd.io/etcd/api/v3/version.GitSHA=x"',
        'DOC = "k8s.io/kubelet/pkg/apis/stats/v1alpha1"',
        'x = "/apiserver-ca.crt"',
    ],
)
def test_the_scan_lets_other_strings_be(source: str) -> None:
    assert raw_paths(source) == []
