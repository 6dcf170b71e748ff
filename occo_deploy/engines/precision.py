"""Precision lives in the ONNX: FP32 -> mixed FP16, FP32 -> INT8 Q/DQ. ONNX in, ONNX out.

The same artifact is checked with ONNX Runtime on any machine and built by TensorRT on a GPU
(TensorRT 11 builds strongly typed networks only, so the precision must be in the graph).

Which nodes stay FP32 is read from the export metadata (``pkg.torch.onnx.*`` node properties that
torch.onnx's dynamo exporter writes): everything outside the network (uint8 I/O, colour conversion,
min-max, truncation), the channel LayerNorms, the attention contexts (sums over every pixel exceed
the FP16 range), and every reduction and softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from occo_deploy.calibration.ranges import QUANTIZED_OPS, Ranges
from occo_deploy.errors import EngineError

_FP32_CLASSES = ("ChannelLayerNorm", "AttentionContext")
_FP32_OPS = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "Softmax", "LayerNormalization",
             "BatchNormalization", "Resize", "Sqrt", "Reciprocal", "Pow", "Div"}
_NET_SCOPE = "'net'"  # FusionPipeline.net: the network itself, inside the I/O pipeline

@dataclass(frozen=True)
class Scheme:
    """An INT8 Q/DQ scheme. Weights are always INT8, symmetric, per output channel."""

    activations: str  # ONNX Runtime QuantType name
    symmetric: bool
    #: Biases as INT32 behind a DequantizeLinear (ONNX Runtime's default), or kept in float.
    quantize_bias: bool
    #: 7-bit weights (ONNX Runtime's ``reduce_range``), so u8 x s8 pair sums fit int16 on CPUs
    #: without VNNI (see ``runtime.cpu.int8_saturates``).
    reduce_range: bool = False

    def describe_weights(self) -> str:
        return f"int8 symmetric per channel{', 7-bit (reduce_range)' if self.reduce_range else ''}"


SCHEMES = {
    # TensorRT accepts symmetric INT8 Q/DQ only, and its IDequantizeLayer takes INT8/FP8/INT4/FP4
    # inputs, not INT32 (onnx/onnx-tensorrt#850): biases stay float and TensorRT fuses them itself.
    "s8s8": Scheme("QInt8", True, quantize_bias=False),
    # ONNX Runtime on x86: u8 activations x s8 weights runs the VNNI kernels (measured ~1.5x faster
    # than FP32 on this project's CPU at 640x480; symmetric s8 activations gained far less).
    "u8s8": Scheme("QUInt8", False, quantize_bias=True),
    # The same on x86 CPUs without VNNI, where 8-bit weights saturate ONNX Runtime's kernels.
    "u8s8_7bit": Scheme("QUInt8", False, quantize_bias=True, reduce_range=True),
}


def _meta(node: onnx.NodeProto) -> dict[str, str]:
    return {p.key: p.value for p in node.metadata_props}


#: Operators the lean FP16 variant moves out of the FP32 islands: per-channel affine (BatchNorm),
#: bilinear upsampling and max-pooling stay in range and round no worse than a convolution, and
#: each island costs two full-resolution Casts. A GPU A/B candidate (benchmarks/gpu_ort_cuda.py).
FP16_LEAN_OPS = frozenset({"BatchNormalization", "Resize", "ReduceMax"})


def fp32_nodes(model: onnx.ModelProto, fp16_ops: frozenset[str] = frozenset()) -> list[str]:
    """Names of the nodes that must keep FP32 in a mixed-precision build (``fp16_ops`` in the
    network may go to FP16 anyway)."""
    metas = [_meta(n) for n in model.graph.node]
    if not any("pkg.torch.onnx.name_scopes" in m for m in metas):
        raise EngineError("this ONNX carries no export metadata, so its FP32 islands cannot be found; "
                          "re-export it with: occo-deploy export CHECKPOINT")
    keep = []
    for node, meta in zip(model.graph.node, metas):
        scopes = meta.get("pkg.torch.onnx.name_scopes", "")
        classes = meta.get("pkg.torch.onnx.class_hierarchy", "")
        if (_NET_SCOPE not in scopes or any(c in classes for c in _FP32_CLASSES)
                or node.op_type in _FP32_OPS - fp16_ops):
            keep.append(node.name)
    return keep


def to_fp16(model: onnx.ModelProto, fp16_ops: frozenset[str] = frozenset()) -> onnx.ModelProto:
    """Mixed precision: FP16 compute with FP32 islands (``fp32_nodes``), uint8 I/O unchanged.

    ONNX Runtime's converter wraps *each* kept node in casts, so a tensor passing from one FP32 node
    to the next makes an FP32 -> FP16 -> FP32 round trip (a 300 000-term attention sum would become
    inf on the way), and it appends the new casts at the end of the node list. We remove the round
    trips and restore topological order, which TensorRT's parser requires.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    keep = fp32_nodes(model, fp16_ops)
    mixed = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep)
    _drop_round_trips(mixed, set(keep))
    _toposort(mixed.graph)
    del mixed.graph.value_info[:]  # the converter's are partly stale; recomputed from the graph
    mixed = onnx.shape_inference.infer_shapes(mixed)
    onnx.checker.check_model(mixed)
    return mixed


def _cast_to(node: onnx.NodeProto) -> int | None:
    if node.op_type != "Cast":
        return None
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _drop_round_trips(model: onnx.ModelProto, fp32: set[str]) -> None:
    """Cast(->FP16) feeding Cast(->FP32) on an FP32 tensor, and Cast(->FP32) of an FP32 constant:
    connect the FP32 tensor straight through."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    removed: set[int] = set()
    fp32_constants = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    for down in graph.node:
        if _cast_to(down) != onnx.TensorProto.FLOAT:
            continue
        if down.input[0] in fp32_constants and down.output[0] not in outputs:  # FP32 -> FP32: identity
            for user in consumers.get(down.output[0], []):
                user.input[:] = [down.input[0] if i == down.output[0] else i for i in user.input]
            removed.add(id(down))
            continue
        up = producer.get(down.input[0])
        if up is None or _cast_to(up) != onnx.TensorProto.FLOAT16:
            continue
        source = producer.get(up.input[0])
        if source is None or not (source.name in fp32 or _cast_to(source) == onnx.TensorProto.FLOAT):
            continue  # only FP32 tensors may skip the FP16 hop
        for user in consumers.get(down.output[0], []):
            user.input[:] = [up.input[0] if i == down.output[0] else i for i in user.input]
        if down.output[0] in outputs:
            continue
        removed.add(id(down))
        if all(id(u) in removed for u in consumers.get(up.output[0], [])) and up.output[0] not in outputs:
            removed.add(id(up))
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)


def _toposort(graph: onnx.GraphProto) -> None:
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise EngineError("mixed-precision graph has a cycle or a dangling input; report this")
        for node in ready:
            known.update(node.output)
        ordered.extend(ready)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)


#: Module scopes whose products stay FP32 in INT8 builds. ``net.final`` makes the raw fused Y that
#: the per-image min-max stretches to the full range, so its quantization error is amplified on
#: low-contrast frames: in FP32 the worst of 10 MSRS frames went from 38.4 to 45.3 dB against the
#: FP32 ONNX, for a 32 -> 1 channel convolution (under 1% of the network's arithmetic).
INT8_FP32_SCOPES = ("'net.final'",)


def quantized_nodes(model: onnx.ModelProto) -> list[str]:
    """The network's convolutions (``QUANTIZED_OPS``) but ``INT8_FP32_SCOPES`` (the I/O pipeline has none)."""
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS
            and not any(s in _meta(n).get("pkg.torch.onnx.name_scopes", "") for s in INT8_FP32_SCOPES)]


def _check_constant_weights(model: onnx.ModelProto) -> None:
    """Convolution weights must be initializers: the quantizer takes computed ones for activations
    (per-tensor, calibrated) and OpenVINO then runs those convolutions in FP32."""
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    computed = [n.name for n in model.graph.node if n.op_type == "Conv" and n.input[1] not in constants]
    if computed:
        raise EngineError(f"{len(computed)} convolutions of this ONNX compute their weights at run time "
                          f"(first: {computed[0]}), so INT8 would quantize them as activations; re-export "
                          "it with this version: occo-deploy export CHECKPOINT --force")


def to_int8(model_path: Path, ranges: Ranges, scheme: str) -> onnx.ModelProto:
    """Q/DQ (explicit quantization) with the given activation ranges; per-channel INT8 weights."""
    import numpy as np
    from onnxruntime.quantization import QDQQuantizer, QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    spec = SCHEMES[scheme]
    model = load_model_with_shape_infer(model_path)
    _check_constant_weights(model)
    tensors = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()
    })
    options: dict[str, Any] = {"ActivationSymmetric": spec.symmetric, "WeightSymmetric": True,
                               "QuantizeBias": spec.quantize_bias}
    quantizer = QDQQuantizer(model, True, spec.reduce_range, QuantType.QInt8, getattr(QuantType, spec.activations),
                             tensors, quantized_nodes(model), [], list(QUANTIZED_OPS), options)
    quantizer.quantize_model()
    quantized = quantizer.model.model
    # The quantizer appends some Q/DQ pairs out of order; ONNX Runtime does not mind, TensorRT's
    # parser and the ONNX checker do.
    _toposort(quantized.graph)
    return quantized
