"""``occo-deploy check``: lint an ONNX artifact against what its target backend accepts, without it.

Polygraphy's ``check lint`` idea for our graphs. Each backend brings its own rules in its spec
(``BackendSpec.check``, ``occo_deploy/backends/*.py``): TensorRT's are encoded from onnx-tensorrt and
checked on the ONNX it would parse, since TensorRT cannot run here; ONNX Runtime and OpenVINO ask the
library itself (a session is created; OpenVINO's ``query_model`` lists what its CPU plugin takes).
What is common lives here: the ONNX checker, the engine I/O contract every target checks, the graph
view the rules read, and the report. Findings name the node; errors mean the backend would refuse
the graph. onnx is imported only when a model is checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from occo_deploy import backends
from occo_deploy.contract import FUSED, INFRARED, VISIBLE, read_sidecar
from occo_deploy.errors import InputError, MissingDependencyError, first_line

if TYPE_CHECKING:
    import onnx

#: ONNX element types (``TensorProto`` values) under the names onnx-tensorrt's matrix uses.
TYPE_NAMES = {
    1: "FP32", 10: "FP16", 16: "BF16", 11: "DOUBLE", 6: "INT32", 7: "INT64", 3: "INT8", 2: "UINT8", 9: "BOOL",
    22: "INT4", 17: "FP8", 23: "FP4",
}
_UINT8 = 2
_IO_TYPES = {VISIBLE: (_UINT8, 4), INFRARED: (_UINT8, 3)}


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
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"artifact": str(self.artifact), "targets": self.targets, "passed": self.passed,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [f.__dict__ for f in self.findings], "notes": self.notes}


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
    None for a model in memory) and the TensorRT major to check for (None: every supported one)."""

    model: onnx.ModelProto
    graph: Graph
    path: Path | None
    tensorrt_major: int | None = None


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """A node attribute's value (strings decoded), or ``default``."""
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


# -- I/O contract (every target) ------------------------------------------------------------------
def _contract(g: Graph, target: str) -> Iterable[Finding]:
    for name, (dtype, rank) in _IO_TYPES.items():
        value = g.inputs.get(name)
        if value is None:
            yield Finding("error", target, name, "", "missing input: not an occo-deploy model (export one with "
                                                     "occo-deploy export CHECKPOINT)")
            continue
        t = value.type.tensor_type
        if t.elem_type != dtype or len(t.shape.dim) != rank:
            yield Finding("error", target, name, "", f"input is {type_name(t.elem_type)} rank "
                                                     f"{len(t.shape.dim)}; the contract is UINT8 rank {rank}")
    out = g.outputs.get(FUSED)
    if out is None or out.type.tensor_type.elem_type != _UINT8:
        yield Finding("error", target, FUSED, "", "output 'fused' (UINT8 N x H x W x 3) missing")


def targets() -> list[str]:
    """The backends that have rules to check, in the registry's order."""
    return [spec.name for spec in backends.specs() if spec.check is not None]


def default_targets(sidecar: dict[str, Any] | None) -> list[str]:
    """What an artifact is for: its sidecar's target (``--onnx-only``), backend or provider; else
    every target (the FP32 export)."""
    meta = sidecar or {}
    known = targets()
    for key in ("target", "backend"):
        if meta.get(key) in known:
            return [str(meta[key])]
    if meta.get("provider"):
        spec = backends.by_provider(str(meta["provider"]), strict=False)
        if spec is not None and spec.name in known:
            return [spec.name]
    return known


def check_model(model: onnx.ModelProto, chosen: Iterable[str], *, path: Path | None = None,
                tensorrt_major: int | None = None) -> list[Finding]:
    """Findings for a model; the library-backed targets need ``path`` (the file on disk)."""
    return _run(model, list(chosen), path, tensorrt_major, skip_missing=False)[0]


def _run(model: onnx.ModelProto, chosen: list[str], path: Path | None, tensorrt_major: int | None,
         skip_missing: bool) -> tuple[list[Finding], list[str], list[str]]:
    """(findings, targets checked, notes). With ``skip_missing`` a target whose library is not
    installed is left out and said so, instead of failing the whole check."""
    import onnx

    source = CheckInput(model, Graph(model), path, tensorrt_major)
    findings: list[Finding] = []
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        findings.append(Finding("error", "onnx", "model", "", f"ONNX checker: {first_line(exc)[:200]}"))
    checked: list[str] = []
    notes: list[str] = []
    for target in chosen:
        spec = backends.get(target, strict=False)
        if spec is None or spec.check is None:
            raise InputError(f"unknown check target {target!r}; use one of {', '.join(targets())}")
        try:
            found = list(spec.check(source))
        except MissingDependencyError as exc:
            if not skip_missing:
                raise
            notes.append(f"{target}'s check skipped: {exc}")
            continue
        findings.extend(_contract(source.graph, target))
        findings.extend(found)
        checked.append(target)
    return findings, checked, notes


def check_artifact(path: Path, chosen: list[str] | None = None, tensorrt_major: int | None = None) -> CheckReport:
    """Lint the ONNX at ``path`` for the ``chosen`` targets (default: what its sidecar says it is for,
    leaving out, and noting, a target whose library is not installed here)."""
    import onnx

    if not path.is_file():
        raise InputError(f"not found: {path}; check an exported .onnx or a built ONNX engine")
    spec = backends.for_suffix(path)
    if spec is not None and spec.reads != "onnx":
        raise InputError(f"{path.name} is a {spec.title} {spec.reads}, which only {spec.title} can read; check the "
                         f"ONNX it was built from (occo-deploy build --backend {spec.name} --onnx-only writes it)")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise InputError(f"{path} is not an ONNX file ({type(exc).__name__})") from exc
    picked = chosen or default_targets(read_sidecar(path))
    findings, checked, notes = _run(model, picked, path, tensorrt_major, skip_missing=chosen is None)
    for target in checked:
        about = backends.get(target).check_source
        if about is not None:
            notes.append(about())
    return CheckReport(path, checked, findings, notes)
