"""Print where a traced process's memory is.

``python -m bench.memdump <snapshot> [--top N] [--by vnode|lineno|traceback]``; ``vnode`` (the
default) counts each block at the innermost line of vnode's own code that led to it, which names
the owner (the informer's cache, the API client's connections) rather than the allocator.
"""

from __future__ import annotations

import argparse
import collections
import tracemalloc


def by_vnode_line(snapshot: tracemalloc.Snapshot) -> list[tuple[str, int, int]]:
    """(innermost vnode/ line, bytes, blocks), largest first."""
    size: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for trace in snapshot.traces:
        frames = list(trace.traceback)  # oldest first
        mine = [f for f in frames if "/vnode/" in f.filename and "/site-packages/" not in f.filename]
        where = mine[-1] if mine else frames[-1]
        key = f"{where.filename.rsplit('/vnode/', 1)[-1] if mine else where.filename}:{where.lineno}"
        size[key] += trace.size
        count[key] += 1
    return [(key, total, count[key]) for key, total in size.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("snapshot")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--by", default="vnode", choices=["vnode", "lineno", "traceback"])
    options = parser.parse_args()
    snapshot = tracemalloc.Snapshot.load(options.snapshot)
    if options.by == "vnode":
        rows = by_vnode_line(snapshot)
        print(f"traced: {sum(r[1] for r in rows) / 2**20:.1f} MiB in {sum(r[2] for r in rows):,} blocks")
        for key, total, blocks in rows[: options.top]:
            print(f"{total / 2**20:8.2f} MiB {blocks:9,} blocks  {key}")
        return
    stats = snapshot.statistics(options.by)
    print(f"traced: {sum(s.size for s in stats) / 2**20:.1f} MiB in {sum(s.count for s in stats):,} blocks")
    for stat in stats[: options.top]:
        lines = stat.traceback.format()
        print(f"{stat.size / 2**20:8.2f} MiB {stat.count:9,} blocks  {lines[-1].strip()}")
        for line in lines[:-1][-12:] if options.by == "traceback" else ():
            print("      " + line)


if __name__ == "__main__":
    main()
