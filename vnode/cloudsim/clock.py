"""The simulated clock: wall time scaled and shifted, so "120 simulated seconds" takes no real 120 s.

Simulated time is ``anchor_sim + (wall - anchor_wall) * scale``. Scale 0 pauses it (tests then
move it with ``advance``); scale 60 makes a minute pass every second. Changing the scale
re-anchors, so time never jumps backwards. The anchors are persisted by the store, so the
clock continues across restarts.

A client's durations are wall seconds (ECI's ``SinceSecond``: "changed in the last N seconds",
measured on the caller's clock); :meth:`Clock.ago` turns them into the simulated time it was
then, through the earlier anchors, so a scaled or advanced clock answers them truly.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

KEPT_ANCHORS = 256  # earlier anchors :meth:`Clock.ago` can look back through


@dataclasses.dataclass
class Clock:
    scale: float = 1.0
    anchor_sim: float = dataclasses.field(default_factory=time.time)
    anchor_wall: float = dataclasses.field(default_factory=time.time)
    wall: Callable[[], float] = time.time
    #: Earlier anchors (wall, sim, scale), oldest first: what the clock was before each change.
    past: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)

    def now(self) -> float:
        return self.anchor_sim + (self.wall() - self.anchor_wall) * self.scale

    def advance(self, seconds: float) -> float:
        """Jump forward by ``seconds`` of simulated time; returns the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._reanchor(self.now() + seconds, self.scale)
        return self.anchor_sim

    def set_scale(self, scale: float) -> None:
        if scale < 0:
            raise ValueError("scale must be >= 0")
        self._reanchor(self.now(), scale)

    def _reanchor(self, sim: float, scale: float) -> None:
        self.past = [*self.past[-(KEPT_ANCHORS - 1) :], (self.anchor_wall, self.anchor_sim, self.scale)]
        self.anchor_sim, self.anchor_wall, self.scale = sim, self.wall(), scale

    def ago(self, seconds: float) -> float:
        """The simulated time it was ``seconds`` of wall time ago. Before the anchors kept, the
        oldest one's start: an earlier answer, so "changed since" asks never miss a change."""
        wall = self.wall() - seconds
        for anchor_wall, anchor_sim, scale in reversed([*self.past, (self.anchor_wall, self.anchor_sim, self.scale)]):
            if wall >= anchor_wall:
                return anchor_sim + (wall - anchor_wall) * scale
        anchor_wall, anchor_sim, scale = self.past[0] if self.past else (self.anchor_wall, self.anchor_sim, self.scale)
        return anchor_sim + min(0.0, wall - anchor_wall) * max(scale, 1.0)

    def state(self) -> dict[str, float]:
        return {"scale": self.scale, "anchor_sim": self.anchor_sim, "anchor_wall": self.anchor_wall}

    @classmethod
    def manual(cls, start: float = 1_800_000_000.0) -> Clock:
        """A paused clock at a fixed start: only ``advance`` moves it (golden tests)."""
        return cls(scale=0.0, anchor_sim=start, anchor_wall=0.0, wall=lambda: 0.0)
