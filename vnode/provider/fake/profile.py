"""What the core knows of the in-memory fake cloud: it sells ECI's sizes at ECI's prices, so the
node's tests see a real cloud's rounding and billing; placement comes from its own settings."""

from __future__ import annotations

import pydantic

from vnode import models
from vnode.provider import profile
from vnode.provider.eci import profile as eci_profile

__all__ = ["PROFILE", "FakeSettings"]


class FakeSettings(pydantic.BaseModel):
    """Where the fake places instances (its failover tests), and how a ``vnode run --provider fake``
    process behaves (tests of the process: a state file keeping the instances across restarts)."""

    model_config = profile.FROZEN

    vswitches: tuple[str, ...] = ()
    security_group: str = ""
    state_file: str = ""
    start_after: float = pydantic.Field(default=0.0, ge=0)  # seconds from create to Running
    answer_latency: float = pydantic.Field(default=0.0, ge=0)  # seconds a create answers after acting

    _split_vswitches = pydantic.field_validator("vswitches", mode="before")(
        classmethod(lambda cls, v: profile.split_list(v))
    )


def _placement(cloud: FakeSettings) -> models.Placement:
    return models.Placement(vswitches=cloud.vswitches, security_group=cloud.security_group)


PROFILE = profile.Profile(
    name="fake",
    factory="vnode.provider.fake.provider:create",
    settings=FakeSettings,
    env={
        "state_file": ("VNODE_FAKE_STATE",),
        "start_after": ("VNODE_FAKE_START_AFTER",),
        "answer_latency": ("VNODE_FAKE_ANSWER_LATENCY",),
    },
    sizes=eci_profile.SIZES,
    default_size=profile.Size(2, 4),
    limits=eci_profile.PROFILE.limits,
    prices=eci_profile.PROFILE.prices,
    taint="fake",
    container_id_scheme="fake",
    placement=_placement,
    specs_annotation=eci_profile.PROFILE.specs_annotation,
    max_pending_annotation=eci_profile.PROFILE.max_pending_annotation,
    live_configmap=eci_profile.PROFILE.live_configmap,
    volume_kinds=eci_profile.PROFILE.volume_kinds,
    csi_drivers=eci_profile.PROFILE.csi_drivers,
    pod_fields=eci_profile.PROFILE.pod_fields,
    ignored_fields=eci_profile.PROFILE.ignored_fields,
)
