"""ONNX Runtime on the GPU: its CUDA and TensorRT execution providers, with I/O binding.

``--provider cuda`` and ``--provider ort-tensorrt`` run an ``.onnx`` here. The second is ONNX
Runtime's TensorRT execution provider, which builds TensorRT engines inside ONNX Runtime and caches
them beside the model; it is not ``build --backend tensorrt``, which writes a TensorRT plan that
``backends/tensorrt.py`` runs. This backend builds nothing of its own: it runs the exported ONNX and
the ONNX engines other backends build. Host memory does not bound it, so it has no memory lines.

Inputs and outputs are bound to the slot's device buffers, so ONNX Runtime copies nothing itself;
the copies are ours, on the stream ONNX Runtime computes on (``user_compute_stream``), so they are
ordered without a host sync. ``run_with_iobinding`` returns only when the GPU is done, so unlike
TensorRT the host waits during compute; the next batch's decode and fill overlap only the copies.

Asking for a GPU provider that ONNX Runtime cannot give is an error, never a quiet run on the CPU:
ONNX Runtime itself falls back to the CPU with just a log line when the CUDA libraries fail to load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from occo_deploy.backends.onnxruntime_cpu import open_session, steerable
from occo_deploy.contract import FUSED, INFRARED, RANGE, STRETCH, VISIBLE
from occo_deploy.errors import EngineError, MissingDependencyError, first_line, install_hint, option
from occo_deploy.interface.spec import BackendSpec
from occo_deploy.runtime.cuda_staged import CudaStagedBackend
from occo_deploy.runtime.staging import Slot
from occo_deploy.sidecar import Sidecar

EXECUTION_PROVIDERS = {"cuda": "CUDAExecutionProvider", "ort-tensorrt": "TensorrtExecutionProvider"}


def gpu_provider(provider: str, available: list[str], version: str) -> str:
    """The execution provider's name for ``provider``, or an error naming the package to install."""
    ep = EXECUTION_PROVIDERS.get(provider)
    if ep is None:
        raise EngineError(f"unknown ONNX Runtime GPU provider '{provider}'; use one of {sorted(EXECUTION_PROVIDERS)}")
    if ep not in available:
        raise MissingDependencyError(
            f"ONNX Runtime {version} here has no {ep} (it has {', '.join(available)}); "
            f"the GPU build is a separate package: pip uninstall -y onnxruntime && {install_hint('ort-gpu')}"
        )
    return ep


def tensorrt_precision_options(sidecar: Sidecar | None) -> dict[str, str]:
    """ONNX Runtime's TensorRT provider options for the precision in the graph: it builds FP32 unless
    told, and refuses a Q/DQ graph without ``trt_int8_enable`` (onnxruntime issue 13381). The Q/DQ
    carry their own scales, so no calibration table is read; an INT8 graph's rest may be FP16."""
    precision = (sidecar or {}).get("precision")
    options = {}
    if precision in ("fp16", "int8"):
        options["trt_fp16_enable"] = "True"
    if precision == "int8":
        options.update(trt_int8_enable="True", trt_int8_use_native_calibration_table="False")
    return options


def graph_id(ids: dict[tuple[Any, ...], int], key: tuple[Any, ...]) -> int:
    """ONNX Runtime's CUDA graph id for a binding (slot, shape, device addresses).

    A captured graph replays the addresses and shapes it was captured with, so every distinct
    binding gets its own graph (run option ``gpu_graph_id``; ids from 1, 0 is ONNX Runtime's own):
    two slots in flight, a slot regrown at new addresses and a new frame size each capture anew
    instead of replaying another binding's buffers.
    """
    return ids.setdefault(key, len(ids) + 1)


def check_active(ep: str, active: list[str], artifact: Path) -> None:
    """Refuse a session where ONNX Runtime dropped the asked-for provider and went on without it."""
    if ep not in active:
        raise EngineError(
            f"ONNX Runtime could not start {ep} for {artifact} and would run on {', '.join(active)} instead; "
            "check that the CUDA and cuDNN libraries it was built for are installed (see its log with "
            f"ORT_LOGGING_LEVEL=0), or run on the CPU with {option('provider', 'cpu')}"
        )


class OnnxRuntimeGpuBackend(CudaStagedBackend):
    name = "onnxruntime-gpu"
    run_options: ClassVar[Mapping[str, str]] = {**CudaStagedBackend.run_options, "threads": "CPU threads for inference",
                   "provider_options": "ONNX Runtime CUDA provider options (prefer_nhwc, ...)"}
    stream_per_slot = False  # a session computes on one stream, ours
    # run_with_iobinding blocks until the GPU is done, so a second batch in flight only queues: on an
    # H100 it gave 0.98-1.03x the throughput at twice the latency.
    default_in_flight = 1

    def __init__(self, artifact: Path, sidecar: Sidecar | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        import onnxruntime as ort

        ep = gpu_provider(provider, ort.get_available_providers(), ort.__version__)
        super().__init__(artifact, sidecar, provider, threads, options)
        if hasattr(ort, "preload_dlls"):  # 1.21+: load CUDA/cuDNN from the nvidia-* wheels when present
            ort.preload_dlls()
        # 1.31 warns "No registered plugin EP device found" on the default logger for every session
        # with a classic provider; errors still come through.
        ort.set_default_logger_severity(3)
        common = {"device_id": str(self.cuda.device), "user_compute_stream": str(int(self._shared_stream))}
        # Extra CUDA provider options (prefer_nhwc, cudnn_conv_algo_search...), for A/B runs.
        cuda_opts = {**common, **{k: str(v) for k, v in self.options.get("provider_options", {}).items()}}
        #: binding -> ONNX Runtime graph id, when its CUDA graphs are on (see ``graph_id``).
        self._graph_ids: dict[tuple[Any, ...], int] | None = None
        if self.cuda_graph:
            # Our stream capture cannot wrap run_with_iobinding (it synchronizes), so ask ONNX Runtime
            # for its own graphs; they need every node on the GPU.
            cuda_opts["enable_cuda_graph"] = "1"
            self.cuda_graph = False
            self._graph_ids = {}
        providers: list[Any] = [("CUDAExecutionProvider", cuda_opts)]
        if ep == "TensorrtExecutionProvider":
            cache = artifact.with_name(artifact.name + ".ort-trt-cache")
            providers.insert(0, (ep, {**common, "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache),
                                      **tensorrt_precision_options(sidecar)}))
        self._session = open_session(artifact, sidecar, [*providers, "CPUExecutionProvider"], threads)
        self.steerable = steerable(self._session)
        check_active(ep, self._session.get_providers(), artifact)
        self._ep = ep
        self._ort_version = ort.__version__

    def _slot_ready(self, slot: Slot) -> None:
        slot.device["binding"] = self._session.io_binding()

    def _bind(self, slot: Slot) -> None:
        shape = (slot.n, slot.h, slot.w)
        binding, ptr, dev = slot.device["binding"], slot.device["ptr"], self.cuda.device
        binding.bind_input(VISIBLE, "cuda", dev, np.uint8, [*shape, 3], ptr["visible"])
        binding.bind_input(INFRARED, "cuda", dev, np.uint8, list(shape), ptr["infrared"])
        binding.bind_output(FUSED, "cuda", dev, np.uint8, [*shape, 3], ptr["fused"])
        if self.steerable:
            binding.bind_input(STRETCH, "cuda", dev, np.float32, [slot.n, 4], ptr["stretch"])
            binding.bind_output(RANGE, "cuda", dev, np.float32, [slot.n, 2], ptr["range"])
        if self._graph_ids is not None:
            import onnxruntime as ort

            key = (slot.index, shape, ptr["visible"], ptr["infrared"], ptr["fused"])
            run_options = ort.RunOptions()
            run_options.add_run_config_entry("gpu_graph_id", str(graph_id(self._graph_ids, key)))
            slot.device["run_options"] = run_options

    def _enqueue(self, slot: Slot) -> None:
        try:
            self._session.run_with_iobinding(slot.device["binding"], slot.device.get("run_options"))
        except Exception as exc:
            raise EngineError(f"ONNX Runtime ({self._ep}) failed on a {slot.n}x{slot.h}x{slot.w} batch: "
                              f"{first_line(exc)[:200]}") from exc

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "onnxruntime": self._ort_version, "execution_provider": self._ep,
                "precision": (self.sidecar or {}).get("precision", "unknown")}

    def close(self) -> None:
        super().close()
        self._session = None


SPEC = BackendSpec(
    runner=OnnxRuntimeGpuBackend,
    title="ONNX Runtime GPU",
    reads="onnx",
    suffixes=(".onnx",),
    providers={"cuda": "ONNX Runtime, CUDA",
               "ort-tensorrt": "ONNX Runtime's TensorRT execution provider, not a TensorRT plan"},
    extra="ort-gpu",
    library="onnxruntime",  # the GPU build installs the same module; the runner checks its providers
)
