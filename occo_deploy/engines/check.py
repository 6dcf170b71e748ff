"""``occo-deploy check``: lint an ONNX artifact against what its target backend accepts, without it.

Polygraphy's ``check lint`` idea for our graphs. TensorRT cannot run on this project's machines, so
its rules are encoded here and checked on the ONNX it would parse:

* UINT8 only as a network input that goes straight into a Cast, or an output made by a Cast
  (onnx-tensorrt ``operators.md``: "UINT8 is only supported as network input or output tensor types").
* Q/DQ as TensorRT takes it: INT8 (no UINT8, no INT32 bias dequantization), zero points all zero,
  activations per tensor, weights per output channel (axis 0).
* Every operator, its input type and the attributes its restrictions name, from onnx-tensorrt's
  operator matrix, kept as data in ``data/onnx_tensorrt_ops.json`` with its source and release.

The ONNX Runtime and OpenVINO targets ask the library itself: a session is created, or OpenVINO's
``query_model`` says which operations its CPU plugin takes. Every target checks the engine I/O
contract. Findings name the node; errors mean the backend would refuse the graph.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from occo_deploy.contract import FUSED, INFRARED, VISIBLE, read_sidecar
from occo_deploy.errors import InputError, first_line

TARGETS = ("tensorrt", "onnxruntime", "openvino")
_MATRIX = Path(__file__).with_name("data") / "onnx_tensorrt_ops.json"

#: ONNX element types under the names onnx-tensorrt's matrix uses.
TYPE_NAMES = {
    TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
    TensorProto.DOUBLE: "DOUBLE", TensorProto.INT32: "INT32", TensorProto.INT64: "INT64",
    TensorProto.INT8: "INT8", TensorProto.UINT8: "UINT8", TensorProto.BOOL: "BOOL",
    TensorProto.INT4: "INT4", TensorProto.FLOAT8E4M3FN: "FP8", TensorProto.FLOAT4E2M1: "FP4",
}
_IO_TYPES = {VISIBLE: (TensorProto.UINT8, 4), INFRARED: (TensorProto.UINT8, 3)}


@dataclass(frozen=True)
class Finding:
    """One problem: ``error`` means the target refuses the graph, ``warning`` that it may run worse."""

    level: str
    target: str
    node: str  # node name, or the tensor / "model" a graph-level rule is about
    op: str
    message: str

    def line(self) -> str:
        where = f"{self.node} ({self.op})" if self.op else self.node
        return f"{self.level}: [{self.target}] {where}: {self.message}"


@dataclass
class CheckReport:
    artifact: Path
    targets: list[str]
    findings: list[Finding]
    notes: list[str]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"artifact": str(self.artifact), "targets": self.targets, "passed": self.passed,
                "errors": len(self.errors), "findings": [f.__dict__ for f in self.findings], "notes": self.notes}


@lru_cache(maxsize=1)
def tensorrt_matrix() -> dict[str, Any]:
    """onnx-tensorrt's operator matrix as data (see ``tools/onnx_tensorrt_ops.py``)."""
    return json.loads(_MATRIX.read_text())  # type: ignore[no-any-return]


class _Graph:
    """What the rules ask of a model: producers, consumers, constants and element types."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        graph = model.graph
        self.inputs = {i.name: i for i in graph.input}
        self.outputs = {o.name: o for o in graph.output}
        self.initializers = {i.name: i for i in graph.initializer}
        self.constants = dict(self.initializers)
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = node.attribute[0].t
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        try:  # types of intermediate tensors; the I/O and initializers are typed anyway
            inferred = onnx.shape_inference.infer_shapes(model).graph
        except Exception:  # noqa: BLE001 - an unknown op: go on with what is typed
            inferred = graph
        self.types: dict[str, int] = {}
        for value in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
            self.types[value.name] = value.type.tensor_type.elem_type
        for init in graph.initializer:
            self.types[init.name] = init.data_type
        for name, tensor in self.constants.items():
            self.types.setdefault(name, tensor.data_type)

    def array(self, name: str) -> np.ndarray | None:
        tensor = self.constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def opset(self) -> int:
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


# -- I/O contract (every target) ------------------------------------------------------------------
def _contract(g: _Graph, target: str) -> Iterable[Finding]:
    for name, (dtype, rank) in _IO_TYPES.items():
        value = g.inputs.get(name)
        if value is None:
            yield Finding("error", target, name, "", "missing input: not an occo-deploy model (export one with "
                                                     "occo-deploy export CHECKPOINT)")
            continue
        t = value.type.tensor_type
        if t.elem_type != dtype or len(t.shape.dim) != rank:
            yield Finding("error", target, name, "", f"input is {TYPE_NAMES.get(t.elem_type, t.elem_type)} rank "
                                                     f"{len(t.shape.dim)}; the contract is UINT8 rank {rank}")
    out = g.outputs.get(FUSED)
    if out is None or out.type.tensor_type.elem_type != TensorProto.UINT8:
        yield Finding("error", target, FUSED, "", "output 'fused' (UINT8 N x H x W x 3) missing")


# -- TensorRT -------------------------------------------------------------------------------------
def _tensorrt(g: _Graph, major: int | None) -> Iterable[Finding]:
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
                if user.op_type != "Cast" or _attr(user, "to") not in (TensorProto.FLOAT, TensorProto.FLOAT16):
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


def _tensorrt_node(g: _Graph, node: onnx.NodeProto, ops: dict[str, Any]) -> Iterable[Finding]:
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
    kind = TYPE_NAMES.get(dtype, str(dtype)) if dtype else None
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
        value = _attr(node, name, defaults.get(name))
        if value is not None and value not in allowed:
            yield Finding("error", t, node.name, op, f"{name}={value!r}; TensorRT takes {allowed}")
    if rules.get("dilations_ones") and any(d != 1 for d in _attr(node, "dilations", []) or []):
        yield Finding("error", t, node.name, op, "dilations must be empty or all ones")
    kernel = _attr(node, "kernel_shape")
    if "spatial_dims" in rules and kernel is not None and len(kernel) not in rules["spatial_dims"]:
        yield Finding("error", t, node.name, op, f"{len(kernel)}D pooling; TensorRT pools in 2D or 3D only")
    if "max_outputs" in rules and len([o for o in node.output if o]) > rules["max_outputs"]:
        yield Finding("error", t, node.name, op, "uses an output TensorRT does not produce")
    if "zero_point_input" in rules:
        yield from _qdq(g, node, int(rules["zero_point_input"]))


def _qdq(g: _Graph, node: onnx.NodeProto, zp_index: int) -> Iterable[Finding]:
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
    data = node.input[0]
    if op == "DequantizeLinear" and data in g.initializers:  # a weight
        if scale.size > 1:
            if _attr(node, "axis", 1) != 0:
                yield Finding("error", t, node.name, op, f"per-channel weight scale on axis {_attr(node, 'axis', 1)}; "
                                                         "convolution weights are quantized per output channel (axis 0)")
            elif scale.size != g.initializers[data].dims[0]:
                yield Finding("error", t, node.name, op, "per-channel scale length differs from the output channels")
    elif scale.size != 1:
        yield Finding("error", t, node.name, op, "activation quantized per channel; TensorRT expects one scale "
                                                 "per activation tensor")


# -- ONNX Runtime and OpenVINO: ask the library ----------------------------------------------------
def _onnxruntime(path: Path) -> Iterable[Finding]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types
        yield Finding("error", "onnxruntime", "model", "", f"ONNX Runtime {ort.__version__} cannot load it: "
                                                           f"{first_line(exc)[:200]}")


def _openvino(path: Path, model: onnx.ModelProto) -> Iterable[Finding]:
    from occo_deploy.runtime.openvino_backend import openvino

    ov = openvino()
    core = ov.Core()
    try:
        ov_model = core.read_model(str(path))
    except Exception as exc:  # noqa: BLE001
        yield Finding("error", "openvino", "model", "", f"OpenVINO {ov.__version__} cannot read it: {first_line(exc)[:200]}")
        return
    supported = core.query_model(ov_model, "CPU")
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() not in ("Parameter", "Result", "Constant") and op.get_friendly_name() not in supported:
            yield Finding("error", "openvino", op.get_friendly_name(), op.get_type_name(),
                          "not supported by OpenVINO's CPU plugin")


def default_targets(path: Path, sidecar: dict[str, Any] | None) -> list[str]:
    """What an artifact is for: its sidecar's backend/target, else every target (the FP32 export)."""
    meta = sidecar or {}
    for key in ("target", "provider", "backend"):
        value = meta.get(key)
        if value == "cpu":
            return ["onnxruntime"]
        if value in TARGETS:
            return [value]
    return list(TARGETS)


def check_model(model: onnx.ModelProto, targets: Iterable[str], *, path: Path | None = None,
                tensorrt_major: int | None = None) -> list[Finding]:
    """Findings for an in-memory model; the library-backed targets need ``path`` (the file on disk)."""
    g = _Graph(model)
    findings: list[Finding] = []
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        findings.append(Finding("error", "onnx", "model", "", f"ONNX checker: {first_line(exc)[:200]}"))
    runners: dict[str, Callable[[], Iterable[Finding]]] = {
        "tensorrt": lambda: _tensorrt(g, tensorrt_major),
        "onnxruntime": lambda: _onnxruntime(path) if path else [],
        "openvino": lambda: _openvino(path, model) if path else [],
    }
    for target in targets:
        if target not in runners:
            raise InputError(f"unknown check target {target!r}; use one of {', '.join(TARGETS)}")
        findings.extend(_contract(g, target))
        findings.extend(runners[target]())
    return findings


def check_artifact(path: Path, targets: list[str] | None = None, tensorrt_major: int | None = None) -> CheckReport:
    """Lint the ONNX at ``path`` for ``targets`` (default: what its sidecar says it is for)."""
    if not path.is_file():
        raise InputError(f"not found: {path}; check an exported .onnx or a built ONNX engine")
    if path.suffix.lower() in (".plan", ".engine", ".trt"):
        raise InputError(f"{path.name} is a TensorRT plan, which only TensorRT can read; check the ONNX it was "
                         "built from (occo-deploy build --backend tensorrt --onnx-only writes it)")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise InputError(f"{path} is not an ONNX file ({type(exc).__name__})") from exc
    sidecar = read_sidecar(path)
    chosen = targets or default_targets(path, sidecar)
    notes: list[str] = []
    if "openvino" in chosen and targets is None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            chosen = [t for t in chosen if t != "openvino"]
            notes.append("openvino not installed: its check skipped (pip install 'occo-deploy[openvino]')")
    if "tensorrt" in chosen:
        matrix = tensorrt_matrix()
        notes.append(f"TensorRT rules: onnx-tensorrt operator matrix of TensorRT {matrix['tensorrt']} "
                     f"({matrix['source']}); opset {'-'.join(map(str, matrix['opset']))} on 10.x, "
                     f"{'-'.join(map(str, matrix['opset_by_major']['11']))} on 11.x")
    findings = check_model(model, chosen, path=path, tensorrt_major=tensorrt_major)
    return CheckReport(path, chosen, findings, notes)
