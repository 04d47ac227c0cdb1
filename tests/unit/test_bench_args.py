"""``make bench`` runs each entry of ``bench/__main__.py``'s list with its arguments: each must parse."""

from __future__ import annotations

import pytest

from bench import __main__ as bench_main
from bench import scale


@pytest.mark.parametrize("args", [args for name, args in bench_main.BENCHMARKS if name == "scale"])
def test_every_scale_entry_of_make_bench_parses(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """Parsed, then stopped before any cluster starts by a target that does not exist (``--section`` was
    passed by ``make bench`` and read by ``bench.scale`` without being declared: the run failed at its end)."""
    assert scale.main([*args, "--targets=none"]) == 1
    assert "no target named none" in capsys.readouterr().err
