"""ECI credentials from ``kube-system/alibaba-addon-secret``, the Secret ack-virtual-node users made.

Against the real control plane: ``vnode run`` reads it when no other credentials are given,
and only then; without it (and without keys) the provider asks for keys, naming the Secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from vnode import credentials, errors, settings
from vnode.kube import client
from vnode.provider import registry

ADDON = "alibaba-addon-secret"


@pytest.fixture
def addon_secret(core: k8s.CoreV1Api) -> Iterator[None]:
    """The add-on Secret as ack-virtual-node's install guide creates it; removed afterwards."""
    body = k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name=ADDON),
        string_data={"access-key-id": "LTAI-addon", "access-key-secret": "addon-secret"},
    )
    core.create_namespaced_secret("kube-system", body)
    try:
        yield
    finally:
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespaced_secret(ADDON, "kube-system")


def _loaded(env: dict[str, str]) -> settings.Settings:
    return settings.load({"VNODE_PROVIDER": "eci", "VNODE_NODE_NAME": "vn-addon", **env})


@pytest.mark.usefixtures("addon_secret")
async def test_the_addon_secret_is_used_when_no_other_credentials_are_given(kube: client.Client) -> None:
    loaded = await credentials.load(kube, _loaded({}))
    assert (loaded.cloud.access_key, loaded.cloud.secret_key) == ("LTAI-addon", "addon-secret")
    registry.load("eci")(loaded)  # the provider accepts them


@pytest.mark.usefixtures("addon_secret")
async def test_given_keys_win_over_the_addon_secret(kube: client.Client) -> None:
    loaded = await credentials.load(kube, _loaded({"ECI_ACCESS_KEY": "mine", "ECI_SECRET_KEY": "s"}))
    assert (loaded.cloud.access_key, loaded.cloud.secret_key) == ("mine", "s")


async def test_without_the_addon_secret_the_provider_asks_for_keys_naming_it(
    kube: client.Client, core: k8s.CoreV1Api
) -> None:
    with contextlib.suppress(k8s.ApiException):
        core.read_namespaced_secret(ADDON, "kube-system")
        pytest.skip("another test's add-on Secret is in place")
    loaded = await credentials.load(kube, _loaded({}))
    assert loaded.cloud.access_key == ""
    with pytest.raises(errors.ConfigError, match="alibaba-addon-secret"):
        registry.load("eci")(loaded)
