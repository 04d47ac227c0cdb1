"""docs/reliability.md's figures, written by a soak run; and the verdict (the violated invariants)."""

from __future__ import annotations

import collections
import pathlib

from soak import invariants
from soak.run import Result, Sample

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
INVARIANTS = ("duplicated", "leaked", "leaked at the end", "leaked after teardown", "lost", "stuck Terminating",
              "fenced write")  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def by_kind(result: Result) -> dict[str, list[invariants.Violation]]:
    found: dict[str, list[invariants.Violation]] = collections.defaultdict(list)
    for violation in result.checker.violations.values():
        found[violation.kind].append(violation)
    return found


def memory_rows(result: Result) -> list[str]:
    """Per daemon process: its RSS at two moments at least 1,000 cycles apart (the first after its own first
    1,000) when it carried as many pods (within 10 %), and never more in between: memory follows the
    pods a daemon carries, and RSS does not fall after a peak (the allocator keeps the pages), so only
    equal loads with no peak between them compare. The widest such pair is shown, with the growth of the
    blocks CPython's allocator holds for live objects (a leak's measure, blind to fragmentation)."""
    rows = []
    for daemon, samples in sorted(result.rss.items()):
        pair = widest_equal_load(samples)
        if pair is None:
            continue
        early, late = pair
        growth = (late[2] - early[2]) / early[2] * 100
        blocks = f"{(late[3] - early[3]) / early[3] * 100:+.1f} %" if early[3] and late[3] else "-"
        rows.append(f"| {daemon} | {early[0]:,} | {early[1]:,} | {early[2]:.0f} MB | {late[0]:,} | {late[1]:,} | "
                    f"{late[2]:.0f} MB | {growth:+.1f} % | {blocks} |")  # fmt: skip
    return rows or ["| (no daemon carried an equal load 1,000 cycles apart) | | | | | | | | |"]


def widest_equal_load(samples: list[Sample]) -> tuple[Sample, Sample] | None:
    """The two samples furthest apart (at least 1,000 cycles, the first 1,000 after the process's first
    sample: a daemon just started has not loaded its pods yet) with the same load within 10 % and no
    more than that load between them; None if there are none."""
    best: tuple[Sample, Sample] | None = None
    began = samples[0][0] if samples else 0
    for i, early in enumerate(samples):
        if early[0] < began + 1000 or early[1] <= 0:
            continue
        for late in samples[i + 1 :]:
            if late[1] > early[1] * 1.1:
                break  # a peak between them: its pages stay
            wider = best is None or late[0] - early[0] > best[1][0] - best[0][0]
            if late[0] >= early[0] + 1000 and late[1] >= early[1] * 0.9 and wider:
                best = (early, late)
    return best


def verdict(result: Result) -> list[str]:
    """One line per violated invariant, naming the pods and instances involved."""
    lines = []
    for kind, found in sorted(by_kind(result).items()):
        subjects = ", ".join(f"{v.subject} ({v.detail})" for v in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        lines.append(f"{kind}: {len(found)}: {subjects}{more}")
    if not result.settled:
        lines.append("not settled: checks still failing 300 s after the workload stopped")
    return lines


def render(result: Result, plot_name: str, command: str) -> str:
    args, found = result.args, by_kind(result)
    settle = [r.settled_after for r in result.records if r.settled_after is not None]
    unsettled = [r.kind for r in result.records if r.settled_after is None]
    calm = sum(result.requests.calm.values()) / max(1, result.calm_pods)
    rest_pods = max(1, result.checker.created + result.checker.cycles - result.calm_pods)
    storm = sum(result.requests.rest.values()) / rest_pods
    calls, refused = result.cloud_calls.get("calls", {}), result.cloud_calls.get("refused", {})
    teardown = "NOT EMPTY" if result.teardown_seconds is None else f"{result.teardown_seconds:.0f} s"
    ratio = storm / calm if calm else 0.0
    lines = [
        BEGIN,
        f"Run: `{command}` (seed {args.seed}): {args.pods:,} pods over {args.nodes} virtual nodes for "
        f"{args.minutes:g} minutes on the `realistic` cloud profile; {result.duration / 60:.0f} minutes with the "
        f"settle and the teardown. Pods created: {result.checker.created:,}; create/delete cycles: "
        f"{result.checker.cycles:,}.",
        "",
        "| Invariant | Count |",
        "|---|---|",
        *(f"| {kind} | {len(found.get(kind, []))} |" for kind in INVARIANTS),
        f"| leaked cost (USD) | {sum(result.checker.leak_cost.values()):.4f} |",
        "",
        f"Statuses unknown on nodes that were not Ready (a dead daemon, an unreachable cloud), not counted as lost: "
        f"{result.checker.unknown_seconds / 60:.1f} pod-minutes.",
        "",
        "| Fault | Start (s) | Took (s) | Settled after (s) | What happened |",
        "|---|---|---|---|---|",
        *(
            f"| {r.kind} | {r.start:.0f} | {r.end - r.start:.0f} | "
            f"{'not within the gap' if r.settled_after is None else f'{r.settled_after:.0f}'} | "
            f"{(r.detail or 'FAILED: ' + r.error).replace('|', '/')} |"
            for r in result.records
        ),
        "",
        f"Time to settle after a fault: p50 {percentile(settle, 0.5):.0f} s, p99 {percentile(settle, 0.99):.0f} s, "
        f"max {max(settle, default=0):.0f} s"
        + (f"; not settled within the gap: {', '.join(unsettled)}" if unsettled else "")
        + ".",
        f"Takeover of a dead or leaving replica's node (its Node and instances gone): "
        f"{', '.join(f'{t:.0f} s' for t in result.takeovers) or 'not measured'}.",
        f"Teardown (every workload namespace deleted until no pod and no instance is left): {teardown}.",
        "",
        f"API requests of the daemons per pod created or deleted: {calm:.2f} in the calm ramp, {storm:.2f} after it "
        f"({ratio:.2f} times; the bound is 1.5).",
        "Cloud calls, and those the account's rate limits refused: "
        + ", ".join(f"{op} {n:,} ({refused.get(op, 0):,} refused)" for op, n in sorted(calls.items()))
        + ".",
        "",
        "Memory, per daemon process, compared at equal load (the pods on its node within 10 %), at least 1,000 "
        "create/delete cycles apart; Python's blocks: those CPython's allocator holds for live objects, which a "
        "leak grows and the allocator's fragmentation does not:",
        "",
        "| Daemon | Cycles | Pods | RSS | Cycles later | Pods | RSS | Growth | Python's blocks |",
        "|---|---|---|---|---|---|---|---|---|",
        *memory_rows(result),
        "",
        f"![live pods and instances over time, the faults marked]({plot_name})",
        "",
        "Workload actions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(result.counts.items())) + ".",
        END,
    ]
    return "\n".join(lines)


def plot(result: Result, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result.checker.samples
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot([s[0] / 60 for s in samples], [s[1] for s in samples], label="live pods on virtual nodes")
    ax.plot([s[0] / 60 for s in samples], [s[2] for s in samples], label="live instances in the cloud")
    for n, record in enumerate(result.records):
        ax.axvspan(record.start / 60, max(record.end, record.start + 5) / 60, color="red", alpha=0.2)
        ax.annotate(str(n + 1), (record.start / 60, 0), fontsize=7)
    ax.set_xlabel("minutes (red: faults, numbered as in the table)")
    ax.set_ylabel("count")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(section: str) -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    DOC.write_text(text[:start] + section + text[end:])
