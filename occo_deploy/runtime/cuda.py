"""The CUDA device through cuda-python (``cuda.bindings``), imported only when a GPU path is chosen.

cuda-python rather than pycuda: prebuilt wheels, and what TensorRT's own Python samples use since
10.14. Every call returns ``(error, *values)``; ``check`` turns an error into ``EngineError``. Only
the handful of runtime calls the staged pipeline needs are wrapped, so the rest of the package never
sees a cuda-python object.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from occo_deploy.errors import EngineError, require


def _runtime() -> Any:
    require("cuda.bindings", "gpu", "GPU engines")
    from cuda.bindings import runtime as cudart

    return cudart


def check(result: Any, what: str) -> Any:
    """cuda-python returns (error, *values); raise on error, return the values."""
    cudart = _runtime()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise EngineError(f"CUDA {what} failed: {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_info(index: int = 0) -> dict[str, Any]:
    """Name and compute capability of CUDA device ``index``; ``EngineError`` when there is none."""
    cudart = _runtime()
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count <= index:
        raise EngineError(
            "no CUDA device found (driver missing or no NVIDIA GPU); GPU engines need one, "
            "use an exported .onnx on the CPU instead"
        )
    prop = check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace").rstrip("\0") if isinstance(prop.name, bytes) else str(prop.name)
    return {"index": index, "name": name, "compute_capability": f"{prop.major}.{prop.minor}",
            "async_engines": int(prop.asyncEngineCount)}


def host_view(ptr: int, nbytes: int) -> np.ndarray:
    """A flat uint8 numpy array over ``nbytes`` of host memory at ``ptr`` (pinned memory, no copy)."""
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))


class Cuda:
    """The calls the staged pipeline makes: pinned and device memory, streams, events, copies, graphs."""

    def __init__(self, device: int = 0) -> None:
        self.rt = _runtime()
        self.info = device_info(device)
        check(self.rt.cudaSetDevice(device), "cudaSetDevice")
        self.device = device

    # memory
    def malloc_host(self, nbytes: int) -> int:
        """Page-locked host memory: the DMA engines read it directly, so copies run async and at full rate."""
        return int(check(self.rt.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes} bytes)"))

    def free_host(self, ptr: int) -> None:
        check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def malloc(self, nbytes: int) -> int:
        return int(check(self.rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes} bytes)"))

    def free(self, ptr: int) -> None:
        check(self.rt.cudaFree(ptr), "cudaFree")

    # streams and events
    def stream(self) -> Any:
        # Non-blocking: no implicit sync with the legacy default stream other libraries may use.
        return check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "cudaStreamCreate")

    def destroy_stream(self, stream: Any) -> None:
        check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def sync(self, stream: Any) -> None:
        check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def event(self) -> Any:
        return check(self.rt.cudaEventCreate(), "cudaEventCreate")  # timing enabled: the stage clocks

    def destroy_event(self, event: Any) -> None:
        check(self.rt.cudaEventDestroy(event), "cudaEventDestroy")

    def record(self, event: Any, stream: Any) -> None:
        check(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def wait_event(self, event: Any) -> None:
        check(self.rt.cudaEventSynchronize(event), "cudaEventSynchronize")

    def elapsed_s(self, start: Any, end: Any) -> float:
        return float(check(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime")) / 1e3

    # copies
    def h2d(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "host-to-device copy")

    def d2h(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "device-to-host copy")

    # graphs
    def begin_capture(self, stream: Any) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Any) -> Any:
        """The captured graph, instantiated; (graph, exec) so both can be destroyed."""
        graph = check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        return graph, check(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, graph_exec: Any, stream: Any) -> None:
        check(self.rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def destroy_graph(self, graph: Any, graph_exec: Any) -> None:
        check(self.rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        check(self.rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
