"""Which EIP each ECI instance holds: ``k8s.aliyun.com/allocated-eipInstanceId`` on its pod.

ECI's description of an instance gives its public address (``InternetIp``, written to the pod as
``k8s.aliyun.com/allocated-eipAddress``) but not the EIP's ID; VPC's ``DescribeEipAddresses``
(``AssociatedInstanceType=EciInstance``, ``AssociatedInstanceId``) does. It is asked once per
instance with an address, when the feed first describes it, and kept for the instance's life;
a failed call is asked again at the instance's next description.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from vnode import errors, models
from vnode.provider.eci import mapping

__all__ = ["Eips"]

log = logging.getLogger(__name__)


class Eips:
    """Instance id -> the ID of the EIP it holds, asked of the VPC API through ``call``."""

    def __init__(self, call: Callable[[str, dict[str, str]], Awaitable[dict[str, Any]]]) -> None:
        self._call = call
        self._held: dict[str, str] = {}

    async def fill(self, described: dict[str, models.InstanceState]) -> None:
        """Add the EIP's ID to the annotations of each instance of ``described`` with an address (in place)."""
        for instance_id, state in described.items():
            if mapping.ALLOCATED_ADDRESS not in state.annotations:
                continue
            eip_id = self._held.get(instance_id) or await self._ask(instance_id)
            if eip_id:
                self._held[instance_id] = eip_id
                annotations = {**state.annotations, mapping.ALLOCATED_EIP: eip_id}
                described[instance_id] = dataclasses.replace(state, annotations=annotations)

    def forget(self, gone: Iterable[str]) -> None:
        for instance_id in gone:
            self._held.pop(instance_id, None)

    async def _ask(self, instance_id: str) -> str:
        params = {"AssociatedInstanceType": "EciInstance", "AssociatedInstanceId": instance_id}
        try:
            body = await self._call("DescribeEipAddresses", params)
        except errors.ApiError as exc:
            log.info("the EIP of %s not known yet: %s", instance_id, exc, extra={"instance": instance_id})
            return ""
        found = ((body.get("EipAddresses") or {}).get("EipAddress")) or ()
        return next((str(e["AllocationId"]) for e in found if e.get("InstanceId") == instance_id), "")
