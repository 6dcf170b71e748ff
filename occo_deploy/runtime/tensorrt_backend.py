"""TensorRT backend: a plan from ``occo-deploy build --backend tensorrt``, staged on CUDA streams.

NOT RUN on this project's machines (no TensorRT on any of them); every TensorRT call is checked
against the 10.x and 11.x bindings by ``tests/test_api_conformance.py``. Written to the runtime API
both share: ``Runtime.deserialize_cuda_engine``, ``create_execution_context``, ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3``. One execution context per slot, because a context
must not run on two streams at once; the pinned buffers, copies, events and graph capture come from
``CudaStagedBackend``, whose code did run on a GPU with another engine.

On load the plan must declare the engine contract's I/O tensors (names, modes, dtypes), and the
shapes it accepts are read from the plan's own profile, not from the sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from occo_deploy.contract import FUSED, INFRARED, VISIBLE, verify_artifact
from occo_deploy.errors import EngineError
from occo_deploy.runtime.cuda_staged import CudaStagedBackend
from occo_deploy.runtime.shapes import ShapeRange
from occo_deploy.runtime.staging import Slot
from occo_deploy.runtime.tensorrt_lib import (REBUILD, check_io, check_plan_compatible, engine_io, engine_profile,
                                              tensorrt)


class TensorRTBackend(CudaStagedBackend):
    name = "tensorrt"

    def __init__(self, artifact: Path, sidecar: dict[str, Any] | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        trt = tensorrt()  # before CUDA: a missing tensorrt names the extra to install
        verify_artifact(artifact, sidecar)
        super().__init__(artifact, sidecar, provider, threads, options)
        check_plan_compatible(sidecar, trt.__version__, self.cuda.info)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(artifact.read_bytes())
        if self._engine is None:
            raise EngineError(f"TensorRT cannot load {artifact}; {REBUILD}")
        check_io(engine_io(trt, self._engine))
        self._shapes = engine_profile(self._engine)
        self._trt_version = trt.__version__

    @property
    def shapes(self) -> ShapeRange:
        return self._shapes

    def _slot_ready(self, slot: Slot) -> None:
        context = self._engine.create_execution_context()
        if context is None:
            raise EngineError("TensorRT could not create an execution context (GPU memory full?)")
        slot.device["context"] = context

    def _slot_freed(self, slot: Slot) -> None:
        slot.device.pop("context", None)

    def _bind(self, slot: Slot) -> None:
        shape = (slot.n, slot.h, slot.w)
        context, ptr = slot.device["context"], slot.device["ptr"]
        if not context.set_input_shape(VISIBLE, (*shape, 3)) or not context.set_input_shape(INFRARED, shape):
            raise EngineError(f"this engine's profile does not take a batch of {shape}; rebuild with --max")
        for name, key in ((VISIBLE, "visible"), (INFRARED, "infrared"), (FUSED, "fused")):
            if not context.set_tensor_address(name, ptr[key]):
                raise EngineError(f"TensorRT refused the device buffer for '{name}' (see its log above)")

    def _enqueue(self, slot: Slot) -> None:
        if not slot.device["context"].execute_async_v3(int(slot.device["stream"])):
            raise EngineError("TensorRT failed to enqueue the engine (see its log above)")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensorrt": self._trt_version,
                "precision": (self.sidecar or {}).get("precision", "unknown")}
