"""Run vnode's benchmarks one after another: ``python -m bench [NAME ...]`` (all by default)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

# In order: the cheap ones first. A missing module is skipped with a note (a part not built yet).
# Each is a module and its arguments; ``python -m bench scale`` runs every entry of that module.
BENCHMARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode", ()),
    ("eci_client", ()),
    ("cloudsim", ()),
    ("scale", ()),  # 10,000 pods over 4 nodes (one daemon killed and restarted), then paced and one node alone
    ("scale", ("--pods=2000", "--section=scale-2000", "--paced-pods=0", "--one-node-pods=0", "--no-restart")),
    ("shapes", ()),
    ("imagecache", ()),
)


def main(argv: list[str]) -> int:
    names = argv or list(dict.fromkeys(name for name, _ in BENCHMARKS))
    failed = []
    for name, args in ((n, a) for n, a in BENCHMARKS if n in names):
        if importlib.util.find_spec(f"bench.{name}") is None:
            print(f"bench: no bench/{name}.py, skipped", file=sys.stderr)
            continue
        print(f"bench: {name} {' '.join(args)}".rstrip(), file=sys.stderr, flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}", *args], check=False).returncode != 0:
            failed.append(" ".join([name, *args]))
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
