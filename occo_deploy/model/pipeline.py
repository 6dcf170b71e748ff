"""The reference's whole test-time pipeline around the network, as one module to export.

uint8 frames in, as OpenCV gives them (visible N x H x W x 3 BGR, infrared N x H x W), uint8 fused
N x H x W x 3 BGR out. The steps and constants are those of the reference ``main.py``: ``RGB2YCrCb``,
the network on (Y, IR), min-max of the output *per sample*, ``YCbCr2RGB`` with the visible chroma, and
``np.uint8(x * 255.)``, i.e. truncation. Putting them in the graph keeps every backend end to end.

The stretch is steerable (``contract.STRETCH``, ``contract.RANGE``): a row asking for the frame's own
range is the reference, bit for bit; a held range with roll-offs is what video needs (see
``stretch_held``), and each frame's own range comes back so the runtime can hold the next one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Guards the min-max division for a constant network output (the reference divides by zero there).
# Far below any real output range (~1 to 10), so it never changes a real result.
_RANGE_EPS = 1e-12


def rgb_to_ycrcb(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Reference ``RGB2YCrCb`` on [0, 1] planes, same operation order (so the same float rounding)."""
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 0.5
    cb = (b - y) * 0.564 + 0.5
    return y.clamp(0.0, 1.0), cr.clamp(0.0, 1.0), cb.clamp(0.0, 1.0)


def ycrcb_to_rgb(y: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Reference ``YCbCr2RGB`` (a 3x3 matrix after a -0.5 chroma bias), clamped to [0, 1]."""
    cr = cr - 0.5
    cb = cb - 0.5
    r = y + 1.403 * cr
    g = y - 0.714 * cr - 0.344 * cb
    b = y + 1.773 * cb
    return r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0)


def minmax_per_sample(x: torch.Tensor) -> torch.Tensor:
    """(x - min) / (max - min) over each sample, so a batch of N equals N single calls."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(_RANGE_EPS)


def stretch_held(x: torch.Tensor, stretch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stretch each sample over the range its ``stretch`` row holds, with roll-offs; and its own range.

    Row ``[lo, hi, knee_lo, knee_hi]``. With lo > hi the sample's own minimum and maximum are used,
    and the result is ``minmax_per_sample``'s bit for bit: the same operations on the same values,
    and the roll-offs below are skipped exactly (its own maximum maps to 1 exactly, its minimum to 0).

    Otherwise ``(x - lo) / (hi - lo)``, so a static scene keeps its brightness while the range is
    held, and nothing clips when a frame exceeds it: where its maximum maps above 1, the values above
    ``knee_hi`` are compressed linearly into ``[knee_hi, 1]``; where its minimum maps below 0, those
    below ``knee_lo`` into ``[0, knee_lo]``. Pixels between the knees keep their value: a hot object
    entering compresses the highlights, not the whole frame.
    """
    own_lo = x.amin(dim=(1, 2, 3), keepdim=True)
    own_hi = x.amax(dim=(1, 2, 3), keepdim=True)
    row = stretch.reshape(-1, 4, 1, 1)
    held_lo, held_hi, knee_lo, knee_hi = row[:, 0:1], row[:, 1:2], row[:, 2:3], row[:, 3:4]
    own = held_lo > held_hi
    lo = torch.where(own, own_lo, held_lo)
    hi = torch.where(own, own_hi, held_hi)
    span = (hi - lo).clamp_min(_RANGE_EPS)
    t = (x - lo) / span
    top = (own_hi - lo) / span
    bottom = (own_lo - lo) / span
    rolled_hi = knee_hi + (t - knee_hi) * ((1.0 - knee_hi) / (top - knee_hi).clamp_min(_RANGE_EPS))
    t = torch.where((top > 1.0) & (t > knee_hi), rolled_hi, t)
    rolled_lo = knee_lo - (knee_lo - t) * (knee_lo / (knee_lo - bottom).clamp_min(_RANGE_EPS))
    t = torch.where((bottom < 0.0) & (t < knee_lo), rolled_lo, t)
    return t, torch.cat((own_lo, own_hi), dim=1).reshape(-1, 2)


class FusionPipeline(nn.Module):
    """``forward(visible, infrared, stretch) -> (fused, range)`` with the engine I/O contract of every
    backend; ``frame_only=True`` exports the I/O of engines made before the steering (tests)."""

    def __init__(self, net: nn.Module, frame_only: bool = False) -> None:
        # Any module with OCCO's forward(y, ir): the network, or the reference's own form of it
        # (model.reference_form), which benchmarks time against it.
        super().__init__()
        self.net = net
        self.frame_only = frame_only

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor, stretch: torch.Tensor | None = None
                ) -> Any:
        # Cast first: TensorRT takes UINT8 only as a network input that goes straight into a Cast
        # (no Transpose, Reshape or Shape may read it). Casting commutes with both, bit for bit.
        vis = visible.to(torch.float32).permute(0, 3, 1, 2) / 255.0  # N x 3 x H x W, BGR
        ir = infrared.to(torch.float32).unsqueeze(1) / 255.0
        b, g, r = vis[:, 0:1], vis[:, 1:2], vis[:, 2:3]
        y, cr, cb = rgb_to_ycrcb(r, g, b)
        raw = self.net(y, ir)
        if self.frame_only or stretch is None:
            fused_y, own = minmax_per_sample(raw), None
        else:
            fused_y, own = stretch_held(raw, stretch)
        r, g, b = ycrcb_to_rgb(fused_y, cr, cb)
        bgr = torch.cat((b, g, r), dim=1).permute(0, 2, 3, 1)
        # np.uint8(x * 255.) truncates; values are >= 0 after the clamp, so floor is the same and is
        # defined identically by every backend (a bare float->uint8 cast may round on some).
        fused = torch.floor(bgr * 255.0).to(torch.uint8)
        return fused if own is None else (fused, own)
