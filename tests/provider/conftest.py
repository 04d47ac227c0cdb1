"""The ECI provider tests' simulator and provider (a module that defines its own ``sim`` or ``provider`` keeps it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.cloudsim.conftest import Sim, running
from tests.provider.eci_fixtures import eci_settings
from vnode.provider.eci import provider as eci


@pytest.fixture(scope="module")
def eci_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("eci-provider-sim"), profile="fast") as sim:
        yield sim


@pytest.fixture
def sim(eci_sim: Sim) -> Sim:
    status, body = eci_sim.admin("POST", "reset", {})
    assert status == 200, body
    return eci_sim


@pytest.fixture
async def provider(sim: Sim) -> AsyncIterator[eci.EciProvider]:
    provider = eci.EciProvider(eci_settings(sim))
    try:
        yield provider
    finally:
        await provider.close()
