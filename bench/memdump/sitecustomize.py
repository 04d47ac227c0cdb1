"""Where a daemon's memory goes, for the benchmark's memory figures: put this folder on ``PYTHONPATH``.

With ``VNODE_TRACEMALLOC=<dir>`` every Python process started so (the daemons a benchmark starts)
traces its allocations and writes a snapshot, ``<dir>/<pid>.snapshot``, every
``VNODE_TRACEMALLOC_EVERY`` seconds (default 20) and at exit; with ``VNODE_TRACEMALLOC_KEEP=1``
each one is kept, as ``<dir>/<pid>-<seconds since the start>.snapshot``, to compare two moments of
a long run (``python -m bench.memdump <later> --since <earlier>``: what grew, by vnode's line).
``VNODE_TRACEMALLOC_MATCH="vnode run"`` traces only the processes whose command line holds it
(the daemons, not the simulated cloud or the soak's driver).
``python -m bench.memdump <snapshot>`` prints where the memory is. ``<dir>/<pid>.memory`` logs,
at each snapshot, the traced memory beside the process's RSS: traced memory that stays flat while
RSS grows is the allocator's, not a leak. Tracing slows the process several times: use it to see
where the memory goes, never for the throughput figures.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import sys
import threading
import time
import tracemalloc


def _rss() -> str:
    with open("/proc/self/status") as status:
        return next(
            (line.split(":")[1].strip().replace(" kB", " kB RSS") for line in status if line.startswith("VmRSS")), ""
        )


def _start(folder: pathlib.Path, every: float, keep: bool) -> None:
    tracemalloc.start(10)
    began = time.monotonic()
    stop = threading.Event()

    def dump() -> None:
        seconds = time.monotonic() - began
        moment = f"-{seconds:06.0f}" if keep else ""
        target = folder / f"{os.getpid()}{moment}.snapshot"
        traced, peak = tracemalloc.get_traced_memory()
        with open(folder / f"{os.getpid()}.memory", "a") as log:
            log.write(f"{seconds:.0f} traced {traced >> 20} MiB, peak {peak >> 20} MiB, {_rss()}\n")
        partial = target.with_suffix(".partial")
        tracemalloc.take_snapshot().dump(str(partial))
        partial.replace(target)

    def loop() -> None:
        while not stop.wait(every):
            dump()

    threading.Thread(target=loop, name="tracemalloc-dump", daemon=True).start()
    atexit.register(lambda: (stop.set(), dump()))


if os.environ.get("VNODE_TRACEMALLOC") and os.environ.get("VNODE_TRACEMALLOC_MATCH", "") in " ".join(sys.orig_argv):
    _folder = pathlib.Path(os.environ["VNODE_TRACEMALLOC"])
    _folder.mkdir(parents=True, exist_ok=True)
    _start(
        _folder, float(os.environ.get("VNODE_TRACEMALLOC_EVERY", "20")), bool(os.environ.get("VNODE_TRACEMALLOC_KEEP"))
    )
