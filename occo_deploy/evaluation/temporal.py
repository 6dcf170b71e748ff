"""How still a fused video holds where its scene holds still: the frame-to-frame brightness shift of the
fused frames on the pixels neither input changes.

A per-frame min-max stretch (the reference's, kept for images) brightens or darkens a whole frame
when a hot or bright object enters or leaves it: on a static camera, the pixels of the background
shift although nothing there changed. This measure takes, for each pair of consecutive frames, the
pixels where both inputs change by less than ``threshold`` grey levels ("static"), and reports the
mean change of the fused luma there: signed (the whole frame brightening or darkening: pumping) and
absolute, beside the inputs' own change on the same pixels (sensor noise and compression, the floor
a fused video cannot beat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from occo_deploy.errors import InputError

#: A pixel is static between two frames when both inputs change there by less than this (grey levels).
STATIC_THRESHOLD = 3.0


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma of a BGR frame (or a gray one as it is), float32."""
    if frame.ndim == 2:
        return frame.astype(np.float32)
    b, g, r = (frame[..., k].astype(np.float32) for k in range(3))
    return 0.114 * b + 0.587 * g + 0.299 * r


@dataclass
class Step:
    """Frame t to t + 1 on its static pixels."""

    static_share: float  # of the frame's pixels
    fused_shift: float  # signed mean change of the fused luma (grey levels)
    fused_abs: float  # mean absolute change
    inputs_abs: float  # the inputs' own mean absolute change there (the larger of the two)


@dataclass
class Stability:
    steps: list[Step] = field(default_factory=list)

    @property
    def worst_shift(self) -> float:
        """The largest |signed shift| over the steps: how far the whole frame jumps at worst."""
        return max((abs(s.fused_shift) for s in self.steps), default=0.0)

    @property
    def mean_shift(self) -> float:
        return float(np.mean([abs(s.fused_shift) for s in self.steps])) if self.steps else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"threshold": STATIC_THRESHOLD, "steps": len(self.steps),
                "worst_shift": round(self.worst_shift, 3), "mean_shift": round(self.mean_shift, 3),
                "mean_abs": round(float(np.mean([s.fused_abs for s in self.steps])), 3) if self.steps else 0.0,
                "inputs_mean_abs": round(float(np.mean([s.inputs_abs for s in self.steps])), 3) if self.steps else 0.0,
                "per_step": [{"static_share": round(s.static_share, 4), "shift": round(s.fused_shift, 3),
                              "abs": round(s.fused_abs, 3), "inputs_abs": round(s.inputs_abs, 3)}
                             for s in self.steps]}


def stability(fused: Sequence[np.ndarray], infrared: Sequence[np.ndarray], visible: Sequence[np.ndarray],
              threshold: float = STATIC_THRESHOLD) -> Stability:
    """The shift of ``fused`` on the pixels where ``infrared`` and ``visible`` hold still, frame by frame
    (all three sequences of one length and frame size)."""
    if not len(fused) == len(infrared) == len(visible) or len(fused) < 2:
        raise InputError(f"temporal stability needs as many fused, infrared and visible frames, two or more "
                         f"(got {len(fused)}, {len(infrared)}, {len(visible)})")
    result = Stability()
    previous = None
    for f, i, v in zip(fused, infrared, visible):
        current = (luma(f), luma(i), luma(v))
        if current[0].shape != current[1].shape or current[0].shape != current[2].shape:
            raise InputError(f"frames of different sizes: fused {f.shape[:2]}, infrared {i.shape[:2]}, "
                             f"visible {v.shape[:2]}; register or resize them first")
        if previous is not None:
            d_fused, d_ir, d_vis = (c - p for c, p in zip(current, previous))
            static = (np.abs(d_ir) < threshold) & (np.abs(d_vis) < threshold)
            if static.any():
                inputs = max(float(np.abs(d_ir[static]).mean()), float(np.abs(d_vis[static]).mean()))
                result.steps.append(Step(float(static.mean()), float(d_fused[static].mean()),
                                         float(np.abs(d_fused[static]).mean()), inputs))
            else:
                result.steps.append(Step(0.0, 0.0, 0.0, 0.0))
        previous = current
    return result
