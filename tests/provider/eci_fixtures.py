"""The ECI provider tests' settings and instance specs (the simulator and provider fixtures are in conftest.py)."""

from __future__ import annotations

from tests.cloudsim.conftest import Sim
from vnode import models
from vnode.provider.eci import config as eci_config

__all__ = ["NODE_TAGS", "eci_settings", "spec"]

NODE_TAGS = {models.TAG_CLUSTER: "c1", models.TAG_NODE: "vn-0"}


def eci_settings(sim: Sim, **overrides: object) -> eci_config.EciSettings:
    fields: dict[str, object] = {
        "region": sim.region,
        "endpoint": sim.info["eci"]["endpoint"],
        "access_key": sim.info["eci"]["access_key_id"],
        "secret_key": sim.info["eci"]["access_key_secret"],
        "vswitches": tuple(v["id"] for v in sim.vswitches),
        "security_group": sim.info["security_group_id"],
    }
    fields.update(overrides)
    return eci_config.EciSettings.model_validate(fields)


def spec(
    name: str = "web",
    *command: str,
    token: str = "",
    image: str = "nginx",
    cpu: float = 2,
    memory: float = 4,
    restart: str = "Always",
    tags: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> models.InstanceSpec:
    return models.InstanceSpec(
        name=name,
        client_token=token or f"uid-{name}",
        containers=(models.ContainerSpec(name="app", image=image, command=command),),
        cpu=cpu,
        memory_gib=memory,
        restart_policy=restart,
        tags={**NODE_TAGS, models.TAG_POD_UID: f"uid-{name}", **(tags or {})},
        annotations=annotations or {},
    )
