"""A benchmark does not wait out its whole time limit for a target that has stopped."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from bench import scale
from bench.scale_pods import Run


async def _forever() -> None:
    await asyncio.sleep(3600)


async def test_a_target_process_that_ends_ends_the_wait(capsys: pytest.CaptureFixture[str]) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(1.5)")
    recorder = asyncio.create_task(_forever())
    began = time.monotonic()
    try:
        await asyncio.wait_for(scale._recorded(recorder, Run("peer", 10, 1), [proc.pid], "peer"), 30)
    finally:
        await proc.wait()
    assert time.monotonic() - began < 20
    assert recorder.cancelled()
    assert f"peer: process {proc.pid} ended, with 0 of 10 pods Running" in capsys.readouterr().err


async def test_no_pod_running_for_a_while_ends_the_wait(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(scale, "STALL_SECONDS", 2.0)
    run = Run("peer", 10, 1)
    run.running["pod-0"] = 0.1
    recorder = asyncio.create_task(_forever())
    await asyncio.wait_for(scale._recorded(recorder, run, [], "peer"), 30)
    assert recorder.cancelled()
    assert "peer: no pod Running for 2s, with 1 of 10 pods Running" in capsys.readouterr().err


async def test_a_recorder_that_finishes_is_waited_for() -> None:
    async def quick() -> None:
        await asyncio.sleep(0.2)

    recorder = asyncio.create_task(quick())
    await asyncio.wait_for(scale._recorded(recorder, Run("kwok", 1, 1), [], "kwok"), 30)
    assert recorder.done()
    assert not recorder.cancelled()
