"""How a video's fused frames are stretched: each over its own range (the reference), or steadily.

The network's output has no fixed scale; the reference stretches each frame over its own minimum
and maximum. On video that pumps: a hot or bright object entering raises the maximum, and every
other pixel darkens (up to 8 grey levels in one step on a real clip of a lit car crossing a still
scene). ``SteadyStretch`` holds the range across frames instead and follows each frame's own range
(which the engine returns, ``contract.RANGE``) slowly, by at most ``MAX_STEP`` of the range per
frame: a still background keeps its brightness. A frame that exceeds the held range does not clip:
the engine compresses its values beyond the knees into the rest of the scale (see
``model.pipeline.stretch_held``), so the object entering is drawn, and the scene between the knees
is not touched. The figures behind the constants are in benchmarks/README.md ("Temporal stability").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from occo_deploy.contract import OWN_RANGE
from occo_deploy.errors import InputError

#: ``--stretch`` values: ``frame`` is the reference's per-frame stretch, ``steady`` holds the range.
MODES = ("steady", "frame")
#: Where the roll-offs begin, as fractions of the held range (below ``KNEE_LO``, above ``KNEE_HI``).
#: 0.4/0.6 held the worst step of the real sequences lowest (1.45 grey levels on LLVIP against 1.63
#: with 0.25/0.75 and 2.0 with 0.1/0.9); the fidelity to the per-frame stretch changed by 1 dB.
KNEE_LO, KNEE_HI = 0.4, 0.6
#: Frames over which the held range moves 63% of the way to the frames' own (an exponential average).
TIME_CONSTANT_FRAMES = 25.0
#: The most either end of the held range moves in one frame, as a fraction of its span: a mid-grey
#: still pixel then changes by at most about 0.1 grey level per frame from the range alone.
MAX_STEP = 0.001


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"stretch {mode!r}: use steady (held across frames) or frame (each frame over its own "
                         "range, the reference's)")
    return mode


class SteadyStretch:
    """The held range of one stream (one camera pair, one video): what its next frames are stretched over.

    Frame 0 is stretched over its own range, which the stream then holds; it must be back before
    frame 1 is sent (``Fuser.fuse_stream`` sends it alone first). Frame f > 0 is stretched over the
    range held after frame max(0, f - ``LAG``) returned. With batches in flight a frame's
    predecessors are not all back when it is sent; a fixed lag in frames makes the output the same
    for any batch size up to ``LAG`` and one or two batches in flight (a video fused by ``fuse``
    and by ``archive``), and costs nothing at a follow of 0.1% of the range per frame.
    """

    #: Frames between the range a frame returns and the first frame stretched with it.
    LAG = 8

    def __init__(self, knees: tuple[float, float] = (KNEE_LO, KNEE_HI),
                 time_constant_frames: float = TIME_CONSTANT_FRAMES, max_step: float = MAX_STEP) -> None:
        if not 0.0 <= knees[0] <= knees[1] <= 1.0:
            raise InputError(f"stretch knees must satisfy 0 <= low <= high <= 1 (got {knees})")
        self.knees = knees
        self._alpha = 1.0 - math.exp(-1.0 / time_constant_frames)
        self._max_step = max_step
        self._follow = True
        #: The held (lo, hi) of the network's output, None until the first frame returned.
        self.held: tuple[float, float] | None = None
        self.frames = 0
        self._sent = 0  # frames whose rows were given
        self._returned = 0  # frames whose ranges came back
        self._after: dict[int, tuple[float, float] | None] = {0: None}  # held after k frames returned

    @classmethod
    def fixed(cls, lo: float, hi: float, knees: tuple[float, float] = (KNEE_LO, KNEE_HI)) -> SteadyStretch:
        """A range that is held and never followed (a yardstick, or a scene whose range is known)."""
        held = cls(knees)
        held.held, held._follow = (float(lo), float(hi)), False
        return held

    @property
    def priming(self) -> bool:
        """Whether the stream's first frame is yet to come back: nothing else may be sent before it."""
        return self._follow and self._returned == 0

    def rows(self, n: int) -> np.ndarray:
        """``contract.STRETCH`` rows for this stream's next ``n`` frames (float32 n x 4)."""
        out = np.empty((n, 4), np.float32)
        for k in range(n):
            if not self._follow:
                lagged = self.held
            elif self._returned == 0:
                lagged = None  # frame 0 (or frames sent before it returned): their own range
            else:  # the frames returned whose held range this frame takes: 1 .. _sent - LAG + 1
                lagged = self._after.get(min(max(1, self._sent - self.LAG + 1), self._returned))
            out[k] = OWN_RANGE if lagged is None else (*lagged, *self.knees)
            self._sent += 1
        for old in [j for j in self._after if 1 < j < self._sent - self.LAG - 1]:
            del self._after[old]
        return out

    def update(self, ranges: Sequence[Sequence[float]] | np.ndarray) -> None:
        """Follow returned frames' own ranges (``contract.RANGE`` rows, in the stream's order)."""
        if not self._follow:
            return
        for lo, hi in np.asarray(ranges, np.float64).reshape(-1, 2):
            self.frames += 1
            self._returned += 1
            if math.isfinite(lo) and math.isfinite(hi) and hi > lo:  # a constant frame says nothing
                if self.held is None:
                    self.held = (float(lo), float(hi))
                else:
                    held_lo, held_hi = self.held
                    cap = self._max_step * (held_hi - held_lo)
                    held_lo += float(np.clip(self._alpha * (lo - held_lo), -cap, cap))
                    held_hi += float(np.clip(self._alpha * (hi - held_hi), -cap, cap))
                    self.held = (held_lo, held_hi)
            self._after[self._returned] = self.held

    def describe(self) -> dict[str, object]:
        return {"mode": "steady" if self._follow else "fixed", "knees": list(self.knees),
                "max_step": self._max_step, "lag_frames": self.LAG,
                "time_constant_frames": round(1.0 / -math.log(1.0 - self._alpha), 3)}
