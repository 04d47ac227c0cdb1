"""The simulated region's topology and stock: what a first start makes and a restart finds again.

``World`` holds the ids (derived from the seed, so a restart with the same seed makes the same
ones) of the region's zones, VPC, vSwitches, security groups and AccessKeys; it is kept in the
store as JSON. ``ZoneStock`` is a zone's stock of each size, limited through the admin API.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import random

from vnode.cloudsim import errors


@dataclasses.dataclass(frozen=True)
class World:
    """The topology made at first start and kept across restarts (ids derive from the seed)."""

    region: str
    zones: tuple[str, ...]
    vpc_id: str
    vswitches: tuple[tuple[str, str, str], ...]  # (id, zone, cidr)
    security_groups: tuple[tuple[str, str], ...]  # (id, kind)
    access_keys: tuple[tuple[str, str], ...]  # (AccessKeyId, AccessKeySecret)
    max_cpu: float = 100_000.0

    @classmethod
    def default(cls, seed: int, region: str = "cn-hangzhou") -> World:
        rng = random.Random(f"world/{seed}")

        def rid(prefix: str, n: int = 20) -> str:
            return f"{prefix}-{rng.getrandbits(4 * n):0{n}x}"

        zones = tuple(f"{region}-{letter}" for letter in "hij")
        vswitches = tuple((rid("vsw"), zone, f"10.1.{64 * i}.0/18") for i, zone in enumerate(zones))
        groups = ((rid("sg"), "enterprise"), (rid("sg"), "ordinary"))
        key = (f"LTAI{rng.getrandbits(80):020x}", f"{rng.getrandbits(120):030x}")
        return cls(region, zones, rid("vpc"), vswitches, groups, (key,))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> World:
        raw = json.loads(text)
        return cls(
            region=raw["region"],
            zones=tuple(raw["zones"]),
            vpc_id=raw["vpc_id"],
            vswitches=tuple(tuple(v) for v in raw["vswitches"]),
            security_groups=tuple(tuple(g) for g in raw["security_groups"]),
            access_keys=tuple(tuple(k) for k in raw["access_keys"]),
            max_cpu=float(raw["max_cpu"]),
        )


@dataclasses.dataclass
class ZoneStock:
    """Per-spec stock limits of a zone (absent: plenty); ``"*"`` limits every spec together."""

    limits: dict[str, int] = dataclasses.field(default_factory=dict)
    in_use: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    spot_out: set[str] = dataclasses.field(default_factory=set)  # sizes (or "*") the spot market has none of

    def set(self, spec_key: str, available: int | None, *, spot: bool = False) -> None:
        """``available`` more of the size (or of every size, ``*``) from now on; None: plenty."""
        if spot:
            self.set_spot(spec_key, available)
        elif available is None:
            self.limits.pop(spec_key, None)
        else:
            in_use = sum(self.in_use.values()) if spec_key == "*" else self.in_use[spec_key]
            self.limits[spec_key] = in_use + available

    def set_spot(self, spec_key: str, available: int | None) -> None:
        """The spot market alone: none of the size (``available`` 0) or plenty again (None)."""
        if available not in (0, None):
            raise errors.InvalidParameter("available", "the spot market's stock is 0 (none) or null (plenty)")
        (self.spot_out.add if available == 0 else self.spot_out.discard)(spec_key)

    def available(self, spec_key: str, *, spot: bool = False) -> bool:
        if spot and (spec_key in self.spot_out or "*" in self.spot_out):
            return False
        for key in (spec_key, "*"):
            limit = self.limits.get(key)
            used = self.in_use[spec_key] if key != "*" else sum(self.in_use.values())
            if limit is not None and used >= limit:
                return False
        return True
