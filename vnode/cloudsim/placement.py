"""Where a new instance goes: its spec checked, its size rounded up, a vSwitch with stock and an address.

The cloud's rules for a create, apart from its state: a spec within ECI's limits (containers,
tags, client token, vSwitches), the size the cloud bills (the containers' sum, rounded up to a
catalog size), and the first candidate vSwitch (in order, or shuffled by the seed for
``VSwitchRandom``) whose zone has stock of that size and which has a free address.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping

from vnode.cloudsim import catalog, errors, lifecycle, model, network, spot, world

MAX_CONTAINERS = 20
MAX_TAGS = 20
MAX_VSWITCHES = 10
MAX_TOKEN = 64


def validate(
    spec: model.InstanceSpec,
    *,
    vswitches: Collection[str],
    groups: Collection[str],
    zones: Collection[str],
    region: str,
) -> None:
    """Raise the cloud's parameter error for the first thing wrong with ``spec``."""
    if not spec.name:
        raise errors.MissingParameter("ContainerGroupName")
    if not spec.containers:
        raise errors.MissingParameter("Container")
    if len(spec.containers) > MAX_CONTAINERS:
        raise errors.InvalidParameter("Container", f"at most {MAX_CONTAINERS} containers")
    names = [c.name for c in spec.containers]
    if len(set(names)) != len(names):
        raise errors.InvalidParameter("Container.N.Name", "container names must be unique")
    if spec.restart_policy not in model.RESTART_POLICIES:
        raise errors.InvalidParameter("RestartPolicy", f"one of {', '.join(model.RESTART_POLICIES)}")
    if len(spec.tags) > MAX_TAGS:
        raise errors.InvalidParameter("Tag", f"at most {MAX_TAGS} tags")
    if len(spec.client_token) > MAX_TOKEN or not spec.client_token.isascii():
        raise errors.InvalidParameter("ClientToken", f"at most {MAX_TOKEN} ASCII characters")
    if not spec.vswitch_ids:
        raise errors.MissingParameter("VSwitchId")
    if len(spec.vswitch_ids) > MAX_VSWITCHES:
        raise errors.InvalidParameter("VSwitchId", f"at most {MAX_VSWITCHES} vSwitches")
    for vswitch_id in spec.vswitch_ids:
        if vswitch_id not in vswitches:
            raise errors.InvalidParameter("VSwitchId", f"{vswitch_id} does not exist")
    if spec.security_group_id not in groups:
        raise errors.InvalidParameter("SecurityGroupId", f"{spec.security_group_id or '(empty)'} does not exist")
    if spec.zone and spec.zone not in zones:
        raise errors.InvalidParameter("ZoneId", f"{spec.zone} is not a zone of {region}")
    if spec.schedule_strategy not in ("VSwitchOrdered", "VSwitchRandom"):
        raise errors.InvalidParameter("ScheduleStrategy", "VSwitchOrdered or VSwitchRandom")
    lifecycle.Overrides.from_tags(spec.tags)


def _gpu_size(spec: model.InstanceSpec) -> catalog.Spec | None:
    """A GPU type's size, its containers' GPUs checked; None for a spec without GPUs, or for an ACI
    group's (its GPUs are per container, checked by the ACI dialect, and its size its containers')."""
    if catalog.aci_gpu_sku(spec.instance_type):
        return None
    gpu = catalog.GPU_TYPES.get(spec.instance_type)
    if gpu is None and spec.instance_type.startswith(catalog.GPU_FAMILIES):
        raise errors.InvalidParameter("InstanceType", f"{spec.instance_type} is not a GPU type sold in this region")
    asked = [(f"Container.{n}.Gpu", c.gpu) for n, c in enumerate(spec.containers, 1) if c.gpu]
    if gpu is None:
        if asked:
            raise errors.InvalidParameter(asked[0][0], "GPUs need a GPU InstanceType (ecs.gn...)")
        return None
    if not asked:
        raise errors.InvalidParameter(
            "Container.N.Gpu", f"{spec.instance_type} is a GPU type: no container asks for GPUs"
        )
    for where, count in asked:  # the containers share the instance's GPUs; each may use up to all of them
        if count > gpu.gpus:
            raise errors.InvalidParameter(where, f"{count} GPUs, more than {spec.instance_type} has ({gpu.gpus})")
    return catalog.Spec(gpu.cpu, gpu.memory)


def size(spec: model.InstanceSpec) -> catalog.Spec:
    """The size billed: a GPU type's, else the spec's own, else the containers' sum, else the default; rounded up."""
    gpu = _gpu_size(spec)
    if gpu is not None:
        return gpu
    cpu, memory = spec.cpu, spec.memory
    if not cpu and not memory:
        cpu = sum(c.cpu for c in spec.containers)
        memory = sum(c.memory for c in spec.containers)
        if not cpu and not memory:
            cpu, memory = catalog.DEFAULT_SPEC
    try:
        return catalog.round_up(cpu or 0.25, memory or 0.5)
    except catalog.SpecError as exc:
        raise errors.SpecNotSupported(str(exc)) from exc


def place(
    spec: model.InstanceSpec,
    size: catalog.Spec,
    seq: int,
    *,
    vswitches: Mapping[str, network.VSwitch],
    stock: Mapping[str, world.ZoneStock],
    seed: int,
) -> tuple[network.VSwitch, list[str]]:
    """The first candidate vSwitch whose zone has stock and which has a free address, and the zones
    skipped for want of stock."""
    candidates = [vswitches[v] for v in spec.vswitch_ids]
    if spec.zone:
        candidates = [v for v in candidates if v.zone == spec.zone]
        if not candidates:
            raise errors.InvalidParameter("ZoneId", f"none of the vSwitches is in {spec.zone}")
    if spec.schedule_strategy == "VSwitchRandom":
        random.Random(f"{seed}/place/{seq}").shuffle(candidates)
    no_stock: list[str] = []
    exhausted: list[str] = []
    key = catalog.stock_key(spec.instance_type, size.cpu, size.memory)  # a GPU type's own stock, else the size's
    for vswitch in candidates:
        if not stock[vswitch.zone].available(key, spot=spot.is_spot(spec)):
            if vswitch.zone not in no_stock:
                no_stock.append(vswitch.zone)
            continue
        if vswitch.pool.free <= 0:
            exhausted.append(vswitch.id)
            continue
        return vswitch, no_stock
    if exhausted:
        raise errors.AddressExhausted(f"The specified vSwitch has not enough IP addresses: {', '.join(exhausted)}")
    raise errors.NoStock(f"The resource {key} is out of stock in {', '.join(no_stock)}.")
