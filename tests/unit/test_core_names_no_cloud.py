"""The provider-neutral core names no cloud: what a cloud needs is declared in its provider's folder.

A module outside ``vnode/provider/<name>/`` and ``vnode/cloudsim/`` that names ECI or ACI (an
identifier or a string literal; docstrings and comments may use a cloud as an example) fails
this test: the name belongs in that provider's profile, which the core reads.
"""

from __future__ import annotations

import ast
import pathlib
import re

VNODE = pathlib.Path(__file__).resolve().parents[2] / "vnode"

CLOUD = re.compile(r"(?<![a-z0-9])(eci|aci)(?![a-z0-9])|aliyun|alibabacloud|azure", re.IGNORECASE)

#: Modules allowed to name clouds, and why.
EXEMPT = {
    # The registry holds one line per built-in provider (and the default one): naming them is its job.
    "provider/registry.py": "one registry line per provider",
    # Dev tooling that wires the simulated cloud (which speaks ECI's and ACI's dialects) to a provider:
    # the playground starts the simulator and installs the chart pointed at it (ECI's values, names).
    "playground.py": "wires the simulated cloud to a provider",
    # Its ACI release: the simulator's ACI dialect, the chart's aci.* values.
    "playground_aci.py": "wires the simulated cloud to a provider",
}


def _core_modules() -> list[pathlib.Path]:
    modules = []
    for path in sorted(VNODE.rglob("*.py")):
        relative = path.relative_to(VNODE)
        parts = relative.parts
        if parts[0] == "cloudsim":
            continue
        if parts[0] == "provider" and len(parts) > 2:  # vnode/provider/<name>/...
            continue
        if str(relative) in EXEMPT or parts[0] in EXEMPT:
            continue
        modules.append(path)
    return modules


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or bare string statements."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            ids.add(id(node.value))
    return ids


def _names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every identifier and non-docstring string of ``tree``, with its line."""
    skip = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            found.append((line, node.id))
        elif isinstance(node, ast.Attribute):
            found.append((line, node.attr))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.append((line, node.name))
        elif isinstance(node, ast.arg) or (isinstance(node, ast.keyword) and node.arg):
            found.append((line, node.arg))
        elif isinstance(node, ast.alias):
            found.append((line, node.name))
            if node.asname:
                found.append((line, node.asname))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((line, node.module))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found.append((line, node.value))
    return found


def test_the_scan_covers_the_core() -> None:
    scanned = {str(p.relative_to(VNODE)) for p in _core_modules()}
    assert {"settings.py", "node/resources.py", "node/registration.py", "webhook/mutation.py"} <= scanned
    assert "provider/base.py" in scanned


def test_no_core_module_names_a_cloud() -> None:
    offences = []
    for path in _core_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, text in _names(tree):
            match = CLOUD.search(text)
            if match:
                offences.append(f"vnode/{path.relative_to(VNODE)}:{line}: {match.group(0)!r} in {text[:80]!r}")
    assert not offences, "the core names a cloud (declare it in the provider's profile):\n" + "\n".join(
        sorted(set(offences))
    )
