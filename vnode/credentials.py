"""A provider's settings completed with the credentials its profile reads from a Secret.

Shared by ``vnode run`` and ``vnode gc`` (the chart's uninstall hook), so that both find the
cloud's keys where the settings say they are (ECI: ``ECI_CREDENTIALS_SECRET``, or
ack-virtual-node's ``kube-system/alibaba-addon-secret``).
"""

from __future__ import annotations

import base64

from vnode import settings
from vnode.kube import api, client

__all__ = ["load"]


async def load(kube: client.Client, loaded: settings.Settings) -> settings.Settings:
    """``loaded`` with its cloud settings completed by the profile's credentials loader."""

    async def read_secret(namespace: str, name: str) -> dict[str, bytes]:
        secret = await api.read(kube, api.secrets(namespace), name)
        return {key: base64.b64decode(value) for key, value in secret.data.items()}

    cloud = await loaded.profile.credentials(loaded.cloud, read_secret)
    return loaded if cloud is loaded.cloud else loaded.model_copy(update={"cloud": cloud})
