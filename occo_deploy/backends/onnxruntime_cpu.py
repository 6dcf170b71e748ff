"""ONNX Runtime on the CPU: the default backend. Runs the exported ONNX and the engines it builds.

Everything about it is here: the runner (sessions, the low-memory session for huge frames), the
builder (the precision ONNX, graph-optimized offline), its peak-memory lines and its ``check`` rule
(ONNX Runtime must load the graph). ONNX Runtime is a core dependency, imported when first used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from occo_deploy.contract import FUSED, INFRARED, RANGE, STRETCH, VISIBLE
from occo_deploy.errors import BuildError, EngineError, first_line
from occo_deploy.interface.checks import CheckInput, Finding
from occo_deploy.interface.spec import BackendSpec, BuildOptions, EngineBuilder, library_missing
from occo_deploy.runtime.backend import Backend
from occo_deploy.sidecar import Sidecar, verify_artifact

_EXECUTION_PROVIDER = "CPUExecutionProvider"
_EXPECTED = {VISIBLE: ("tensor(uint8)", 4), INFRARED: ("tensor(uint8)", 3)}
#: What an engine with the stretch's steering takes beyond ``_EXPECTED``.
_STEERED = {STRETCH: ("tensor(float)", 2)}


#: Batches of more pixels run on a second session without ONNX Runtime's CPU memory arena. The arena
#: keeps freed blocks and grows by powers of two: 3840x2160 FP32 passed 19 GB with it and peaked at
#: 11.2 GB without. Below this it stays on: without it, 1920x1080 ran 1.7x slower (fresh pages each
#: op) for 16% less memory. 4.2 MP: 2560x1600 and up.
LOW_MEMORY_PIXELS = 4_000_000


def open_session(artifact: Path, sidecar: Sidecar | None, providers: list[Any], threads: int | None,
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
    steered = inputs == {**_EXPECTED, **_STEERED} and RANGE in outputs
    if (inputs != _EXPECTED and not steered) or FUSED not in outputs:
        got = ", ".join(f"{k} {t} rank {r}" for k, (t, r) in inputs.items())
        raise EngineError(
            f"{artifact} is not an occo-deploy model (inputs: {got}); "
            "export one with: occo-deploy export CHECKPOINT"
        )
    return session


def steerable(session: Any) -> bool:
    """Whether a session's model takes the stretch's steering (``contract.STRETCH``)."""
    return any(i.name == STRETCH for i in session.get_inputs())


def check_int8_scheme(sidecar: Sidecar | None) -> None:
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
    run_options: ClassVar[Mapping[str, str]] = {"threads": "CPU threads for inference",
                   "emulate_qdq": "run Q/DQ as the float arithmetic the graph states (the gates' yardstick)"}
    concurrent_runs = 2  # InferenceSession.run is thread-safe: two threads' batches overlap

    def __init__(self, artifact: Path, sidecar: Sidecar | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        super().__init__(artifact, sidecar, provider, threads, options)
        import onnxruntime as ort

        ep = _EXECUTION_PROVIDER
        if ep not in ort.get_available_providers():
            raise EngineError(
                f"ONNX Runtime here has no {ep} (available: {', '.join(ort.get_available_providers())}); "
                "install the matching onnxruntime package"
            )
        check_int8_scheme(sidecar)
        # An ONNX made for another backend (build --onnx-only) runs as that backend computes it.
        self._emulate = bool(self.options.get("emulate_qdq", (sidecar or {}).get("target")))
        self._session = self._open(arena=True)
        self.steerable = steerable(self._session)
        self._large: Any = None  # the arena-less session, opened at the first large batch
        self._lock = threading.Lock()
        self._ort_version = ort.__version__

    def infer(self, visible: np.ndarray, infrared: np.ndarray, stretch: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        session = self._session
        if infrared.size > LOW_MEMORY_PIXELS:
            with self._lock:
                if self._large is None:
                    self._large = self._open(arena=False)
            session = self._large
        if stretch is None:
            return session.run([FUSED], {VISIBLE: visible, INFRARED: infrared})[0], None
        fused, ranges = session.run([FUSED, RANGE], {VISIBLE: visible, INFRARED: infrared, STRETCH: stretch})
        return fused, ranges

    def _open(self, arena: bool) -> Any:
        return open_session(self.artifact, self.sidecar, [_EXECUTION_PROVIDER], self.threads,
                            emulate_qdq=self._emulate, arena=arena)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "onnxruntime": self._ort_version,
                "precision": (self.sidecar or {}).get("precision", "unknown")}

    def close(self) -> None:
        super().close()
        self._session = self._large = None


# -- builder ---------------------------------------------------------------------------------------
#: Why FP16 engines exist for this backend at all: said before such a build.
CPU_FP16_NOTE = (
    "FP16 on ONNX Runtime's CPU provider is for checking the artifact TensorRT builds, not for speed: "
    "x86 CPUs have no FP16 arithmetic there, so ONNX Runtime casts to FP32 around most operators "
    "(slower than --fp32). For speed on a CPU: --backend openvino with --bf16 or --int8."
)


class OnnxRuntimeBuilder(EngineBuilder):
    """The precision ONNX, graph-optimized offline for the CPU provider."""

    suffix = ".onnx"
    int8_scheme = "u8s8"
    fixed_shapes = False

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        from occo_deploy.runtime.cpu import int8_saturates

        # The engine is for this machine: 7-bit weights where 8-bit ones saturate ONNX Runtime's kernels.
        self.int8_scheme = "u8s8_7bit" if int8_saturates() else "u8s8"

    def notes(self, precision: str) -> list[str]:
        if precision != "fp16":
            return []
        import importlib.util

        # Its own words, not the registry's: a backend module never imports the registry that loads it.
        missing = None if importlib.util.find_spec("openvino") else library_missing("openvino", "openvino")
        return [CPU_FP16_NOTE + (f" ({missing})" if missing else "")]

    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> Sidecar:
        import onnxruntime as ort

        so = ort.SessionOptions()
        # EXTENDED: constant folding, Q/DQ and operator fusions that any x86 CPU runs. The layout
        # (NCHWc) level is hardware specific; it is applied when the engine is loaded, not saved.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        try:
            ort.InferenceSession(str(onnx_path), so, providers=[_EXECUTION_PROVIDER])
        except Exception as exc:
            raise BuildError(f"ONNX Runtime cannot optimize the {options.precision} model: "
                             f"{first_line(exc)[:200]}") from exc
        if not out.is_file() or out.stat().st_size == 0:
            raise BuildError("ONNX Runtime wrote no optimized model")
        return {"onnxruntime": ort.__version__, "graph_optimization": "extended (saved); layout optimizations at load"}


# -- check -----------------------------------------------------------------------------------------
def check_loads(source: CheckInput) -> Iterable[Finding]:
    """ONNX Runtime's rule is its own: a CPU session must load the graph."""
    import onnxruntime as ort


    if source.path is None:
        return
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(source.path), options, providers=[_EXECUTION_PROVIDER])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types
        yield Finding("error", "onnxruntime", "model", "", f"ONNX Runtime {ort.__version__} cannot load it: "
                                                           f"{first_line(exc)[:200]}")


SPEC = BackendSpec(
    runner=OnnxRuntimeBackend,
    title="ONNX Runtime",
    reads="onnx",
    suffixes=(".onnx",),
    cpu=True,
    providers={"cpu": "ONNX Runtime, CPU"},
    builder=OnnxRuntimeBuilder,
    # Peak resident bytes for batches of N x H x W pixels, piecewise: batches over LOW_MEMORY_PIXELS run
    # on the arena-less session. Fitted by ``benchmarks/memory.py --fit`` on 640x480 to 3840x2160 on a
    # 2-core AMD EPYC (Zen 3), 2026-11-26; see benchmarks/README.md, "Memory". FP16 (a TensorRT check
    # artifact here) was not measured: it takes the steepest line of any engine.
    memory={
        "fp32": ((4_000_000, 63e6, 1659.0), (float("inf"), 111e6, 1380.0)),
        "int8": ((4_000_000, 28e6, 2071.0), (float("inf"), 323e6, 1626.0)),
    },
    check=check_loads,
    default_for_format=True,
    auto_rank=2,
    reference=reference_backend,
)
