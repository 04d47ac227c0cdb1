"""Fixtures for the deployment tests: vnode's async client on the session's control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from vnode.cluster import launcher
from vnode.kube import client, config


@pytest.fixture
async def kube(cluster: launcher.Info) -> AsyncIterator[client.Client]:
    async with client.Client(config.load_kubeconfig(cluster.kubeconfig)) as api:
        yield api
