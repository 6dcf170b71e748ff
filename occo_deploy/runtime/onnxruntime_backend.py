"""ONNX Runtime backend: exported ONNX files and ONNX Runtime engines (precision ONNX + sidecar)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.contract import FUSED, INFRARED, VISIBLE, verify_artifact
from occo_deploy.errors import EngineError, first_line
from occo_deploy.runtime.backend import Backend

_PROVIDERS = {"cpu": "CPUExecutionProvider"}
_EXPECTED = {VISIBLE: ("tensor(uint8)", 4), INFRARED: ("tensor(uint8)", 3)}


#: Batches of more pixels run on a second session without ONNX Runtime's CPU memory arena. The arena
#: keeps freed blocks and grows by powers of two: 3840x2160 FP32 passed 19 GB with it and peaked at
#: 11.2 GB without. Below this it stays on: without it, 1920x1080 ran 1.7x slower (fresh pages each
#: op) for 16% less memory. 4.2 MP: 2560x1600 and up.
LOW_MEMORY_PIXELS = 4_000_000


def open_session(artifact: Path, sidecar: dict[str, Any] | None, providers: list[Any], threads: int | None,
                 emulate_qdq: bool = False, arena: bool = True) -> Any:
    """An ONNX Runtime session for an occo-deploy model, or one line saying why not.

    Checks the file against its sidecar's hash first (a changed file must not run under old claims)
    and the I/O contract after. ``emulate_qdq`` runs Q/DQ pairs as the float arithmetic the graph
    states (quantize, round, clip, dequantize) instead of fusing them into INT8 kernels: slower, but
    what TensorRT's INT8 computes, on any CPU (ONNX Runtime's kernels saturate on CPUs without VNNI).
    """
    import onnxruntime as ort  # core dependency; imported here so importing occo_deploy stays light

    verify_artifact(artifact, sidecar)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if emulate_qdq:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.enable_cpu_mem_arena = arena
    options.log_severity_level = 3  # warnings about unused initializers are noise for users
    try:
        session = ort.InferenceSession(str(artifact), options, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise EngineError(f"ONNX Runtime cannot load {artifact}: {first_line(exc)[:200]}") from exc
    inputs = {i.name: (i.type, len(i.shape)) for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if inputs != _EXPECTED or FUSED not in outputs:
        got = ", ".join(f"{k} {t} rank {r}" for k, (t, r) in inputs.items())
        raise EngineError(
            f"{artifact} is not an occo-deploy model (inputs: {got}); "
            "export one with: occo-deploy export CHECKPOINT"
        )
    return session


def check_int8_scheme(sidecar: dict[str, Any] | None) -> None:
    """Refuse an INT8 engine with 8-bit u8s8 weights on a CPU where ONNX Runtime's kernels saturate."""
    from occo_deploy.runtime.cpu import cpu_model, int8_saturates

    if ((sidecar or {}).get("calibration") or {}).get("scheme") == "u8s8" and int8_saturates():
        raise EngineError(
            f"this INT8 engine has 8-bit u8s8 weights, which ONNX Runtime's INT8 kernels saturate on this CPU "
            f"({cpu_model()}, no VNNI): its frames would be wrong by tens of grey levels; rebuild it here with "
            "occo-deploy build --int8 (7-bit weights), or use --backend openvino"
        )


def reference_backend(artifact: Path) -> OnnxRuntimeBackend:
    """ONNX Runtime on the CPU with Q/DQ emulated: what a precision ONNX states, on any CPU (the gates' yardstick)."""
    return OnnxRuntimeBackend(artifact, None, "cpu", None, {"emulate_qdq": True})


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    concurrent_runs = 2  # InferenceSession.run is thread-safe: two threads' batches overlap

    def __init__(self, artifact: Path, sidecar: dict[str, Any] | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        super().__init__(artifact, sidecar, provider, threads, options)
        import onnxruntime as ort

        ep = _PROVIDERS.get(provider)
        if ep is None or ep not in ort.get_available_providers():
            raise EngineError(
                f"ONNX Runtime here has no '{provider}' provider (available: "
                f"{', '.join(ort.get_available_providers())}); install the matching onnxruntime package"
            )
        check_int8_scheme(sidecar)
        # An ONNX made for another backend (build --onnx-only) runs as that backend computes it.
        emulate = bool(self.options.get("emulate_qdq", (sidecar or {}).get("target")))
        self._open = lambda arena: open_session(artifact, sidecar, [ep], threads, emulate_qdq=emulate, arena=arena)
        self._session = self._open(True)
        self._large: Any = None  # the arena-less session, opened at the first large batch
        self._lock = threading.Lock()
        self._ort_version = ort.__version__

    def run(self, visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
        session = self._session
        if infrared.size > LOW_MEMORY_PIXELS:
            with self._lock:
                if self._large is None:
                    self._large = self._open(False)
            session = self._large
        return session.run([FUSED], {VISIBLE: visible, INFRARED: infrared})[0]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "onnxruntime": self._ort_version,
                "precision": (self.sidecar or {}).get("precision", "unknown")}

    def close(self) -> None:
        super().close()
        self._session = self._large = None
