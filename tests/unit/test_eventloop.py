"""Which event loop a process runs on: uvloop's when installed, unless VNODE_EVENT_LOOP says otherwise."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from vnode import errors, eventloop

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_is_chosen_when_asked() -> None:
    assert eventloop.run(_loop_module(), environ={"VNODE_EVENT_LOOP": "asyncio"}).startswith("asyncio")


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")
def test_uvloop_is_the_default_when_installed() -> None:
    assert eventloop.run(_loop_module(), environ={}).startswith("uvloop")


def test_a_choice_that_does_not_exist_is_named_and_the_coroutine_is_not_left_unawaited() -> None:
    with pytest.raises(errors.ConfigError, match=r"VNODE_EVENT_LOOP='libev': choose one of auto, uvloop, asyncio"):
        eventloop.run(_loop_module(), environ={"VNODE_EVENT_LOOP": "libev"})


@pytest.mark.skipif(HAS_UVLOOP, reason="uvloop is installed")
def test_insisting_on_uvloop_without_it_is_a_named_error() -> None:
    with pytest.raises(errors.ConfigError, match="uvloop is not installed"):
        eventloop.factory({"VNODE_EVENT_LOOP": "uvloop"})
