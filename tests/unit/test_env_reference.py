"""Every environment variable the code reads is in docs/configuration.md, and the reference names no other.

The names are found in the source (``ast``), not by running it: ``os.environ.get("X")``,
``os.environ["X"]``, ``"X" in os.environ``, ``os.getenv("X")`` and the same through a name
``environ`` (a parameter defaulting to ``os.environ``), plus the settings' ``settings.ENV``.
"""

from __future__ import annotations

import ast
import pathlib
import re

import vnode
from vnode import reference, settings
from vnode.provider import registry

PACKAGE = pathlib.Path(vnode.__file__).resolve().parent


def _is_environ(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _read_name(node: ast.AST) -> str | None:
    """The variable that ``node`` reads from the environment, if it is such a read of a literal name."""
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        getenv = (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
            isinstance(func, ast.Name) and func.id == "getenv"
        )
        if getenv or (isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value)):
            return _literal(node.args[0])
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
        return _literal(node.slice)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn):
        return _literal(node.left) if _is_environ(node.comparators[0]) else None
    return None


def names_read(source: str) -> set[str]:
    return {name for node in ast.walk(ast.parse(source)) if (name := _read_name(node))}


def read_by_the_code() -> dict[str, list[str]]:
    """Every variable read under vnode/, with the modules that read it (``settings.ENV`` and the profiles' ``env``)."""
    found: dict[str, list[str]] = {
        name: ["vnode/settings.py (ENV)"] for names in settings.ENV.values() for name in names
    }
    for profile in registry.builtin():
        for names in (*profile.env.values(), *profile.env_aliases.values()):
            for name in names:
                found.setdefault(name, []).append(f"the {profile.name} provider's profile")
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in names_read(path.read_text()):
            found.setdefault(name, []).append(str(path.relative_to(PACKAGE.parent)))
    return found


def documented() -> set[str]:
    """The variables the reference's tables list: table cells made of nothing but variable names.

    (A name merely mentioned in another variable's description does not count.)
    """
    names: set[str] = set()
    for line in reference.DOC.read_text().splitlines():
        for cell in line.split("|")[1:-1]:
            if re.fullmatch(r"\s*`[A-Z][A-Z0-9_]*`(, `[A-Z][A-Z0-9_]*`)*\s*", cell):
                names.update(re.findall(r"`([A-Z0-9_]+)`", cell))
    return names


def test_the_scan_sees_every_way_of_reading_a_variable() -> None:
    source = """
import os
from os import environ, getenv
os.environ.get("A"); os.environ["B"]; "C" in os.environ; os.getenv("D", "x"); getenv("E")
def f(environ=os.environ):
    return environ.get("F"), environ["G"], "H" not in environ
os.environ["W"] = "written"; os.environ.setdefault("S", ""); environ.get(name)
"""
    assert names_read(source) == set("ABCDEFGH")


def test_every_variable_the_code_reads_is_in_the_configuration_reference() -> None:
    read = read_by_the_code()
    assert "VNODE_TERMINATION_GRACE_SECONDS" in read  # the scan found the code's reads
    missing = {name: where for name, where in read.items() if name not in documented()}
    assert not missing, f"add these to reference.OTHER_ENV (or settings.ENV), then `make docs`: {missing}"


def test_the_reference_documents_no_variable_that_nothing_reads() -> None:
    stale = set(reference.OTHER_ENV) - set(read_by_the_code())
    assert not stale, f"nothing under vnode/ reads these any more; drop them from reference.OTHER_ENV: {stale}"
