"""The engine I/O contract every stage and backend agrees on: names, dtypes, layouts, the smallest side.

Kept free of heavy imports: the runtime, the exporter and the builders all read it. The sidecar that
records it beside each artifact is ``occo_deploy.sidecar``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

#: Input and output names, dtypes and layouts of every exported model and engine.
VISIBLE = "visible"  # uint8 N x H x W x 3, BGR (as OpenCV decodes)
INFRARED = "infrared"  # uint8 N x H x W
FUSED = "fused"  # uint8 N x H x W x 3, BGR
#: The stretch's steering: per frame, the range the network's output is stretched over and where the
#: roll-offs begin, float32 N x 4 [lo, hi, knee_lo, knee_hi]. A row with lo > hi
#: (``OWN_RANGE``) stretches a frame over its own minimum and maximum: the reference, bit for bit.
STRETCH = "stretch"
#: Each frame's own minimum and maximum of the network's output, float32 N x 2 [lo, hi]: what a
#: runtime holding the range steady across frames reads back.
RANGE = "range"
IO_SPEC: dict[str, dict[str, Any]] = {
    "inputs": {
        VISIBLE: {"dtype": "uint8", "layout": "NHWC", "channels": "BGR", "shape": ["N", "H", "W", 3]},
        INFRARED: {"dtype": "uint8", "layout": "NHW", "channels": "gray", "shape": ["N", "H", "W"]},
        STRETCH: {"dtype": "float32", "layout": "NC", "channels": "lo,hi,knee_lo,knee_hi", "shape": ["N", 4]},
    },
    "outputs": {
        FUSED: {"dtype": "uint8", "layout": "NHWC", "channels": "BGR", "shape": ["N", "H", "W", 3]},
        RANGE: {"dtype": "float32", "layout": "NC", "channels": "lo,hi", "shape": ["N", 2]},
    },
}
#: The I/O an engine exported before the steering existed; such engines still run, per frame.
FRAME_ONLY_INPUTS = frozenset({VISIBLE, INFRARED})

#: One frame's ``STRETCH`` row that asks for its own range (lo > hi; the knees are not read).
OWN_RANGE = (1.0, 0.0, 0.0, 1.0)


def own_range(n: int) -> np.ndarray:
    """``STRETCH`` rows for ``n`` frames stretched each over its own range, as the reference does."""
    return np.tile(np.asarray(OWN_RANGE, np.float32), (n, 1))

#: The reference network fails below 16 pixels: its fourth encoder stage pools a 1x1 map.
MIN_SIDE = 16


def frame_feeds(visible: np.ndarray, infrared: np.ndarray, inputs: Iterable[str]) -> dict[str, np.ndarray]:
    """A model's inputs for a batch stretched per frame: the frames, and own-range rows when the
    model (whose input names are ``inputs``) takes the steering."""
    feeds = {VISIBLE: visible, INFRARED: infrared}
    if STRETCH in set(inputs):
        feeds[STRETCH] = own_range(len(infrared))
    return feeds


def frame_shapes(n: int, h: int, w: int, inputs: Iterable[str]) -> dict[str, list[int]]:
    """A model's input shapes for an n x h x w batch (a static reshape), the steering's too when it
    takes it."""
    shapes = {VISIBLE: [n, h, w, 3], INFRARED: [n, h, w]}
    if STRETCH in set(inputs):
        shapes[STRETCH] = [n, 4]
    return shapes
