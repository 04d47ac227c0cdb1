"""The shared View has one writer: no module outside ``node/book.py`` assigns to, or changes, its fields.

A scan of vnode's source for the writes a newcomer would make: ``<...>view.<field> = ...``,
``<...>view.<field>[...] = ...`` (and ``del``, ``+=``), and the mutating methods of a dict or an
event called on ``<...>view.<field>``. Reading the fields (``.get``, ``.wait()``) stays free.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

from vnode.node import book

ROOT = pathlib.Path(book.__file__).resolve().parents[1]
OWNER = ROOT / "node" / "book.py"
FIELDS = frozenset(field.name for field in dataclasses.fields(book.View))
MUTATORS = frozenset({"pop", "popitem", "clear", "update", "setdefault", "set", "__setitem__", "__delitem__"})


def _view_field(node: ast.expr) -> str | None:
    """``x.view.states`` -> ``view.states``, for an attribute of the View reached through a name ending in view."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if not isinstance(node, ast.Attribute) or node.attr not in FIELDS:
        return None
    base = node.value
    name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""
    return f"{name}.{node.attr}" if name.endswith("view") else None


def writes(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            targets = [node.func.value]
        found.extend((node.lineno, field) for target in targets if (field := _view_field(target)))
    return found


def test_the_scan_finds_every_kind_of_write() -> None:
    source = "view.gone[k] = u\nself.view.states = {}\nself.view.listed_at += 1\nview.states.pop(u)\n"
    source += "self.view.created.set()\ndel view.gone[k]\nview.states.get(u)\nself.view.created.wait()\n"
    assert sorted(line for line, _ in writes(ast.parse(source))) == [1, 2, 3, 4, 5, 6]


def test_only_the_book_writes_the_view() -> None:
    outside = {
        f"{path.relative_to(ROOT.parent)}:{line}: {field}"
        for path in sorted(ROOT.rglob("*.py"))
        if path != OWNER
        for line, field in writes(ast.parse(path.read_text(), str(path)))
    }
    assert not outside, "the View is written only through node/book.py's Book"


def test_the_book_names_every_method_in_its_table_of_writers() -> None:
    assert book.__doc__ is not None
    public = [name for name in vars(book.Book) if not name.startswith("_") and callable(getattr(book.Book, name))]
    missing = [name for name in public if f":meth:`Book.{name}`" not in book.__doc__]
    assert not missing, "node/book.py's docstring says who calls each of Book's methods"
