"""TensorRT's rules on the ONNX it would parse, checked without TensorRT (``check --target tensorrt``).

Polygraphy's ``check lint`` idea for our graphs, with the rules as onnx-tensorrt states them:

* UINT8 only as a network input that goes straight into a Cast, or an output made by a Cast
  (``operators.md``: "UINT8 is only supported as network input or output tensor types").
* Q/DQ as TensorRT takes it: INT8 (no UINT8, no INT32 bias dequantization), zero points all zero,
  activations per tensor, weights per output channel (axis 0).
* Every operator, its input type and the attributes its restrictions name, from onnx-tensorrt's
  operator matrix kept as data in ``engines/data/onnx_tensorrt_ops.json`` with its source and release
  (``tools/onnx_tensorrt_ops.py`` writes it).

The TensorRT backend (``tensorrt.py``) declares these as its check. They live apart from its library
calls: no TensorRT object is touched here, and ``tests/test_api_conformance.py`` walks those calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from occo_deploy.interface.checks import CheckInput, Finding, Graph, attr, type_name
from occo_deploy.quantization.placement import weight_axis

if TYPE_CHECKING:
    import onnx

#: onnx-tensorrt's operator matrix as data (``tools/onnx_tensorrt_ops.py`` writes it).
MATRIX = Path(__file__).resolve().parents[1] / "engines" / "data" / "onnx_tensorrt_ops.json"


@lru_cache(maxsize=1)
def tensorrt_matrix() -> dict[str, Any]:
    """onnx-tensorrt's operator matrix: operators, input types, restrictions, opsets per major."""
    data: dict[str, Any] = json.loads(MATRIX.read_text())
    return data


def rules_source() -> str:
    """Which onnx-tensorrt release the rules come from, and the opsets per major."""
    matrix = tensorrt_matrix()
    return (f"TensorRT rules: onnx-tensorrt operator matrix of TensorRT {matrix['tensorrt']} ({matrix['source']}); "
            f"opset {'-'.join(map(str, matrix['opset']))} on 10.x, "
            f"{'-'.join(map(str, matrix['opset_by_major']['11']))} on 11.x")


def check_rules(source: CheckInput) -> Iterable[Finding]:
    """TensorRT's rules on the ONNX it would parse, for ``trt_major`` in the options (None: 10 and 11),
    then what the plan will run: the convolution and matrix work by precision and the Q/DQ pairs that
    keep a product from running its epilogue (``placement.report``)."""
    findings = list(_tensorrt(source.graph, source.options.get("trt_major")))
    yield from findings
    if any(f.level == "error" for f in findings):
        return
    from occo_deploy.quantization.placement import report

    try:
        lines = report(source.model).lines()
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own errors: the report is extra, not a rule
        yield Finding("warning", "tensorrt", "model", "", f"could not measure the work by precision: "
                                                          f"{str(exc).splitlines()[0][:160]}")
        return
    for line in lines:
        yield Finding("info", "tensorrt", "model", "", line)


def _tensorrt(g: Graph, major: int | None) -> Iterable[Finding]:
    from onnx import TensorProto

    t = "tensorrt"
    matrix = tensorrt_matrix()
    ops = matrix["operators"]
    lo, hi = matrix["opset_by_major"][str(major)] if major else matrix["opset"]
    opset = g.opset()
    if not lo <= opset <= hi:
        yield Finding("error", t, "model", "", f"opset {opset}; TensorRT {major or matrix['tensorrt']}'s parser "
                                               f"takes opset {lo} to {hi}")
    for name in g.inputs:
        if g.types.get(name) == TensorProto.UINT8:
            for user in g.consumers.get(name, []):
                if user.op_type != "Cast" or attr(user, "to") not in (TensorProto.FLOAT, TensorProto.FLOAT16):
                    yield Finding("error", t, user.name, user.op_type,
                                  f"reads UINT8 input '{name}'; TensorRT takes UINT8 only straight into a Cast "
                                  "to float or half")
    for name in g.outputs:
        if g.types.get(name) == TensorProto.UINT8:
            made_by = g.producer.get(name)
            if made_by is None or made_by.op_type != "Cast":
                yield Finding("error", t, made_by.name if made_by else name, made_by.op_type if made_by else "",
                              f"makes UINT8 output '{name}'; TensorRT makes UINT8 outputs only with a Cast")
    for node in g.model.graph.node:
        yield from _tensorrt_node(g, node, ops)


def _tensorrt_node(g: Graph, node: onnx.NodeProto, ops: dict[str, Any]) -> Iterable[Finding]:
    t, op = "tensorrt", node.op_type
    if node.domain not in ("", "ai.onnx"):
        yield Finding("error", t, node.name, op, f"operator of domain '{node.domain}' (not standard ONNX); "
                                                 "TensorRT's parser has no importer for it")
        return
    entry = ops.get(op)
    if entry is None or not entry["supported"]:
        yield Finding("error", t, node.name, op, "operator not supported by TensorRT's ONNX parser")
        return
    first = node.input[0] if node.input else ""
    dtype = g.types.get(first)
    kind = type_name(dtype) if dtype else None
    if kind and entry["types"] and kind not in entry["types"] and not (kind == "UINT8" and first in g.inputs):
        hint = ""
        if kind == "UINT8":
            hint = "; UINT8 only as a network input cast at once, or an output made by a Cast"
        elif op == "DequantizeLinear" and kind == "INT32":
            hint = "; keep biases in float for TensorRT (IDequantizeLayer takes INT8/FP8/INT4/FP4)"
        yield Finding("error", t, node.name, op, f"input '{first}' is {kind}; TensorRT's {op} takes "
                                                 f"{', '.join(entry['types'])}{hint}")
    rules = entry.get("rules", {})
    for index, what in rules.get("constant_inputs", {}).items():
        i = int(index)
        if i < len(node.input) and node.input[i] and node.input[i] not in g.constants:
            yield Finding("error", t, node.name, op, f"input '{what}' must be a constant (initializer or Constant)")
    defaults = rules.get("defaults", {})
    for name, allowed in rules.get("attributes", {}).items():
        value = attr(node, name, defaults.get(name))
        if value is not None and value not in allowed:
            yield Finding("error", t, node.name, op, f"{name}={value!r}; TensorRT takes {allowed}")
    if rules.get("dilations_ones") and any(d != 1 for d in attr(node, "dilations", []) or []):
        yield Finding("error", t, node.name, op, "dilations must be empty or all ones")
    kernel = attr(node, "kernel_shape")
    if "spatial_dims" in rules and kernel is not None and len(kernel) not in rules["spatial_dims"]:
        yield Finding("error", t, node.name, op, f"{len(kernel)}D pooling; TensorRT pools in 2D or 3D only")
    if "max_outputs" in rules and len([o for o in node.output if o]) > rules["max_outputs"]:
        yield Finding("error", t, node.name, op, "uses an output TensorRT does not produce")
    if "zero_point_input" in rules:
        yield from _qdq(g, node, int(rules["zero_point_input"]))


def _qdq(g: Graph, node: onnx.NodeProto, zp_index: int) -> Iterable[Finding]:
    """onnx-tensorrt's Q/DQ importer: a constant, positive scale; a zero point that is INT8 zeros of
    the scale's size; per-channel scales only on weights, along the reading op's output channels."""
    t, op = "tensorrt", node.op_type
    zp_name = node.input[zp_index] if len(node.input) > zp_index else ""
    zp = g.array(zp_name) if zp_name else None
    if zp_name and zp is None:
        yield Finding("error", t, node.name, op, "zero point must be a constant")
    if zp is not None:
        if zp.dtype == np.uint8:
            yield Finding("error", t, node.name, op, "UINT8 zero point (asymmetric u8 scheme); TensorRT takes "
                                                     "symmetric INT8 only: build with --backend tensorrt")
        if np.any(zp != 0):
            yield Finding("error", t, node.name, op, "zero point is not zero; TensorRT takes symmetric Q/DQ only")
    scale = g.array(node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        yield Finding("error", t, node.name, op, "scale must be a constant")
        return
    if scale.size == 0 or not np.all(np.asarray(scale, np.float64) > 0):
        yield Finding("error", t, node.name, op, "scale coefficients must all be positive (a zero or negative "
                                                 "scale): TensorRT's parser refuses it")
    if zp is not None and zp.size != scale.size:
        yield Finding("error", t, node.name, op, f"zero point has {zp.size} values and the scale {scale.size}; "
                                                 "TensorRT needs the same volume")
    weight = _weight_shape(g, node)
    if weight is None:
        if scale.size != 1:
            yield Finding("error", t, node.name, op, "activation quantized per channel; TensorRT expects one scale "
                                                     "per activation tensor")
        return
    if scale.size == 1:
        return
    axis = attr(node, "axis", 1)
    axis = axis + len(weight) if axis < 0 else axis
    dequantized = node.output[0] if node.op_type == "DequantizeLinear" else \
        next((u.output[0] for u in g.consumers.get(node.output[0], []) if u.op_type == "DequantizeLinear"), "")
    wanted = {a for user in _readers(g, node)
              if (a := weight_axis(user, list(user.input).index(dequantized) if dequantized in user.input else 1,
                                   len(weight))) is not None}
    if wanted and axis not in wanted:
        readers = {u.op_type for u in _readers(g, node)}
        where = f"per-channel weight scale on axis {attr(node, 'axis', 1)}; its {'/'.join(sorted(readers))} reads " \
                f"output channels on axis {min(wanted)}"
        if readers <= {"MatMul", "Gemm"}:
            # onnx-tensorrt's DequantizeLinear sets no rule on the axis (operators.md: the zero point only),
            # so the parser takes it; TensorRT's INT8 GEMMs scale weights per output channel, so this
            # product cannot be one: it runs unfused, in the float precision, its weights dequantized.
            yield Finding("warning", t, node.name, op, f"{where}: built, but the product runs unfused in "
                                                       "FP16/FP32 with its weights dequantized (slower, not INT8)")
        else:
            yield Finding("error", t, node.name, op, where)
    elif not 0 <= axis < len(weight) or scale.size != weight[axis]:
        yield Finding("error", t, node.name, op, "per-channel scale length differs from the output channels")


def _weight_shape(g: Graph, node: onnx.NodeProto) -> list[int] | None:
    """The shape of the weight a Q/DQ quantizes, or None for an activation. TensorRT takes a weight
    as DQ(INT8 initializer) (ours) or DQ(Q(float initializer)) (ModelOpt's), and Q(initializer)."""
    data = node.input[0]
    if data in g.constants:
        array = g.array(data)
        return list(array.shape) if array is not None else None
    producer = g.producer.get(data)
    if node.op_type == "DequantizeLinear" and producer is not None and producer.op_type == "QuantizeLinear":
        return _weight_shape(g, producer)
    return None


def _readers(g: Graph, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """The ops that read a weight's quantized value: past its DQ when ``node`` is the Q."""
    users = g.consumers.get(node.output[0], [])
    if node.op_type == "QuantizeLinear":
        return [r for u in users if u.op_type == "DequantizeLinear" for r in g.consumers.get(u.output[0], [])]
    return users
