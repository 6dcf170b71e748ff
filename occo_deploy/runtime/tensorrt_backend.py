"""TensorRT backend: a plan from ``occo-deploy build --backend tensorrt`` on a CUDA stream.

NOT RUN on this project's machines (no TensorRT there). Written to the TensorRT 10/11 runtime API
(``deserialize_cuda_engine``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) and
cuda-python. Synchronous and simple: one context, device buffers grown on demand; pinned staging
and overlapped batches are the GPU-runtime work still to come.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.contract import FUSED, INFRARED, VISIBLE
from occo_deploy.errors import EngineError
from occo_deploy.runtime.backend import Backend, ShapeRange


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, artifact: Path, sidecar: dict[str, Any] | None, provider: str, threads: int | None) -> None:
        super().__init__(artifact, sidecar, provider, threads)
        from occo_deploy.engines.tensorrt_builder import _tensorrt, check_plan_compatible
        from occo_deploy.runtime.cuda import _runtime, check, device_info

        trt = _tensorrt()
        self._cudart = _runtime()
        self._check = check
        check_plan_compatible(sidecar, trt.__version__, device_info())
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(artifact.read_bytes())
        if self._engine is None:
            raise EngineError(f"TensorRT cannot load {artifact}; rebuild it with: occo-deploy build --backend tensorrt")
        self._context = self._engine.create_execution_context()
        self._stream = check(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self._trt_version = trt.__version__

    @property
    def shapes(self) -> ShapeRange:
        profile = ((self.sidecar or {}).get("shapes") or {})
        lo, hi = profile.get("min"), profile.get("max")
        if not lo or not hi:
            return ShapeRange()
        return ShapeRange(min_batch=lo[0], max_batch=hi[0], min_side=max(16, min(lo[1], lo[2])),
                          max_height=hi[1], max_width=hi[2])

    def _device(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self._check(self._cudart.cudaFree(ptr), "cudaFree")
            ptr = self._check(self._cudart.cudaMalloc(nbytes), "cudaMalloc")
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
        cudart, check = self._cudart, self._check
        fused = np.empty(visible.shape, np.uint8)
        self._context.set_input_shape(VISIBLE, visible.shape)
        self._context.set_input_shape(INFRARED, infrared.shape)
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        for name, host in ((VISIBLE, visible), (INFRARED, infrared)):
            ptr = self._device(name, host.nbytes)
            check(cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d, self._stream), "H2D copy")
            self._context.set_tensor_address(name, ptr)
        out_ptr = self._device(FUSED, fused.nbytes)
        self._context.set_tensor_address(FUSED, out_ptr)
        if not self._context.execute_async_v3(self._stream):
            raise EngineError("TensorRT failed to run the engine")
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(cudart.cudaMemcpyAsync(fused.ctypes.data, out_ptr, fused.nbytes, d2h, self._stream), "D2H copy")
        check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return fused

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensorrt": self._trt_version,
                "precision": (self.sidecar or {}).get("precision", "unknown")}

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        if getattr(self, "_stream", None) is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None
