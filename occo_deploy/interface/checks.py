"""What a backend's ``check`` rules read and return: the graph view, the input, the finding.

The types sit below every backend module (which declares its rules with them) and below
``engines.check`` (which runs the rules of the targets asked for and reports). onnx is imported
only when a model is looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

#: ONNX element types (``TensorProto`` values) under the names onnx-tensorrt's matrix uses.
TYPE_NAMES = {
    1: "FP32", 10: "FP16", 16: "BF16", 11: "DOUBLE", 6: "INT32", 7: "INT64", 3: "INT8", 2: "UINT8", 9: "BOOL",
    22: "INT4", 17: "FP8", 23: "FP4",
}


def type_name(dtype: int) -> str:
    """An ONNX element type as onnx-tensorrt names it ("UINT8"), or its number."""
    return TYPE_NAMES.get(dtype, str(dtype))


@dataclass(frozen=True)
class Finding:
    """One finding: ``error`` means the target refuses the graph, ``warning`` that it may run worse,
    ``info`` what it will run (TensorRT's work by precision, say)."""

    level: str
    target: str
    node: str  # node name, or the tensor / "model" a graph-level rule is about
    op: str
    message: str

    def line(self) -> str:
        where = f"{self.node} ({self.op})" if self.op else self.node
        return f"{self.level}: [{self.target}] {where}: {self.message}"


class Graph:
    """What the rules ask of a model: producers, consumers, constants and element types."""

    def __init__(self, model: onnx.ModelProto) -> None:
        import onnx

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
        from onnx import numpy_helper

        tensor = self.constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def opset(self) -> int:
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)


@dataclass(frozen=True)
class CheckInput:
    """What a backend's rules get: the model, its graph view, the file (for library-backed checks;
    None for a model in memory) and the check options given, each one its spec's ``check_options``
    declares (TensorRT's ``trt_major``)."""

    model: onnx.ModelProto
    graph: Graph
    path: Path | None
    options: Mapping[str, Any] = field(default_factory=dict)


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """A node attribute's value (strings decoded), or ``default``."""
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default
