"""The short soak of `make test`: a few hundred pods for a few minutes, under the short fault list, fixed seed.

`make soak` runs the long one (5,000 pods, 30 minutes, every fault); this one keeps the harness
and the invariants it checks working on every change, on a control plane of its own.
"""

from __future__ import annotations

import asyncio
import pathlib

from soak import faults, report, run, world


def test_a_short_soak_keeps_every_invariant(tmp_path: pathlib.Path) -> None:
    args = run.Args(pods=200, nodes=3, minutes=1.5, seed=7, short=True)
    with world.world(args.nodes, seed=args.seed, parent=tmp_path) as the_world:
        result = asyncio.run(run.run(args, the_world))
    assert report.verdict(result) == []
    assert sorted(r.kind for r in result.records) == sorted(faults.SHORT)
    assert [r.error for r in result.records if r.error] == [], "every fault was carried out"
    assert result.checker.created >= args.pods
    assert result.teardown_seconds is not None, "every pod and instance gone after the teardown"
    blocks = [sample[3] for samples in result.rss.values() for sample in samples]
    assert max(blocks, default=0) > 0, "the daemons' /metrics read: the blocks CPython's allocator holds"
    section = report.render(result, "soak.png", "python -m soak --short")
    assert "| duplicated | 0 |" in section
