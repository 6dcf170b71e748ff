"""The engine I/O contract every stage and backend agrees on: names, dtypes, layouts, the smallest side.

Kept free of heavy imports: the runtime, the exporter and the builders all read it. The sidecar that
records it beside each artifact is ``occo_deploy.sidecar``.
"""

from __future__ import annotations

from typing import Any

#: Input and output names, dtypes and layouts of every exported model and engine.
VISIBLE = "visible"  # uint8 N x H x W x 3, BGR (as OpenCV decodes)
INFRARED = "infrared"  # uint8 N x H x W
FUSED = "fused"  # uint8 N x H x W x 3, BGR
IO_SPEC: dict[str, dict[str, Any]] = {
    "inputs": {
        VISIBLE: {"dtype": "uint8", "layout": "NHWC", "channels": "BGR", "shape": ["N", "H", "W", 3]},
        INFRARED: {"dtype": "uint8", "layout": "NHW", "channels": "gray", "shape": ["N", "H", "W"]},
    },
    "outputs": {
        FUSED: {"dtype": "uint8", "layout": "NHWC", "channels": "BGR", "shape": ["N", "H", "W", 3]},
    },
}

#: The reference network fails below 16 pixels: its fourth encoder stage pools a 1x1 map.
MIN_SIDE = 16
