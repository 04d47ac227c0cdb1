"""Run vnode's benchmarks one after another: ``python -m bench [NAME ...]`` (all by default)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

from bench import report

# In order: the cheap ones first. A missing module is skipped with a note (a part not built yet).
# Each is a module and its arguments; ``python -m bench scale`` runs every entry of that module.
BENCHMARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode", ()),
    ("eci_client", ()),
    ("cloudsim", ()),
    ("scale", ()),  # 10,000 pods over 4 nodes (one daemon killed and restarted), then paced and one node alone
    # 2,000 pods, and KWOK with each pod's TokenRequest made beside it: the ceiling it sets (bench/kubelet_calls.py)
    (
        "scale",
        (
            "--pods=2000",
            "--section=scale-2000",
            "--targets=kwok,kwok+tokens,virtual-kubelet,vnode",
            "--paced-pods=0",
            "--one-node-pods=0",
            "--no-restart",
        ),
    ),
    ("shapes", ()),
    ("imagecache", ()),
)


AIM_MINUTES = 20  # issue #14


def main(argv: list[str]) -> int:
    names = argv or list(dict.fromkeys(name for name, _ in BENCHMARKS))
    failed = []
    took: list[tuple[str, float]] = []
    began = time.monotonic()
    for name, args in ((n, a) for n, a in BENCHMARKS if n in names):
        if importlib.util.find_spec(f"bench.{name}") is None:
            print(f"bench: no bench/{name}.py, skipped", file=sys.stderr)
            continue
        what = " ".join([name, *args])
        print(f"bench: {what}", file=sys.stderr, flush=True)
        started = time.monotonic()
        if subprocess.run([sys.executable, "-m", f"bench.{name}", *args], check=False).returncode != 0:
            failed.append(what)
        took.append((what, time.monotonic() - started))
    if not argv:  # the whole of `make bench`: how long it took is one of its figures
        report.write_section("runtime", render_runtime(took, time.monotonic() - began, failed))
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def render_runtime(took: list[tuple[str, float]], total: float, failed: list[str]) -> str:
    rows = [f"| `{what}` | {seconds / 60:.1f} min |" for what, seconds in took]
    met = "met" if total <= AIM_MINUTES * 60 else "missed"
    return "\n".join(
        [
            "## How long `make bench` takes",
            "",
            report.machine(),
            "",
            "| benchmark (`python -m bench.<name>`) | wall time |",
            "| --- | --- |",
            *rows,
            f"| **all** | **{total / 60:.1f} min** (aim ≤ {AIM_MINUTES} min: {met}) |",
            *(["", f"Failed: {', '.join(failed)}."] if failed else []),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
