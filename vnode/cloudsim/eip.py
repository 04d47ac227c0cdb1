"""Elastic IPs: the public address an ECI instance gets with ``AutoCreateEip`` or ``EipInstanceId``.

VPC's ``DescribeEipAddresses`` (:func:`describe`) answers which EIP an instance holds
(``AssociatedInstanceType=EciInstance``, ``AssociatedInstanceId``; or by ``AllocationId``), as
ECI's own description of the instance gives only the address (``InternetIp``).

An EIP made for an instance (``AutoCreateEip``, ``EipBandwidth`` Mbit/s, 5 by default as ECI
documents) is billed per second of the instance's billed time at its bandwidth and released
with the instance; a named one (``EipInstanceId``) is bound to one live instance at a time and
kept when that instance goes. Addresses are derived from the EIP's ID, so a restart of the
simulator shows the same ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from vnode.cloudsim import eci_params, errors, model

__all__ = ["DEFAULT_BANDWIDTH", "USD_PER_MBPS_SECOND", "VPC_VERSION", "address", "bind", "check", "cost", "describe"]

VPC_VERSION = "2016-04-28"  # the VPC API's version, whose DescribeEipAddresses tells an instance's EIP

DEFAULT_BANDWIDTH = 5  # Mbit/s, ECI's default for eip-bandwidth
USD_PER_MBPS_SECOND = 0.0000035  # pay-by-bandwidth, about 0.0125 USD per Mbit/s-hour
MAX_BANDWIDTH = 500


def address(eip_id: str) -> str:
    """The public address of an EIP: stable for its ID, in 47.96.0.0/16-ish space."""
    digest = hashlib.blake2b(eip_id.encode(), digest_size=3).digest()
    return f"47.{96 + digest[0] % 16}.{digest[1]}.{1 + digest[2] % 254}"


def check(spec: model.InstanceSpec, bound: dict[str, str]) -> None:
    """Refuse a request whose EIP cannot be had; ``bound`` maps a bound EIP's ID to its instance."""
    if spec.eip_bandwidth and not 1 <= spec.eip_bandwidth <= MAX_BANDWIDTH:
        raise errors.InvalidParameter("EipBandwidth", f"must be 1 to {MAX_BANDWIDTH} Mbit/s")
    if spec.eip_instance_id:
        if not spec.eip_instance_id.startswith("eip-"):
            raise errors.InvalidParameter("EipInstanceId", f"{spec.eip_instance_id!r} is not an EIP ID (eip-...)")
        holder = bound.get(spec.eip_instance_id)
        if holder is not None:
            raise errors.InvalidParameter("EipInstanceId", f"{spec.eip_instance_id} is already bound to {holder}")


def bind(inst: model.Instance, seed: int) -> None:
    """Give ``inst`` the EIP its spec asks for (``check`` passed), if any."""
    spec = inst.spec
    if spec.eip_instance_id:
        inst.eip_id, inst.eip_owned = spec.eip_instance_id, False
    elif spec.auto_create_eip:
        inst.eip_id = "eip-" + hashlib.blake2b(f"{seed}/eip/{inst.id}".encode(), digest_size=10).hexdigest()
        inst.eip_owned = True
    else:
        return
    inst.eip_address = address(inst.eip_id)


def cost(inst: model.Instance, seconds: float) -> float:
    """What the instance's own EIP cost over ``seconds`` of billed time (a named EIP is billed apart)."""
    if not inst.eip_owned:
        return 0.0
    return (inst.spec.eip_bandwidth or DEFAULT_BANDWIDTH) * USD_PER_MBPS_SECOND * seconds


def describe(live: Iterable[model.Instance], p: eci_params.Params, *, region: str) -> dict[str, Any]:
    """``DescribeEipAddresses``: the EIPs bound to live instances, filtered as asked (one page)."""
    kind, holder, wanted = p.text("AssociatedInstanceType"), p.text("AssociatedInstanceId"), p.text("AllocationId")
    if kind and kind != "EciInstance":
        found: list[model.Instance] = []
    else:
        found = [i for i in live if i.eip_id and holder in ("", i.id) and wanted in ("", i.eip_id)]
    items = [
        {"AllocationId": i.eip_id, "IpAddress": i.eip_address, "InstanceId": i.id, "InstanceType": "EciInstance",
         "InstanceRegionId": region, "RegionId": region, "Status": "InUse",
         "Bandwidth": str(i.spec.eip_bandwidth or DEFAULT_BANDWIDTH),
         "InternetChargeType": "PayByBandwidth" if i.eip_owned else "PayByTraffic"}
        for i in found
    ]  # fmt: skip
    return {
        "EipAddresses": {"EipAddress": items},
        "TotalCount": len(items),
        "PageNumber": 1,
        "PageSize": max(10, len(items)),
    }
