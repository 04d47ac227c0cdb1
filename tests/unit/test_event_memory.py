"""Events waiting for their pace are kept small: in a burst a node holds thousands of them (3,000 pods
make 12,000), and their bodies, four dicts and two formatted times each, were 17 MiB of its peak."""

from __future__ import annotations

import asyncio
import datetime
import gc
import tracemalloc

from vnode.kube import objects
from vnode.node import events

WHAT_A_POD_SEES = (
    ("Scheduled", "Successfully assigned to vn-eci-0"),
    ("Pulling", 'Pulling image "nginx:1.27"'),
    ("Pulled", 'Successfully pulled image "nginx:1.27" in 3.2s'),
    ("Started", "Started container web"),
)


async def _waiting_bytes_per_event(pods: int) -> float:
    made = [
        objects.Pod(metadata=objects.ObjectMeta(name=f"web-{i:05d}", namespace="team-a", uid=f"{i:08d}-uid"))
        for i in range(pods)
    ]
    # A pace of one event per hour: everything recorded waits.
    recorder = events.Recorder(None, node_name="vn-eci-0", clock=lambda: datetime.datetime.now(datetime.UTC),  # type: ignore[arg-type]
                               qps=1 / 3600, burst=1)  # fmt: skip
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for pod in made:
            for reason, message in WHAT_A_POD_SEES:
                recorder.pod(pod, reason, message, container="web")
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        for sender in list(recorder._senders):
            sender.cancel()
        await asyncio.gather(*recorder._senders, return_exceptions=True)
    return grown / (pods * len(WHAT_A_POD_SEES))


def test_an_event_waiting_for_its_pace_costs_under_a_kilobyte() -> None:
    per_event = asyncio.run(_waiting_bytes_per_event(1000))
    assert per_event < 1024, f"{per_event:.0f} bytes per waiting event (its body was about 1.8 KB)"
