"""Where a daemon's memory goes, for the benchmark's memory figures: put this folder on ``PYTHONPATH``.

With ``VNODE_TRACEMALLOC=<dir>`` every Python process started so (the daemons a benchmark starts)
traces its allocations and writes a snapshot, ``<dir>/<pid>.snapshot``, every
``VNODE_TRACEMALLOC_EVERY`` seconds (default 20) and at exit; ``python -m bench.memdump <snapshot>``
prints where the memory is. Tracing slows the process several times: use it to see where the
memory goes, never for the throughput figures.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import threading
import tracemalloc


def _start(folder: pathlib.Path, every: float) -> None:
    tracemalloc.start(10)
    target = folder / f"{os.getpid()}.snapshot"
    stop = threading.Event()

    def dump() -> None:
        partial = target.with_suffix(".partial")
        tracemalloc.take_snapshot().dump(str(partial))
        partial.replace(target)

    def loop() -> None:
        while not stop.wait(every):
            dump()

    threading.Thread(target=loop, name="tracemalloc-dump", daemon=True).start()
    atexit.register(lambda: (stop.set(), dump()))


if os.environ.get("VNODE_TRACEMALLOC"):
    _folder = pathlib.Path(os.environ["VNODE_TRACEMALLOC"])
    _folder.mkdir(parents=True, exist_ok=True)
    _start(_folder, float(os.environ.get("VNODE_TRACEMALLOC_EVERY", "20")))
