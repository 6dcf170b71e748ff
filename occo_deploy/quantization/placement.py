"""Where Q/DQ goes: which ops are quantized, which tensors are calibrated, and TensorRT's placement.

TensorRT builds an INT8 layer from Q/DQ it finds around an op, and must honour every Q/DQ pair it
is given: a pair on a convolution's output keeps ReLU, Sigmoid or a residual Add from running as the
convolution's epilogue, and quantizes the value twice. NVIDIA's TensorRT Model Optimizer (ModelOpt)
is the reference for the placement TensorRT wants, and ``tensorrt_qdq`` follows its rules:

* Q/DQ on the inputs of quantized ops only (the convolutions; the matrix products on request),
  weights as INT8 initializers behind a per-output-channel DequantizeLinear, biases in float;
* never on a weighted op's output unless a quantized op reads it, and then shared by every quantized
  reader (one pair per tensor), while float readers keep reading the float tensor;
* a residual Add (a convolution's output plus a shortcut) quantized on the shortcut, so TensorRT runs
  the Add, and the ReLU after it, as the convolution's epilogue; when both inputs are convolutions',
  the shorter branch counts as the shortcut, as ModelOpt decides it;
* nothing on pooling, Resize, Concat or reshapes: TensorRT moves Q/DQ across them itself.

OpenVINO's INT8 engines take this placement too, with u8 activations (it measured faster and more
faithful there); ONNX Runtime's keep its own quantizer's placement, which its INT8 kernels need (see
``precision.SCHEMES``). The activation ranges for all of them come from ``calibration_tensors``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from occo_deploy.contract import frame_feeds
from occo_deploy.errors import EngineError

if TYPE_CHECKING:
    import onnx

#: Node types whose inputs get Q/DQ: the convolutions, 99% of the arithmetic. The matrix products
#: are the attention's (two activations, a few % of the arithmetic) and the channel gates' tiny MLP:
#: quantized, they cost fidelity (worst MSRS frame 44.3 vs 46.2 dB on OpenVINO) and gained nothing
#: (OpenVINO ran the u8 x u8 products in FP32, and their Q/DQ pinned layout reorders around them).
QUANTIZED_OPS = ("Conv",)
#: The matrix products TensorRT's placement may quantize too (``tensorrt_qdq(matmul=True)``).
MATRIX_OPS = ("MatMul", "Gemm")
#: Module scopes whose products stay FP32 in INT8 builds. ``net.final`` makes the raw fused Y that
#: the per-image min-max stretches to the full range, so its quantization error is amplified on
#: low-contrast frames: in FP32 the worst of 10 MSRS frames went from 38.4 to 45.3 dB against the
#: FP32 ONNX, for a 32 -> 1 channel convolution (under 1% of the network's arithmetic).
INT8_FP32_SCOPES = ("'net.final'",)
_NET_SCOPE = "'net'"  # FusionPipeline.net: the network itself, inside the I/O pipeline
#: INT8's symmetric range as TensorRT and ModelOpt use it for weights and activations.
INT8_MAX = 127


def _scopes(node: onnx.NodeProto) -> str:
    return next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")


class GraphView:
    """Producers, consumers and constants of a model's graph, for placement decisions."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.nodes = list(graph.node)
        self.by_name = {n.name: n for n in self.nodes}
        self.initializers = {i.name: i for i in graph.initializer}
        self.constants = set(self.initializers) | {o for n in self.nodes if n.op_type == "Constant" for o in n.output}
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)

    def activations(self, node: onnx.NodeProto) -> list[str]:
        """The node's non-constant inputs (what a Q/DQ may sit on)."""
        return [i for i in node.input if i and i not in self.constants]

    def distances_up(self, tensor: str) -> dict[str, int]:
        """Every node upstream of ``tensor``, with its distance in nodes (the producer is 0)."""
        seen: dict[str, int] = {}
        start = self.producer.get(tensor)
        todo = deque([(start, 0)] if start is not None else [])
        while todo:
            node, d = todo.popleft()
            if node.name in seen:
                continue
            seen[node.name] = d
            for name in self.activations(node):
                up = self.producer.get(name)
                if up is not None and up.name not in seen:
                    todo.append((up, d + 1))
        return seen


def quantized_nodes(model: onnx.ModelProto, ops: Iterable[str] = QUANTIZED_OPS) -> list[str]:
    """The network's nodes of ``ops`` but ``INT8_FP32_SCOPES`` (the I/O pipeline has none), found by
    the module scopes torch.onnx's exporter writes on every node."""
    if not any(_scopes(n) for n in model.graph.node):
        raise EngineError("this ONNX carries no export metadata, so the network's layers cannot be told apart "
                          "from its I/O; re-export it with: occo-deploy export CHECKPOINT")
    wanted = set(ops)
    return [n.name for n in model.graph.node if n.op_type in wanted and _NET_SCOPE in _scopes(n)
            and not any(s in _scopes(n) for s in INT8_FP32_SCOPES)]


def residual_shortcuts(view: GraphView, quantized: set[str]) -> dict[str, str]:
    """Add node -> the input to quantize, for each residual Add: one input made by a quantized
    convolution (the branch TensorRT fuses the Add into), the other the shortcut. When both inputs are
    quantized convolutions', the one on the shorter path from their lowest common ancestor is the
    shortcut (ModelOpt's rule); when the convolution is itself an ancestor of the other input, the
    Add is not a residual one (nothing to fuse)."""
    shortcuts: dict[str, str] = {}
    for node in view.nodes:
        if node.op_type != "Add" or len(view.activations(node)) != 2:
            continue
        a, b = node.input[0], node.input[1]
        conv = [x for x in (a, b) if (p := view.producer.get(x)) is not None and p.name in quantized
                and p.op_type == "Conv"]
        if not conv:
            continue
        up_a, up_b = view.distances_up(a), view.distances_up(b)
        if len(conv) == 1:
            fused = conv[0]
            other = b if fused == a else a
            if view.producer[fused].name in (up_b if fused == a else up_a):
                continue  # the convolution feeds the other branch too: not a shortcut
            shortcuts[node.name] = other
            continue
        common = set(up_a) & set(up_b)
        if not common:
            continue
        lca = min(common, key=lambda n: up_a[n] + up_b[n])
        shortcuts[node.name] = a if up_a[lca] < up_b[lca] else b
    return shortcuts


def calibration_tensors(model: onnx.ModelProto) -> list[str]:
    """Every activation a placement may quantize: into and out of the convolutions (ONNX Runtime's
    quantizer asks for both), into the matrix products, and the residual Adds' shortcuts."""
    view = GraphView(model)
    names: list[str] = []
    for node in view.nodes:
        if node.op_type in QUANTIZED_OPS:
            names += [t for t in (node.input[0], node.output[0]) if t not in view.constants]
        elif node.op_type in MATRIX_OPS:
            names += view.activations(node)[:2]
    names += residual_shortcuts(view, set(quantized_nodes(model))).values()
    return list(dict.fromkeys(names))


@dataclass
class Placement:
    """What ``tensorrt_qdq`` quantized: node names, and tensor -> the DQ output its readers now read."""

    nodes: list[str]
    activations: dict[str, str]
    shortcuts: dict[str, str]


def _symmetric_scale(low: float, high: float) -> np.float32:
    """Scale of a symmetric INT8 range; a tensor that is always zero gets 1 (any positive scale is
    exact for it, and TensorRT's parser refuses scales that are not positive)."""
    amax = max(abs(low), abs(high))
    return np.float32(amax / INT8_MAX if amax > 0 else 1.0)


def weight_axis(node: onnx.NodeProto, index: int, rank: int) -> int | None:
    """The output-channel axis of input ``index`` of ``node``, a weight of ``rank`` dimensions, where
    TensorRT takes per-channel scales: Conv's K of [K, C, k...], ConvTranspose's axis 1, a MatMul's
    columns as its right operand and rows as its left, Gemm's by transA/transB; None for other ops."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "MatMul":
        return rank - 1 if index == 1 else rank - 2
    if node.op_type == "Gemm":
        transposed = next((a.i for a in node.attribute if a.name == ("transB" if index == 1 else "transA")), 0)
        return (0 if transposed else 1) if index == 1 else (1 if transposed else 0)
    return None


def _activation_qparams(low: float, high: float, unsigned: bool) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point of an activation: symmetric INT8 (TensorRT's), or asymmetric UINT8 over
    the range widened to hold 0 (the CPU engines', as ONNX Runtime's quantizer computes it)."""
    if not unsigned:
        return np.array(_symmetric_scale(low, high), np.float32), np.array(0, np.int8)
    low, high = min(low, 0.0), max(high, 0.0)
    scale = np.float32((high - low) / 255 if high > low else 1.0)
    return np.array(scale, np.float32), np.array(np.clip(round(-low / scale), 0, 255), np.uint8)


def tensorrt_qdq(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], *, matmul: bool = False,
                 unsigned: bool = False) -> tuple[onnx.ModelProto, Placement]:
    """The FP32 graph with Q/DQ where TensorRT fuses it (see the module's docstring): activations per
    tensor from ``ranges``, INT8 symmetric (``unsigned``: UINT8 asymmetric, for OpenVINO, where this
    placement measured better than the quantizer's), weights INT8 per output channel."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    view = GraphView(out)
    ops = QUANTIZED_OPS + (MATRIX_OPS if matmul else ())
    quantized = quantized_nodes(out, ops)
    quantized_set = set(quantized)
    shortcuts = residual_shortcuts(view, quantized_set)
    # (node, input index) edges that read a quantized activation, and weights to quantize: a
    # convolution's data and weight, a matrix product's two operands (Gemm's C, the bias, stays float).
    edges: list[tuple[onnx.NodeProto, int]] = []
    weights: list[tuple[onnx.NodeProto, int]] = []
    for name in quantized:
        node = view.by_name[name]
        for k in (0, 1):
            if node.input[k] in view.initializers:
                weights.append((node, k))
            elif node.input[k] not in view.constants:
                edges.append((node, k))
    for add_name, tensor in shortcuts.items():
        add = view.by_name[add_name]
        edges.append((add, list(add.input).index(tensor)))
    missing = sorted({n.input[k] for n, k in edges} - set(ranges))
    if missing:
        raise EngineError(f"no calibration range for {len(missing)} tensor(s) TensorRT's placement quantizes "
                          f"(first: {missing[0]}); calibrate again (delete the range cache)")

    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    dq_of: dict[str, str] = {}
    for node, k in edges:
        tensor = node.input[k]
        if tensor not in dq_of:
            scale, zero = f"{tensor}_scale", f"{tensor}_zero_point"
            scale_value, zero_value = _activation_qparams(*ranges[tensor], unsigned)
            new_inits += [numpy_helper.from_array(scale_value, scale), numpy_helper.from_array(zero_value, zero)]
            quantized_name, dequantized = f"{tensor}_QuantizeLinear_Output", f"{tensor}_DequantizeLinear_Output"
            pair = [helper.make_node("QuantizeLinear", [tensor, scale, zero], [quantized_name],
                                     name=f"{tensor}_QuantizeLinear"),
                    helper.make_node("DequantizeLinear", [quantized_name, scale, zero], [dequantized],
                                     name=f"{tensor}_DequantizeLinear")]
            for qdq in pair:  # the reader's module scope: a later mixed-precision pass treats them alike
                qdq.metadata_props.extend(node.metadata_props)
            new_nodes += pair
            dq_of[tensor] = dequantized
        node.input[k] = dq_of[tensor]
    done_weights: dict[str, str] = {}
    for node, k in weights:
        name = node.input[k]
        if name in done_weights:
            node.input[k] = done_weights[name]
            continue
        w = numpy_helper.to_array(view.initializers[name]).astype(np.float32)
        axis = weight_axis(node, k, w.ndim)
        assert axis is not None  # the quantized ops are weighted ops
        amax = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != axis))
        w_scale = np.where(amax > 0, amax / INT8_MAX, 1.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        w_int8 = np.clip(np.round(w / w_scale.reshape(shape)), -INT8_MAX, INT8_MAX).astype(np.int8)
        new_inits += [numpy_helper.from_array(w_int8, f"{name}_quantized"),
                      numpy_helper.from_array(w_scale, f"{name}_scale"),
                      numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), f"{name}_zero_point")]
        dequantized = f"{name}_DequantizeLinear_Output"
        weight_dq = helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"],
                                     [dequantized], name=f"{name}_DequantizeLinear", axis=axis)
        weight_dq.metadata_props.extend(node.metadata_props)
        new_nodes.append(weight_dq)
        done_weights[name] = dequantized
        node.input[k] = dequantized
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    unused = {n for n in done_weights} - {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    toposort(graph)
    del graph.value_info[:]
    out = onnx.shape_inference.infer_shapes(out)
    onnx.checker.check_model(out)
    return out, Placement(quantized, dq_of, shortcuts)


def toposort(graph: onnx.GraphProto) -> None:
    """Order the nodes so that each comes after what it reads (TensorRT's parser requires it)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise EngineError("graph has a cycle or a dangling input after a precision transform; report this")
        for node in ready:
            known.update(node.output)
        ordered.extend(ready)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)


#: Ops whose work ``report`` counts: where the arithmetic is, and what INT8 can take.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
#: Frame size ``report`` measures the work at. Every product of this network scales with the pixel
#: count (convolutions, and the attention's C x HW x C products), so the shares hold for any size.
REPORT_HW = (120, 160)


@dataclass
class PlacementReport:
    """What a TensorRT plan built from an ONNX will run: the weighted ops' work by precision, and the
    Q/DQ pairs that keep a convolution from running its epilogue."""

    work: dict[str, float]  # precision -> share of the weighted ops' multiply-adds
    ops: dict[str, int]  # precision -> weighted ops
    fp32_ops: dict[str, int]  # op type -> weighted ops of that type left in FP32
    blocking: list[str]  # Q nodes on a weighted op's output that a float epilogue reads through its DQ
    conv_outputs_quantized: int  # convolution outputs followed by a Q (for a quantized reader, or not)

    def lines(self) -> list[str]:
        shares = ", ".join(f"{p.upper()} {100 * s:.1f}%" for p, s in self.work.items() if self.ops[p])
        blocking = f" (first: {self.blocking[0]})" if self.blocking else ""
        lines = [f"weighted ops' work: {shares}",
                 f"{self.conv_outputs_quantized} convolution outputs quantized, {len(self.blocking)} Q/DQ pairs "
                 f"blocking a fusion{blocking}"]
        if self.fp32_ops:
            kinds = ", ".join(f"{n} {op}" for op, n in sorted(self.fp32_ops.items(), key=lambda kv: -kv[1]))
            lines.append(f"weighted ops in FP32: {kinds}")
        return lines


def _reads_dq(view: GraphView, name: str) -> bool:
    producer = view.producer.get(name)
    return producer is not None and producer.op_type == "DequantizeLinear"


def report(model: onnx.ModelProto) -> PlacementReport:
    """``PlacementReport`` of a precision ONNX (ours or ModelOpt's), its work measured by running its
    weighted ops' shapes at ``REPORT_HW`` on ONNX Runtime."""
    import onnx

    view = GraphView(model)
    weighted = [n for n in view.nodes if n.op_type in WEIGHTED_OPS]
    shapes = _shapes(model, [t for n in weighted for t in (n.input[0], n.input[1], n.output[0])])
    types = {v.name: v.type.tensor_type.elem_type
             for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    work: dict[str, float] = {"int8": 0.0, "fp16": 0.0, "fp32": 0.0}
    ops = {p: 0 for p in work}
    fp32_ops: dict[str, int] = {}
    for node in weighted:
        if all(_reads_dq(view, i) for i in node.input[:2]):
            precision = "int8"
        elif types.get(node.output[0]) == onnx.TensorProto.FLOAT16:
            precision = "fp16"
        else:
            precision = "fp32"
            fp32_ops[node.op_type] = fp32_ops.get(node.op_type, 0) + 1
        work[precision] += _macs(node, shapes)
        ops[precision] += 1
    total = sum(work.values()) or 1.0
    blocking = []
    for q in view.nodes:
        src = view.producer.get(q.input[0]) if q.op_type == "QuantizeLinear" else None
        if src is None or src.op_type not in WEIGHTED_OPS:
            continue
        readers = [r for dq in view.consumers.get(q.output[0], []) for r in view.consumers.get(dq.output[0], [])]
        if any(r.op_type not in WEIGHTED_OPS and r.op_type != "Add" for r in readers):
            blocking.append(q.name)
    conv_q = sum(1 for n in view.nodes if n.op_type == "Conv"
                 and any(u.op_type == "QuantizeLinear" for u in view.consumers.get(n.output[0], [])))
    return PlacementReport({p: w / total for p, w in work.items()}, ops, fp32_ops, blocking, conv_q)


def _shapes(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of ``names`` when the model runs one zero frame of ``REPORT_HW``."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    wanted = [n for n in dict.fromkeys(names) if n and n not in outputs]
    constants = {i.name for i in probe.graph.initializer}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in wanted if n not in constants)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    h, w = REPORT_HW
    feeds = frame_feeds(np.zeros((1, h, w, 3), np.uint8), np.zeros((1, h, w), np.uint8),
                        [i.name for i in session.get_inputs()])
    fetched = [o.name for o in session.get_outputs()]
    shapes = {name: tuple(value.shape) for name, value in zip(fetched, session.run(fetched, feeds))}
    for init in model.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> float:
    """Multiply-adds of a weighted op from its input and output shapes."""
    out = shapes.get(node.output[0])
    if out is None:
        return 0.0
    if node.op_type in ("Conv", "ConvTranspose"):
        weight = shapes.get(node.input[1], ())
        per_output = float(np.prod(weight[1:])) if len(weight) > 1 else 1.0
        return float(np.prod(out)) * per_output
    a = shapes.get(node.input[0], ())
    if not a:
        return 0.0
    trans_a = node.op_type == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute)
    k = a[-2] if trans_a else a[-1]
    return float(np.prod(out)) * k
