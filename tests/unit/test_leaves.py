"""The shared leaf modules import no other part of vnode, and the simulated cloud imports only them.

A leaf (the certificate builder, the token bucket, the /proc reader, the percent-encoder, the
error tree) is infrastructure written once for every package, so it must not pull a package in.
``vnode/cloudsim`` is a black box behind HTTP: besides itself it may import leaves only.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
LEAVES = {
    "vnode.allocator",
    "vnode.certificates",
    "vnode.errors",
    "vnode.percent",
    "vnode.procinfo",
    "vnode.tokenbucket",
}


def _vnode_imports(path: pathlib.Path) -> set[str]:
    """The vnode modules ``path`` imports (``from vnode import x`` counts as ``vnode.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "vnode"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vnode":
            if node.module == "vnode":
                found |= {f"vnode.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


def _module(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def test_leaves_import_only_other_leaves() -> None:
    for leaf in sorted(LEAVES):
        path = ROOT / (leaf.replace(".", "/") + ".py")
        assert _vnode_imports(path) <= LEAVES, f"{leaf} imports {sorted(_vnode_imports(path) - LEAVES)}"


def test_the_simulated_cloud_imports_nothing_of_vnode_but_itself_and_leaves() -> None:
    wrong = {}
    for path in sorted((ROOT / "vnode" / "cloudsim").rglob("*.py")):
        outside = {m for m in _vnode_imports(path) if not m.startswith("vnode.cloudsim") and m not in LEAVES}
        if outside:
            wrong[_module(path)] = sorted(outside)
    assert not wrong, f"cloudsim is a black box behind HTTP; these reach into vnode: {wrong}"
