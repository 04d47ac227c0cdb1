"""Run vnode's benchmarks one after another: ``python -m bench [NAME ...]`` (all by default)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

# In order: the cheap ones first. A missing module is skipped with a note (a part not built yet).
BENCHMARKS = ("decode", "eci_client", "cloudsim", "scale", "imagecache")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    failed = []
    for name in names:
        if importlib.util.find_spec(f"bench.{name}") is None:
            print(f"bench: no bench/{name}.py, skipped", file=sys.stderr)
            continue
        print(f"bench: {name}", file=sys.stderr, flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
