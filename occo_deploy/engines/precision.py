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

from occo_deploy.errors import EngineError
from occo_deploy.quantization.placement import QUANTIZED_OPS, quantized_nodes, tensorrt_qdq, toposort
from occo_deploy.quantization.ranges import Ranges

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
    #: Where the Q/DQ go: ``onnxruntime`` (its quantizer: inputs and outputs of every quantized op,
    #: which its INT8 kernels need) or ``tensorrt`` (``placement.tensorrt_qdq``: inputs only, residual
    #: shortcuts, as TensorRT fuses them).
    placement: str = "onnxruntime"

    def describe_weights(self) -> str:
        return f"int8 symmetric per channel{', 7-bit (reduce_range)' if self.reduce_range else ''}"


SCHEMES = {
    # TensorRT accepts symmetric INT8 Q/DQ only, and its IDequantizeLayer takes INT8/FP8/INT4/FP4
    # inputs, not INT32 (onnx/onnx-tensorrt#850): biases stay float and TensorRT fuses them itself.
    "s8s8": Scheme("QInt8", True, quantize_bias=False, placement="tensorrt"),
    # ONNX Runtime on x86: u8 activations x s8 weights runs the VNNI kernels (measured ~1.5x faster
    # than FP32 on this project's CPU at 640x480; symmetric s8 activations gained far less).
    "u8s8": Scheme("QUInt8", False, quantize_bias=True),
    # The same on x86 CPUs without VNNI, where 8-bit weights saturate ONNX Runtime's kernels.
    "u8s8_7bit": Scheme("QUInt8", False, quantize_bias=True, reduce_range=True),
    # OpenVINO: u8 activations with TensorRT's placement (no Q/DQ between a convolution and its
    # epilogue, float biases): 48.2 dB worst and 1.88x FP32, against 44.1 dB and 1.79x with the
    # quantizer's placement (benchmarks/cpu_placement.py, AMD EPYC Zen 3). ONNX Runtime ran it at
    # 0.90x FP32: its INT8 kernels need the Q/DQ on convolution outputs, so it keeps ``u8s8``.
    "u8s8_fused": Scheme("QUInt8", False, quantize_bias=False, placement="tensorrt"),
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
    toposort(mixed.graph)
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
    fp32_inputs = {i.name for i in graph.input if i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
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
        fp32_source = up.input[0] in fp32_inputs if source is None else \
            source.name in fp32 or _cast_to(source) == onnx.TensorProto.FLOAT
        if not fp32_source:
            continue  # only FP32 tensors may skip the FP16 hop
        for user in consumers.get(down.output[0], []):
            user.input[:] = [up.input[0] if i == down.output[0] else i for i in user.input]
        if down.output[0] in outputs:
            # A graph output (the steering's range) keeps its name: its Cast reads the FP32 tensor
            # straight (an FP32 -> FP32 Cast), not through FP16.
            down.input[0] = up.input[0]
        else:
            removed.add(id(down))
        readers = [u for u in consumers.get(up.output[0], []) if up.output[0] in u.input]
        if all(id(u) in removed for u in readers) and up.output[0] not in outputs:
            removed.add(id(up))
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)


#: Opset of an INT8 ONNX with a reduced-precision rest: QuantizeLinear takes FP16 input, and
#: DequantizeLinear gives FP16 output, from opset 19 (what else our graph uses reads the same in 19).
FP16_QDQ_OPSET = 19


def int8_with_fp16_rest(quantized: onnx.ModelProto) -> onnx.ModelProto:
    """A Q/DQ INT8 graph with everything not quantized in FP16 but the classes that need FP32.

    Measured on the held-out MSRS pairs against the FP32 export (benchmarks/README.md, "TensorRT
    INT8"): the reductions, BatchNorm and Resize lose nothing in FP16 (each within 0.1 dB of the FP32
    rest alone), so they go to FP16 here, unlike in FP16 builds. The attention contexts stay FP32:
    their gram products and logits reach 4.5e5 on real frames, past FP16's 65504. The channel
    LayerNorms stay FP32 too: a sum of squared activations, 0.3 dB worse alone in FP16, and the first
    to overflow on a brighter scene. The Q/DQ scales become FP16, so each INT8 layer's output is FP16.
    """
    model = onnx.ModelProto()
    model.CopyFrom(quantized)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, FP16_QDQ_OPSET)
    return to_fp16(model, frozenset(_FP32_OPS))


def int8_fp32_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes ``int8_with_fp16_rest`` keeps in FP32 (the I/O, the attention contexts, the LayerNorms)."""
    return fp32_nodes(model, frozenset(_FP32_OPS))


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


def to_int8(model_path: Path, ranges: Ranges, scheme: str | Scheme) -> onnx.ModelProto:
    """Q/DQ (explicit quantization) with the given activation ranges; per-channel INT8 weights.
    ``scheme`` names one of ``SCHEMES`` (a ``Scheme`` itself for a benchmark's variant)."""
    import numpy as np
    from onnxruntime.quantization import QDQQuantizer, QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    spec = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    if spec.placement == "tensorrt":
        fp32 = onnx.load(str(model_path))
        _check_constant_weights(fp32)
        return tensorrt_qdq(fp32, ranges, unsigned=not spec.symmetric)[0]
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
    toposort(quantized.graph)
    return quantized
