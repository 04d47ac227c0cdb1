"""The simulated clock: wall time scaled and shifted, so "120 simulated seconds" takes no real 120 s.

Simulated time is ``anchor_sim + (wall - anchor_wall) * scale``. Scale 0 pauses it (tests then
move it with ``advance``); scale 60 makes a minute pass every second. Changing the scale
re-anchors, so time never jumps backwards. The anchors are persisted by the store, so the
clock continues across restarts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable


@dataclasses.dataclass
class Clock:
    scale: float = 1.0
    anchor_sim: float = dataclasses.field(default_factory=time.time)
    anchor_wall: float = dataclasses.field(default_factory=time.time)
    wall: Callable[[], float] = time.time

    def now(self) -> float:
        return self.anchor_sim + (self.wall() - self.anchor_wall) * self.scale

    def advance(self, seconds: float) -> float:
        """Jump forward by ``seconds`` of simulated time; returns the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.anchor_sim = self.now() + seconds
        self.anchor_wall = self.wall()
        return self.anchor_sim

    def set_scale(self, scale: float) -> None:
        if scale < 0:
            raise ValueError("scale must be >= 0")
        self.anchor_sim = self.now()
        self.anchor_wall = self.wall()
        self.scale = scale

    def state(self) -> dict[str, float]:
        return {"scale": self.scale, "anchor_sim": self.anchor_sim, "anchor_wall": self.anchor_wall}

    @classmethod
    def manual(cls, start: float = 1_800_000_000.0) -> Clock:
        """A paused clock at a fixed start: only ``advance`` moves it (golden tests)."""
        return cls(scale=0.0, anchor_sim=start, anchor_wall=0.0, wall=lambda: 0.0)
