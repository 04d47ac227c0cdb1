"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are.

A section sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; a new one is appended.
Figures are written with the machine they were measured on, since they mean nothing without it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import platform
import re
from collections.abc import Iterator
from typing import Any

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Produced by `make bench` (each section by its own script under `bench/`). Figures depend on the\n"
    "machine: compare ratios measured in the same run, not numbers across machines.\n"
)


def machine() -> str:
    """One line naming the machine, for the top of a section."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    today = datetime.date.today().isoformat()
    return f"_Measured {today} on {os.cpu_count()} cores, {mem_gib:.0f} GiB, Python {platform.python_version()}._"


def write_section(name: str, body: str, doc: pathlib.Path = DOC) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


@contextlib.contextmanager
def figure(path: pathlib.Path, *, panels: int = 1, size: tuple[float, float] = (8, 4.5)) -> Iterator[Any]:
    """A headless matplotlib figure of ``panels`` side by side, drawn in the block (its axes: one, or a
    tuple), then gridded, laid out and saved to ``path``; closed in any case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=size)
    try:
        yield axes
        for ax in axes if panels > 1 else (axes,):
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def label(ax: Any, x: str, y: str, title: str, *, legend: bool = True) -> None:
    """An axes' labels and title (and its legend)."""
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    if legend:
        ax.legend()
