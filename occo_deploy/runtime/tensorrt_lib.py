"""What the TensorRT builder and backend share: the import, version rules, the plan's I/O and profile.

Imported by ``runtime.tensorrt_backend`` and ``engines.tensorrt_builder`` (engines may import the
runtime, never the other way round). The TensorRT calls here follow the Python API that 10.x and
11.x share; ``tests/test_api_conformance.py`` checks each one against both versions' bindings.
NOT RUN: no machine of this project has TensorRT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from occo_deploy.contract import FUSED, INFRARED, VISIBLE
from occo_deploy.errors import EngineError, MissingDependencyError, require
from occo_deploy.runtime.shapes import ShapeRange

if TYPE_CHECKING:  # annotations only; tests/test_api_conformance.py resolves the calls through them
    import tensorrt as trt

SUPPORTED_MAJORS = (10, 11)
#: name -> (mode, dtype, rank) of the engine I/O contract, as a plan must declare it.
EXPECTED_IO = {VISIBLE: ("input", "UINT8", 4), INFRARED: ("input", "UINT8", 3), FUSED: ("output", "UINT8", 4)}
REBUILD = "rebuild it with: occo-deploy build --backend tensorrt"


def major_version(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise EngineError(f"cannot read the TensorRT version {version!r}") from exc


def tensorrt() -> Any:
    """The ``tensorrt`` module, or an error naming the extra; 10.x and 11.x only."""
    trt = require("tensorrt", "gpu", "TensorRT engines")
    if major_version(trt.__version__) not in SUPPORTED_MAJORS:
        raise MissingDependencyError(f"TensorRT {trt.__version__} is not supported; install TensorRT 10 or 11")
    return trt


def check_plan_compatible(sidecar: dict[str, Any] | None, tensorrt_version: str, device: dict[str, Any]) -> None:
    """Refuse a plan built by another TensorRT version or for another GPU architecture.

    Plans are not portable across TensorRT versions or compute capabilities; loading one anyway
    fails deep inside TensorRT or, worse, runs slowly. The sidecar says what it was built with.
    """
    if not sidecar:
        raise EngineError(f"this TensorRT plan has no sidecar (.json), so its TensorRT version and GPU are "
                          f"unknown; {REBUILD}")
    built = sidecar.get("tensorrt", {})
    if built.get("version") != tensorrt_version:
        raise EngineError(f"plan was built with TensorRT {built.get('version')}, this is {tensorrt_version}; "
                          f"{REBUILD}")
    gpu = built.get("gpu", {})
    if gpu.get("compute_capability") != device.get("compute_capability"):
        raise EngineError(
            f"plan was built for {gpu.get('name')} (compute capability {gpu.get('compute_capability')}), this "
            f"GPU is {device.get('name')} ({device.get('compute_capability')}); {REBUILD}"
        )


def check_io(tensors: dict[str, tuple[str, str, int]]) -> None:
    """Refuse a plan whose I/O tensors (name -> mode, dtype, rank) are not the engine contract's."""
    for name, expected in EXPECTED_IO.items():
        got = tensors.get(name)
        if got is None:
            raise EngineError(f"this plan has no tensor '{name}' (it has {', '.join(sorted(tensors)) or 'none'}): "
                              f"not an occo-deploy engine; {REBUILD}")
        if got != expected:
            raise EngineError(f"this plan's tensor '{name}' is {got[0]} {got[1]} rank {got[2]}, expected "
                              f"{expected[0]} {expected[1]} rank {expected[2]}; {REBUILD}")
    extra = sorted(set(tensors) - set(EXPECTED_IO))
    if extra:
        raise EngineError(f"this plan has I/O tensors the contract lacks ({', '.join(extra)}); {REBUILD}")


def engine_io(trt: Any, engine: trt.ICudaEngine) -> dict[str, tuple[str, str, int]]:
    """name -> (mode, dtype, rank) of a deserialized engine's I/O tensors."""
    tensors = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        dtype = engine.get_tensor_dtype(name)
        tensors[name] = (mode, "UINT8" if dtype == trt.DataType.UINT8 else str(dtype),
                         len(engine.get_tensor_shape(name)))
    return tensors


def engine_profile(engine: trt.ICudaEngine) -> ShapeRange:
    """The shapes a plan takes, read from the plan itself (profile 0 of the infrared input)."""
    lo, _opt, hi = engine.get_tensor_profile_shape(INFRARED, 0)
    return ShapeRange(min_batch=lo[0], max_batch=hi[0], min_height=lo[1], min_width=lo[2],
                      max_height=hi[1], max_width=hi[2])
