"""Print where a traced process's memory is.

``python -m bench.memdump <snapshot> [--top N] [--by vnode|lineno|traceback] [--since <earlier>]``;
``vnode`` (the default) counts each block at the innermost line of vnode's own code that led to it,
which names the owner (the informer's cache, the API client's connections) rather than the
allocator. With ``--since``, the rows are what grew (or shrank) from the earlier snapshot of the
same process: a leak shows as a line that grows between two moments of equal load.
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


def print_growth(earlier: tracemalloc.Snapshot, later: tracemalloc.Snapshot, top: int) -> None:
    """The vnode lines whose memory changed most between two snapshots, in bytes and blocks."""
    before = {key: (size, blocks) for key, size, blocks in by_vnode_line(earlier)}
    after = {key: (size, blocks) for key, size, blocks in by_vnode_line(later)}
    rows = []
    for key in before.keys() | after.keys():
        size0, blocks0 = before.get(key, (0, 0))
        size1, blocks1 = after.get(key, (0, 0))
        rows.append((size1 - size0, blocks1 - blocks0, size1, key))
    rows.sort(key=lambda row: -abs(row[0]))
    total0, total1 = (sum(v[0] for v in d.values()) for d in (before, after))
    print(f"traced: {total0 / 2**20:.1f} -> {total1 / 2**20:.1f} MiB")
    for grew, blocks, size, key in rows[:top]:
        print(f"{grew / 2**20:+8.2f} MiB {blocks:+9,} blocks (now {size / 2**20:7.2f} MiB)  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("snapshot")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--by", default="vnode", choices=["vnode", "lineno", "traceback"])
    parser.add_argument("--since", help="an earlier snapshot of the same process: print what grew")
    options = parser.parse_args()
    snapshot = tracemalloc.Snapshot.load(options.snapshot)
    if options.since:
        print_growth(tracemalloc.Snapshot.load(options.since), snapshot, options.top)
        return
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
