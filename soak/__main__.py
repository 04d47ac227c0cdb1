"""The chaos soak: ``python -m soak`` (``make soak``; ``SOAK_ARGS`` passes these options).

Exits 1 naming each violated invariant with the pods and instances involved, 0 when all hold.
Writes docs/reliability.md's figures and plot unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from soak import faults, report, run, world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5000, help="pods the workload keeps (default 5000)")
    parser.add_argument("--nodes", type=int, default=3, help="virtual nodes, the StatefulSet's replicas (default 3)")
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the workload and faults (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="draws the workload and the faults' order: replayable")
    parser.add_argument("--short", action="store_true", help="a few faults, each a quarter as long (make test's)")
    parser.add_argument("--no-write", action="store_true", help="print the figures instead of writing docs/")
    parser.add_argument("--keep-state", action="store_true", help="keep the state directory (logs, audit log)")
    repro = "run this fault (repeatable, in order) instead of the seed's schedule: a targeted repro"
    parser.add_argument(
        "--fault", action="append", default=[], choices=sorted(faults.FAULTS), metavar="NAME", help=repro
    )
    options = parser.parse_args(argv)
    if options.nodes < 3 and not options.short:
        parser.error("--nodes: at least 3 (the scale-in faults leave one and take one away)")
    args = run.Args(
        options.pods,
        options.nodes,
        options.minutes,
        options.seed,
        options.short,
        options.keep_state,
        tuple(options.fault),
    )
    with world.world(args.nodes, seed=args.seed, keep=args.keep) as the_world:
        result = asyncio.run(run.run(args, the_world))
    command = "python -m soak " + " ".join(argv if argv is not None else sys.argv[1:])
    if options.no_write:
        print(report.render(result, "soak.png", command.strip()))
    else:
        report.plot(result, report.DOC.parent / "soak.png")
        report.write(report.render(result, "soak.png", command.strip()))
    problems = report.verdict(result)
    for line in problems:
        print(f"soak: VIOLATED: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
