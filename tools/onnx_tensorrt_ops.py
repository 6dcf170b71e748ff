"""Regenerate ``occo_deploy/engines/data/onnx_tensorrt_ops.json`` from onnx-tensorrt's operator matrix.

    python tools/onnx_tensorrt_ops.py path/to/onnx-tensorrt/docs/operators.md --source URL

The matrix (``docs/operators.md`` of github.com/onnx/onnx-tensorrt, one per TensorRT release) lists
every ONNX operator with "Supported", "Supported Types" and free-text "Restrictions". The JSON keeps
those three columns verbatim, the release and opset range from the page's heading, and adds
``rules``: the restrictions that concern operators an OCCO graph can contain, written as data that
``occo_deploy.engines.check`` enforces. Keep ``RULES`` in step with the restriction texts when the
matrix is regenerated for a new release.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

_REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
           "ReduceProd", "ReduceSum", "ReduceSumSquare")

#: Machine-checkable forms of the Restrictions column. Keys: ``constant_inputs`` (input index -> name:
#: must be an initializer or a Constant's output), ``attributes`` (name -> allowed values; a missing
#: attribute takes the ONNX default given in ``defaults``), ``dilations_ones``, ``spatial_dims``
#: (allowed kernel ranks), ``max_outputs`` (outputs TensorRT produces), ``zero_point_input``
#: (index of a zero point that must be all zeros).
RULES: dict[str, dict[str, Any]] = {
    **{op: {"constant_inputs": {"1": "axes"}} for op in _REDUCE},
    "Squeeze": {"constant_inputs": {"1": "axes"}},
    "Unsqueeze": {"constant_inputs": {"1": "axes"}},
    "CumSum": {"constant_inputs": {"1": "axis"}},
    "AveragePool": {"dilations_ones": True, "spatial_dims": [2, 3]},
    "MaxPool": {"dilations_ones": True, "spatial_dims": [2, 3], "max_outputs": 1},
    "LpPool": {"dilations_ones": True},
    "LayerNormalization": {"max_outputs": 1},
    "Dropout": {"constant_inputs": {"2": "training_mode"}},
    "TopK": {"attributes": {"sorted": [1]}, "defaults": {"sorted": 1}},
    "ScatterND": {"attributes": {"reduction": ["none"]}, "defaults": {"reduction": "none"}},
    "LSTM": {"attributes": {"input_forget": [0], "layout": [0]}, "defaults": {"input_forget": 0, "layout": 0}},
    "Resize": {
        "attributes": {
            "coordinate_transformation_mode": ["half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                                               "asymmetric", "align_corners"],
            "mode": ["nearest", "linear"],
            "nearest_mode": ["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"],
            "keep_aspect_ratio_policy": ["stretch"],
            "antialias": [0],
        },
        "defaults": {"coordinate_transformation_mode": "half_pixel", "mode": "nearest",
                     "nearest_mode": "round_prefer_floor", "keep_aspect_ratio_policy": "stretch", "antialias": 0},
    },
    "QuantizeLinear": {"zero_point_input": 2},
    "DequantizeLinear": {"zero_point_input": 2},
}


def parse(text: str) -> dict[str, Any]:
    head = re.search(r"TensorRT\s+([0-9.]+)\s+supports operators in the inclusive range of opset\s+(\d+)"
                     r"\s+to opset\s+(\d+)",
                     text)
    if head is None:
        raise SystemExit("no 'TensorRT X supports operators in the inclusive range of opset A to opset B' line")
    operators: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or cells[1] not in ("Y", "N") or cells[0] == "Operator":
            continue
        name, supported = cells[0], cells[1] == "Y"
        types = [t.strip() for t in cells[2].split(",") if t.strip()] if len(cells) > 2 and supported else []
        restrictions = cells[3] if len(cells) > 3 else ""
        operators[name] = {"supported": supported, "types": types, "restrictions": restrictions}
        if name in RULES:
            operators[name]["rules"] = RULES[name]
    missing = sorted(set(RULES) - set(operators))
    if missing:
        raise SystemExit(f"rules for operators the matrix does not list: {missing}")
    return {"tensorrt": head.group(1), "opset": [int(head.group(2)), int(head.group(3))], "operators": operators}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("operators_md", type=Path)
    ap.add_argument("--source", required=True, help="where the operators.md came from (recorded in the JSON)")
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parents[1] / "occo_deploy/engines/data/onnx_tensorrt_ops.json")
    args = ap.parse_args()
    matrix = parse(args.operators_md.read_text())
    data = {
        "source": args.source,
        "generated_by": "tools/onnx_tensorrt_ops.py",
        "notes": [
            "UINT8 is only supported as network input or output tensor types (operators.md).",
            "INT8, INT4, FP8 and FP4 are quantized types: only through Q/DQ from a wider float type (operators.md).",
            "TensorRT 11.x: strongly typed networks only; its parser documents opset 9 to 25 (TensorRT 11 ONNX opset "
            "guide) and adds operators to the 10.x matrix (Swish, TRT_* custom operators in 11.0); no 10.x "
            "operator used here was removed.",
        ],
        "opset_by_major": {"10": matrix["opset"], "11": [9, 25]},
        **matrix,
    }
    args.output.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"{len(matrix['operators'])} operators of TensorRT {matrix['tensorrt']} -> {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
