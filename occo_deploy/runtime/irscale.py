"""Infrared frames of more than 8 bits (radiometric counts, floats) -> the 8-bit frames OCCO was trained on.

Thermal cameras give 14- or 16-bit counts that fill a narrow band of 0..65535; the network expects
8-bit grey. The mapping is linear between a low and a high value, clipped, rounded:
``round((v - low) * 255 / (high - low))``. Where low and high come from:

* ``percentile[:LO,HI]`` (the default for uint16 and float frames; 1 and 99): this frame's LO-th and
  HI-th percentiles, so a few hot or cold pixels do not flatten the rest;
* ``minmax``: this frame's minimum and maximum;
* ``fixed:MIN,MAX``: always the same counts, for radiometric work: a count gives the same grey in
  every frame and every run;
* ``none``: no scaling; a frame that is not uint8 is then an error.

uint8 frames pass through unchanged unless a mode is named (``auto``, the default), so the fidelity
to the reference is untouched. On a video or a live stream, a per-frame range flickers as objects
enter and leave; ``smooth`` (0 < a <= 1) follows the range with an exponential moving average,
``range = a * this frame's + (1 - a) * the previous``, so it moves by at most a fraction ``a`` of each jump.

Documented edge cases: NaN and infinite values (float frames) take no part in the range and become 0;
a frame with no finite value is an error; a range of zero width (a frame of one count) maps every
pixel to mid-grey, 128.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from occo_deploy.errors import InputError, ShapeError, option
from occo_deploy.runtime.frames import INFRARED_DTYPES

MODES = ("auto", "percentile", "minmax", "fixed", "none")
DEFAULT_PERCENTILES = (1.0, 99.0)
#: Float frames larger than this are ranged on an even subsample (percentiles of 1M values are plenty).
RANGE_SAMPLE = 1 << 20


@dataclass(frozen=True)
class IrScale:
    mode: str = "auto"
    low: float = DEFAULT_PERCENTILES[0]  # a percentile, or a count for "fixed"
    high: float = DEFAULT_PERCENTILES[1]
    smooth: float | None = None

    @classmethod
    def parse(cls, text: str | None, smooth: float | None = None) -> IrScale:
        """``--ir-scale`` and ``--ir-smooth`` as given on the command line (``ir_scale=`` from Python)."""
        name = option("ir_scale")
        if smooth is not None and not 0.0 < smooth <= 1.0:
            raise InputError(f"{option('ir_smooth')} is the weight of the newest frame's range, 0 < a <= 1 "
                             f"(got {smooth:g})")
        text = (text or "auto").strip().lower()
        m = re.fullmatch(r"(auto|percentile|minmax|fixed|none)(?::\s*([-+0-9.e]+)\s*,\s*([-+0-9.e]+))?", text)
        if m is None:
            raise InputError(f"{name} {text!r}: use percentile[:LO,HI], minmax, fixed:MIN,MAX, none or auto")
        mode = m.group(1)
        values = (float(m.group(2)), float(m.group(3))) if m.group(2) else None
        if mode == "fixed" and values is None:
            raise InputError(f"{name} fixed needs the counts that map to black and white: fixed:MIN,MAX")
        if values is not None and mode not in ("percentile", "fixed"):
            raise InputError(f"{name} {mode} takes no values; percentile:LO,HI and fixed:MIN,MAX do")
        low, high = values or DEFAULT_PERCENTILES
        if not low < high or (mode == "percentile" and not 0.0 <= low < high <= 100.0):
            raise InputError(f"{name} {text!r}: need LO < HI (percentiles within 0..100)")
        return cls(mode, low, high, smooth)

    def describe(self) -> str:
        if self.mode == "percentile":
            what = f"percentile {self.low:g}..{self.high:g}"
        elif self.mode == "fixed":
            what = f"fixed counts {self.low:g}..{self.high:g}"
        elif self.mode == "auto":
            what = f"auto: uint8 unchanged, 16-bit and float by percentile {self.low:g}..{self.high:g}"
        else:
            what = self.mode
        return what + (f", range smoothed (a={self.smooth:g})" if self.smooth else "")


class IrScaler:
    """Applies an ``IrScale`` frame after frame, keeping the smoothed range; safe to share between threads."""

    def __init__(self, spec: IrScale) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._range: tuple[float, float] | None = None
        self.frames = 0
        self.last_range: tuple[float, float] | None = None
        self.input_dtypes: set[str] = set()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        mode = self.spec.mode
        if mode == "none" or (mode == "auto" and frame.dtype == np.uint8):
            return frame
        if frame.dtype not in INFRARED_DTYPES:
            raise ShapeError(f"infrared frame of {frame.dtype}: occo-deploy takes uint8, uint16 or float frames")
        if mode == "auto":
            mode = "percentile"
        finite = finite_mask(frame)
        low, high = (self.spec.low, self.spec.high) if mode == "fixed" else _frame_range(frame, finite, mode, self.spec)
        with self._lock:
            if self.spec.smooth and mode != "fixed" and self._range is not None:
                a = self.spec.smooth
                low, high = a * low + (1 - a) * self._range[0], a * high + (1 - a) * self._range[1]
            self._range = (low, high)
            self.last_range = (float(low), float(high))
            self.frames += 1
            self.input_dtypes.add(str(frame.dtype))
        if high <= low:
            out = np.full(frame.shape, 128, np.uint8)
        else:
            # float64, multiply before dividing: a linear map of counts (a x + b) then gives exactly the grey
            # the counts x would, since numerator and denominator are exact before the one rounding.
            scaled = (frame.astype(np.float64) - low) * 255.0 / (high - low)
            out = np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)
        if finite is not None:
            out[~finite] = 0
        return out

    def describe(self) -> dict[str, Any]:
        """What the reports say: the mode, and what it did (nothing at all for 8-bit input under auto)."""
        return {"mode": self.spec.mode, "description": self.spec.describe(), "frames_scaled": self.frames,
                "input_dtypes": sorted(self.input_dtypes),
                "last_range": list(self.last_range) if self.last_range else None}


def finite_mask(frame: np.ndarray) -> np.ndarray | None:
    """Where a float frame is finite (None for integer frames); an ``InputError`` when nowhere."""
    if frame.dtype.kind != "f":
        return None
    finite = np.isfinite(frame)
    if not finite.any():
        raise InputError("infrared frame has no finite value (all NaN or infinite); check the camera's export")
    return finite


def _frame_range(frame: np.ndarray, finite: np.ndarray | None, mode: str, spec: IrScale) -> tuple[float, float]:
    if frame.dtype == np.uint16 or frame.dtype == np.uint8:
        # Integer counts: a histogram gives exact percentiles in one pass, fast even at 4K.
        counts = np.bincount(frame.ravel(), minlength=1)
        values = np.nonzero(counts)[0]
        if mode == "minmax":
            return float(values[0]), float(values[-1])
        cumulative = np.cumsum(counts) / frame.size
        lo = int(np.searchsorted(cumulative, spec.low / 100.0, side="left"))
        hi = int(np.searchsorted(cumulative, spec.high / 100.0, side="left"))
        return float(lo), float(min(hi, len(counts) - 1))
    values = frame[finite] if finite is not None else frame.ravel()
    if mode == "minmax":
        return float(values.min()), float(values.max())
    if values.size > RANGE_SAMPLE:
        values = values[:: values.size // RANGE_SAMPLE]
    lo, hi = np.percentile(values, (spec.low, spec.high))
    return float(lo), float(hi)
