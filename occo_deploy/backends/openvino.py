"""OpenVINO on the CPU: the FP32 or Q/DQ INT8 ONNX of ``occo-deploy build --backend openvino``.

Why it is here: on x86 CPUs it runs this network 2-4x as fast as ONNX Runtime (see the README's
speed tables). It is an optional extra (``openvino``); this module holds the runner, the builder,
its memory lines and its ``check`` rule (OpenVINO's CPU plugin must take every operation).

The engine stays an ONNX file (FP32, or Q/DQ INT8 with u8 activations, which OpenVINO maps to its
VNNI kernels); the sidecar says ``provider: openvino`` and the inference precision. ``--bf16`` is the
FP32 ONNX computed in BF16 where the CPU has it (AVX512_BF16 or AMX), with the quality gate as for
any build; ``--int8`` runs its convolutions in INT8 and the rest in BF16 on such CPUs, in FP32 elsewhere.

Each frame size gets its own compiled model (the graph reshaped to that static N x H x W), kept for
the last few sizes: a video has one size, so it compiles once (1-2 s on the first frame). Compiled
models are also cached on disk (OpenVINO's CACHE_DIR, in ``.openvino_cache/`` beside the engine), so
a second run, another process or an archive worker loads a size in a fraction of that. Static
shapes are not only faster (559 vs 660 ms per 640x480 frame in BF16 here): OpenVINO 2026.4 computes
our Q/DQ INT8 graph wrongly with dynamic shapes (8 dB against FP32; 47 dB once static).
"""

from __future__ import annotations

import os
import shutil
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from occo_deploy.contract import FUSED, INFRARED, RANGE, STRETCH, VISIBLE, frame_shapes
from occo_deploy.errors import BuildError, EngineError, first_line, require
from occo_deploy.interface.checks import CheckInput, Finding
from occo_deploy.interface.spec import BackendSpec, BuildOptions, EngineBuilder
from occo_deploy.runtime.backend import Backend
from occo_deploy.sidecar import Sidecar, verify_artifact

#: Compiled shapes kept; a compile costs 1-2 s, a kept one some tens of MB.
KEPT_SHAPES = 4
#: Folder, beside the engine, of OpenVINO's compiled-model cache.
CACHE_FOLDER = ".openvino_cache"
#: Frames of at most this many pixels run on ONNX Runtime (the same ONNX, Q/DQ computed as stated):
#: compiling a size costs 1-3 s, more than ONNX Runtime takes for a thumbnail (a 20x20 pair took
#: 1.3 s on OpenVINO against 0.01 s), and a folder of odd small sizes would compile each.
TINY_PIXELS = 128 * 128
#: OpenVINO's INFERENCE_PRECISION_HINT values an engine may record or a user ask for.
INFERENCE_PRECISIONS = ("f32", "bf16")


def cache_dir(artifact: Path, option: Any) -> Path | None:
    """Where compiled models are cached: ``option`` when a path, none when False, else
    ``.openvino_cache/`` beside the engine when that folder can be written (a read-only engine
    folder just goes without)."""
    if option is False:
        return None
    folder = Path(option) if option not in (None, True) else artifact.parent / CACHE_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def openvino() -> Any:
    return require("openvino", "openvino", "OpenVINO engines")


def cpu_has_bf16(core: Any) -> bool:
    """Whether the CPU computes in BF16 natively (AVX512_BF16 or AMX); else OpenVINO runs FP32."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend(Backend):
    name = "openvino"
    run_options: ClassVar[Mapping[str, str]] = {
        "threads": "CPU threads for inference",
        "inference_precision": "compute what is not INT8 in this precision (f32 or bf16) instead of the one the "
                               "engine's gate measured (said when it runs)",
        "openvino_cache": "where compiled models are cached [default: .openvino_cache/ beside the engine]",
    }

    def __init__(self, artifact: Path, sidecar: Sidecar | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        super().__init__(artifact, sidecar, provider, threads, options)
        ov = openvino()
        verify_artifact(artifact, sidecar)
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(artifact))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long C++ traces
            raise EngineError(f"OpenVINO cannot read {artifact}: {first_line(exc)[:200]}") from exc
        inputs = {i.get_any_name() for i in self._model.inputs}
        outputs = {o.get_any_name() for o in self._model.outputs}
        self.steerable = inputs == {VISIBLE, INFRARED, STRETCH} and RANGE in outputs
        if (inputs != {VISIBLE, INFRARED} and not self.steerable) or FUSED not in outputs:
            raise EngineError(f"{artifact} is not an occo-deploy model (inputs {sorted(inputs)}); "
                              "export one with: occo-deploy export CHECKPOINT")
        self.inference_precision = self._precision(sidecar, (options or {}).get("inference_precision"))
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.inference_precision,
                                        "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self.cache_dir = cache_dir(artifact, (options or {}).get("openvino_cache"))
        if self.cache_dir is not None:
            self._config["CACHE_DIR"] = str(self.cache_dir)
        #: Per compiled size: whether it came from the disk cache (what a report says).
        self.compiles: dict[str, bool] = {}
        self._compiled: OrderedDict[tuple[int, int, int], Any] = OrderedDict()
        self._version = ov.__version__
        self._tiny: Backend | None = None  # ONNX Runtime for tiny frames, opened at the first one
        self.tiny_runs = 0

    def _precision(self, sidecar: Sidecar | None, asked: str | None) -> str:
        """What is not INT8 computes in the precision the gate measured (the sidecar's), set
        explicitly: OpenVINO's own default is BF16 on any CPU that has it, so an engine gated in FP32
        on one CPU would otherwise run in BF16 on another. Another precision only when asked, and
        FP32 where the CPU lacks BF16; both are said in ``notices``."""
        recorded = str((sidecar or {}).get("inference_precision", "f32"))
        chosen = recorded
        if asked is not None and asked != recorded:
            if asked not in INFERENCE_PRECISIONS:
                raise EngineError(f"unknown OpenVINO inference precision {asked!r}; use "
                                  f"{' or '.join(INFERENCE_PRECISIONS)}")
            chosen = asked
            self.notices.append(f"{self.artifact.name}: computes in {asked.upper()} as asked; its quality gate "
                                f"measured {recorded.upper()}")
        if chosen == "bf16" and not cpu_has_bf16(self._core):
            self.notices.append(f"{self.artifact.name}: {'asked for' if asked == 'bf16' else 'gated in'} BF16, "
                                "which this CPU cannot compute (no AVX512_BF16 or AMX): it runs in FP32")
            chosen = "f32"
        return chosen

    def runtime_precisions(self, n: int, h: int, w: int) -> dict[str, int]:
        """How many of the compiled model's layers run in each precision (OpenVINO's runtime model):
        what the CPU really computes for this size, which a test or a report can check."""
        counts: dict[str, int] = {}
        compiled = self._request(n, h, w).get_compiled_model()
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "runtimePrecision" in info:
                key = info["runtimePrecision"].astype(str)  # an OVAny
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _request(self, n: int, h: int, w: int) -> Any:
        key = (n, h, w)
        request = self._compiled.get(key)
        if request is not None:
            self._compiled.move_to_end(key)
            return request
        model = self._model.clone()
        model.reshape(frame_shapes(n, h, w, [STRETCH] if self.steerable else []))
        try:
            compiled = self._core.compile_model(model, "CPU", self._config)
        except Exception as exc:
            raise EngineError(f"OpenVINO cannot compile {self.artifact} for {n}x{h}x{w}: "
                              f"{first_line(exc)[:200]}") from exc
        try:
            self.compiles[f"{n}x{h}x{w}"] = bool(compiled.get_property("LOADED_FROM_CACHE"))
        except Exception:  # noqa: BLE001 - an OpenVINO without the property: unknown is "compiled"
            self.compiles[f"{n}x{h}x{w}"] = False
        request = compiled.create_infer_request()
        self._compiled[key] = request
        while len(self._compiled) > KEPT_SHAPES:
            self._compiled.popitem(last=False)
        return request

    def infer(self, visible: np.ndarray, infrared: np.ndarray, stretch: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        if infrared.shape[1] * infrared.shape[2] <= TINY_PIXELS:
            if self._tiny is None:
                from occo_deploy.backends.onnxruntime_cpu import reference_backend

                self._tiny = reference_backend(self.artifact)
            self.tiny_runs += 1
            return self._tiny.infer(visible, infrared, stretch)
        request = self._request(*infrared.shape)
        feeds = {VISIBLE: visible, INFRARED: infrared}
        if stretch is not None:
            feeds[STRETCH] = stretch
        # share_inputs: OpenVINO reads the caller's (contiguous) arrays without copying them.
        request.infer(feeds, share_inputs=True)
        # The request's buffers are reused by the next call.
        fused = request.get_tensor(FUSED).data.copy()
        return fused, None if stretch is None else request.get_tensor(RANGE).data.copy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "openvino": self._version, "inference_precision": self.inference_precision,
                "precision": (self.sidecar or {}).get("precision", "unknown"),
                "compile_cache": None if self.cache_dir is None else str(self.cache_dir),
                "sizes_loaded_from_cache": sorted(k for k, cached in self.compiles.items() if cached),
                "sizes_compiled": sorted(k for k, cached in self.compiles.items() if not cached),
                "tiny_frame_runs_on_onnxruntime": self.tiny_runs}

    def close(self) -> None:
        super().close()
        self._compiled.clear()
        if self._tiny is not None:
            self._tiny.close()
            self._tiny = None


# -- builder ---------------------------------------------------------------------------------------
class OpenVinoBuilder(EngineBuilder):
    """The precision ONNX plus how OpenVINO is to compute it; OpenVINO compiles it per size at run time."""

    suffix = ".onnx"
    # u8 activations (symmetric s8 ones lost 10 dB on OpenVINO for no speed, issue 5's table), placed
    # as TensorRT fuses them (precision.SCHEMES).
    int8_scheme = "u8s8_fused"
    fixed_shapes = False
    precisions = ("fp32", "bf16", "int8")

    def precision_input(self, precision: str, fp32: Path, fp16: Path | None, int8: Path | None) -> Path:
        return int8 if precision == "int8" and int8 is not None else fp32

    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> Sidecar:
        ov = openvino()
        core = ov.Core()
        if options.precision == "bf16" and not cpu_has_bf16(core):
            raise BuildError("this CPU has no BF16 arithmetic (AVX512_BF16 or AMX), so OpenVINO would compute "
                             "in FP32; build --fp32 or --int8 instead")
        shutil.copyfile(onnx_path, out)
        bf16 = options.precision == "bf16" or (options.precision == "int8" and options.rest == "bf16")
        return {"openvino": ov.__version__, "device": "CPU", "inference_precision": "bf16" if bf16 else "f32",
                "cpu_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))}

    def int8_rests(self) -> tuple[str, ...]:
        # What is not quantized (norms, attention, gates) in BF16 where the CPU has it: 346 vs 390 ms
        # per 640x480 frame, 45.0 vs 45.1 dB worst on MSRS (an AMX Xeon); FP32 when that fails the gate.
        return ("bf16", "fp32") if cpu_has_bf16(openvino().Core()) else ("fp32",)


# -- check -----------------------------------------------------------------------------------------
def check_supported(source: CheckInput) -> Iterable[Finding]:
    """OpenVINO's rule: it reads the ONNX and its CPU plugin takes every operation (``query_model``)."""

    if source.path is None:
        return
    ov = openvino()
    core = ov.Core()
    try:
        ov_model = core.read_model(str(source.path))
    except Exception as exc:  # noqa: BLE001 - RuntimeError subclasses with C++ traces
        yield Finding("error", "openvino", "model", "",
                      f"OpenVINO {ov.__version__} cannot read it: {first_line(exc)[:200]}")
        return
    supported = core.query_model(ov_model, "CPU")
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() not in ("Parameter", "Result", "Constant") and op.get_friendly_name() not in supported:
            yield Finding("error", "openvino", op.get_friendly_name(), op.get_type_name(),
                          "not supported by OpenVINO's CPU plugin")


SPEC = BackendSpec(
    runner=OpenVinoBackend,
    title="OpenVINO",
    reads="onnx",
    suffixes=(".onnx",),
    cpu=True,
    providers={"openvino": "OpenVINO, CPU"},
    extra="openvino",
    library="openvino",
    builder=OpenVinoBuilder,
    # Fitted by ``benchmarks/memory.py --fit`` (AMD EPYC Zen 3, 2026-11-26); FP32 and BF16 were not
    # measured and take the steepest line of any engine.
    memory={"int8": ((float("inf"), 235e6, 727.0),)},
    check=check_supported,
)
