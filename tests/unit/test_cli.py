"""The command line imports only what the chosen subcommand needs: ``vnode --help`` stays instant."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from vnode import cli

# The heavy dependencies: any one of them costs a ``vnode --help`` a noticeable part of a second.
HEAVY = {"aiohttp", "cryptography", "kubernetes", "msgspec", "prometheus_client", "pydantic", "yaml"}


# Run ``vnode ARGV`` in a fresh interpreter, then list what it imported. (``sys.modules`` rather
# than ``-X importtime``, which does not see the subcommands' ``importlib.import_module``.)
PROBE = """
import contextlib, io, json, sys
from vnode import cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    cli.main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
"""


def imported_by(*argv: str) -> set[str]:
    """The modules that ``vnode ARGV`` imports (``--help`` and ``--version`` exit while parsing)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_the_top_level_imports_no_subcommand_and_no_heavy_dependency(argv: list[str]) -> None:
    modules = imported_by(*argv)
    assert {m for m in modules if m.startswith("vnode.")} <= {"vnode.cli", "vnode.__main__"}
    assert not modules & HEAVY


def test_a_subcommand_imports_no_other_subcommand() -> None:
    modules = imported_by("cluster", "--help")
    others = {module for name, (module, _) in cli.COMMANDS.items() if name != "cluster"}
    assert "vnode.cluster.command" in modules
    assert not modules & others
    assert "vnode.daemon" not in modules


def test_the_full_parser_still_knows_every_subcommand_and_its_flags() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)
    for name, command in sub.choices.items():
        assert any(not isinstance(a, argparse._HelpAction) for a in command._actions), name
