"""ONNX Runtime engines: the precision ONNX, graph-optimized offline for the CPU provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from occo_deploy.engines.builders import BuildOptions, EngineBuilder
from occo_deploy.errors import BuildError
from occo_deploy.runtime.backend import Backend


class OnnxRuntimeBuilder(EngineBuilder):
    backend = "onnxruntime"
    suffix = ".onnx"
    int8_scheme = "u8s8"
    fixed_shapes = False

    def __init__(self) -> None:
        from occo_deploy.runtime.cpu import int8_saturates

        # The engine is for this machine: 7-bit weights where 8-bit ones saturate ONNX Runtime's kernels.
        self.int8_scheme = "u8s8_7bit" if int8_saturates() else "u8s8"

    @classmethod
    def unavailable(cls) -> str | None:
        return None  # a core dependency

    def precision_input(self, precision: str, fp32: Path, fp16: Path | None, int8: Path | None) -> Path:
        return {"fp32": fp32, "fp16": fp16, "int8": int8}[precision]  # type: ignore[return-value]

    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> dict[str, Any]:
        import onnxruntime as ort

        so = ort.SessionOptions()
        # EXTENDED: constant folding, Q/DQ and operator fusions that any x86 CPU runs. The layout
        # (NCHWc) level is hardware specific; it is applied when the engine is loaded, not saved.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        try:
            ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT's own exception types
            raise BuildError(f"ONNX Runtime cannot optimize the {options.precision} model: "
                             f"{str(exc).splitlines()[0][:200]}") from exc
        if not out.is_file() or out.stat().st_size == 0:
            raise BuildError("ONNX Runtime wrote no optimized model")
        return {"provider": "cpu", "onnxruntime": ort.__version__,
                "graph_optimization": "extended (saved); layout optimizations at load"}

    def runner(self, engine: Path, sidecar: dict[str, Any] | None) -> Backend:
        from occo_deploy.runtime.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(engine, None, "cpu", None)
