"""The CUDA device through cuda-python (``cuda.bindings``), imported only when a GPU path is chosen."""

from __future__ import annotations

from typing import Any

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
    return values[0] if len(values) == 1 else tuple(values)


def device_info(index: int = 0) -> dict[str, Any]:
    """Name and compute capability of CUDA device ``index``; ``EngineError`` when there is none."""
    cudart = _runtime()
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count <= index:
        raise EngineError("no CUDA device found; TensorRT engines need an NVIDIA GPU (use --backend onnxruntime)")
    prop = check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace").rstrip("\0") if isinstance(prop.name, bytes) else str(prop.name)
    return {"index": index, "name": name, "compute_capability": f"{prop.major}.{prop.minor}"}
