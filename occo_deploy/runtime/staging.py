"""Host staging buffers ("slots") that frames are written into and fused frames are read out of.

A slot holds one batch: visible (N x H x W x 3), infrared (N x H x W) and fused (N x H x W x 3), all
uint8, so a pixel costs 4 bytes in and 3 out. GPU backends back slots with page-locked memory and
device buffers and keep two or more in flight; CPU backends use one slot of plain numpy memory. The
frames are written straight into the slot (no intermediate batch array). Beside them, per frame,
the stretch's steering row in (``contract.STRETCH``, 4 float32) and its own range out
(``contract.RANGE``, 2 float32), used by engines that have them.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from occo_deploy.runtime.shapes import ShapeRange

BYTES_IN_PER_PIXEL = 4  # 3 visible + 1 infrared
BYTES_OUT_PER_PIXEL = 3
STRETCH_FLOATS = 4  # per frame: lo, hi, knee_lo, knee_hi
RANGE_FLOATS = 2  # per frame: lo, hi

#: Largest staging set (inputs + output) allocated up front from an engine's profile. A dynamic
#: profile up to 8 x 4096 x 4096 would need 940 MB of pinned memory per slot, which starves the host;
#: beyond this, slots are sized to the first batch and grow when a larger one arrives.
MAX_PREALLOCATED_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class BufferPlan:
    """Capacity of one slot, as a batch size and a frame size."""

    batch: int
    height: int
    width: int

    @property
    def pixels(self) -> int:
        return self.batch * self.height * self.width

    @property
    def visible_bytes(self) -> int:
        return self.pixels * 3

    @property
    def infrared_bytes(self) -> int:
        return self.pixels

    @property
    def fused_bytes(self) -> int:
        return self.pixels * BYTES_OUT_PER_PIXEL

    @property
    def frames(self) -> int:
        """The most frames a slot's steering rows hold: a batch of smaller frames than planned fits
        more of them in the same pixels."""
        return self.pixels // (16 * 16)

    @property
    def stretch_bytes(self) -> int:
        return self.frames * STRETCH_FLOATS * 4

    @property
    def range_bytes(self) -> int:
        return self.frames * RANGE_FLOATS * 4

    @property
    def total_bytes(self) -> int:
        return self.pixels * (BYTES_IN_PER_PIXEL + BYTES_OUT_PER_PIXEL)

    def fits(self, n: int, h: int, w: int) -> bool:
        """Whether a batch fits, by pixel count: a slot's memory is flat, any N x H x W within it works."""
        return n * h * w <= self.pixels

    @classmethod
    def for_engine(cls, shapes: ShapeRange, batch: int, n: int, h: int, w: int) -> BufferPlan:
        """The plan for a run of ``batch``-sized batches whose first batch is ``n`` x ``h`` x ``w``.

        A bounded profile is allocated once at its maximum (batch capped at ``batch``), so no later
        frame size reallocates; an unbounded or huge profile gets exactly the first batch's size.
        """
        batch = max(batch, n)
        if shapes.max_height is not None and shapes.max_width is not None:
            top = min(batch, shapes.max_batch or batch)
            plan = cls(top, shapes.max_height, shapes.max_width)
            if plan.total_bytes <= MAX_PREALLOCATED_BYTES:
                return plan
        return cls(batch, h, w)


@dataclass
class Slot:
    """One batch in flight: host buffers, its current shape, and whatever the backend attaches."""

    index: int
    plan: BufferPlan
    host_visible: np.ndarray  # flat uint8, plan.visible_bytes
    host_infrared: np.ndarray
    host_fused: np.ndarray
    host_stretch: np.ndarray  # flat float32, plan.frames x 4
    host_range: np.ndarray  # flat float32, plan.frames x 2
    n: int = 0
    h: int = 0
    w: int = 0
    #: The fused batch once ``Backend.wait`` returned; a view of ``host_fused`` when ``staged``.
    output: np.ndarray | None = None
    #: Each frame's own range (N x 2) once fused, from engines that return it; else None.
    ranges: np.ndarray | None = None
    #: True when ``output`` lives in the slot's reused buffer and must be copied before the slot is reused.
    staged: bool = False
    busy: bool = False
    #: Seconds per engine stage of the batch (``h2d``, ``infer``, ``d2h``), set when it was fused.
    times: dict[str, float] = field(default_factory=dict)
    #: The worker's pending run of this batch (``run``-based backends with more than one in flight).
    future: Future[None] | None = None
    #: The caller's: the frame size to scale the fused batch back to (``Fuser(max_side=)``), else None.
    restore_hw: tuple[int, int] | None = None
    #: The caller's: per frame, whose held stretch its range goes back to (``Fuser``), or None.
    holders: list[Any] = field(default_factory=list)
    #: A GPU backend's own: device pointers, stream, events, execution context.
    device: dict[str, Any] = field(default_factory=dict)

    def shape(self, n: int, h: int, w: int) -> None:
        if not self.plan.fits(n, h, w):
            raise ValueError(f"batch {n}x{h}x{w} does not fit slot of {self.plan}")
        self.n, self.h, self.w = n, h, w
        self.output = self.ranges = None

    def visible(self) -> np.ndarray:
        return self.host_visible[: self.n * self.h * self.w * 3].reshape(self.n, self.h, self.w, 3)

    def infrared(self) -> np.ndarray:
        return self.host_infrared[: self.n * self.h * self.w].reshape(self.n, self.h, self.w)

    def fused(self) -> np.ndarray:
        return self.host_fused[: self.n * self.h * self.w * 3].reshape(self.n, self.h, self.w, 3)

    def stretch(self) -> np.ndarray:
        return self.host_stretch[: self.n * STRETCH_FLOATS].reshape(self.n, STRETCH_FLOATS)

    def range(self) -> np.ndarray:
        return self.host_range[: self.n * RANGE_FLOATS].reshape(self.n, RANGE_FLOATS)


def numpy_slot(index: int, plan: BufferPlan) -> Slot:
    """A slot in ordinary (pageable) memory, for backends that take numpy arrays."""
    return Slot(index, plan, np.empty(plan.visible_bytes, np.uint8), np.empty(plan.infrared_bytes, np.uint8),
                np.empty(plan.fused_bytes, np.uint8), np.empty(plan.frames * STRETCH_FLOATS, np.float32),
                np.empty(plan.frames * RANGE_FLOATS, np.float32))
