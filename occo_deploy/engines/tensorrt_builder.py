"""TensorRT engines (plans), written to the documented Python API of TensorRT 10 and 11.

NOT RUN on this project's machines: TensorRT cannot be installed there. Everything before the
``tensorrt`` import (profiles, precision ONNX, calibration, sidecars, version checks, errors) is
tested on the CPU; the lines that call TensorRT are kept few and follow the API references:

* TensorRT 11 builds strongly typed networks only (precision flags and INT8 calibrators are gone);
  the precision is in the ONNX: Q/DQ for INT8, mixed FP16 for FP16.
* TensorRT 10 takes the same strongly typed Q/DQ ONNX for INT8 (explicit quantization). For FP16 it
  uses the builder flag on the FP32 ONNX, with the FP32 islands pinned by precision constraints.

The plan is a plain serialized engine (loadable by ``trtexec --loadEngine``); what we know about it
goes in the sidecar beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from occo_deploy.contract import INFRARED, VISIBLE
from occo_deploy.engines.builders import BuildOptions, EngineBuilder
from occo_deploy.engines.gate import Runner
from occo_deploy.errors import BuildError, EngineError, MissingDependencyError, require
from occo_deploy.files import write_bytes_atomic

SUPPORTED_MAJORS = (10, 11)


def major_version(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise EngineError(f"cannot read the TensorRT version {version!r}") from exc


def check_plan_compatible(sidecar: dict[str, Any] | None, tensorrt_version: str, device: dict[str, Any]) -> None:
    """Refuse a plan built by another TensorRT version or for another GPU architecture.

    Plans are not portable across TensorRT versions or compute capabilities; loading one anyway
    fails deep inside TensorRT or, worse, runs slowly. The sidecar says what it was built with.
    """
    if not sidecar:
        raise EngineError("this TensorRT plan has no sidecar (.json), so its TensorRT version and GPU are "
                          "unknown; rebuild it with: occo-deploy build --backend tensorrt")
    built = sidecar.get("tensorrt", {})
    if built.get("version") != tensorrt_version:
        raise EngineError(f"plan was built with TensorRT {built.get('version')}, this is {tensorrt_version}; "
                          "rebuild it here with: occo-deploy build --backend tensorrt")
    gpu = built.get("gpu", {})
    if gpu.get("compute_capability") != device.get("compute_capability"):
        raise EngineError(
            f"plan was built for {gpu.get('name')} (compute capability {gpu.get('compute_capability')}), this "
            f"GPU is {device.get('name')} ({device.get('compute_capability')}); rebuild it here with: "
            "occo-deploy build --backend tensorrt"
        )


def _tensorrt() -> Any:
    trt = require("tensorrt", "gpu", "TensorRT engines")
    if major_version(trt.__version__) not in SUPPORTED_MAJORS:
        raise MissingDependencyError(f"TensorRT {trt.__version__} is not supported; install TensorRT 10 or 11")
    return trt


def _pin_fp32(trt: Any, network: Any, keep: set[str]) -> int:
    """TensorRT 10 weak typing: force FP32 on layers parsed from the ONNX nodes in ``keep``."""
    pinned = 0
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        # The ONNX parser names layers after their node; a node may become several layers.
        if not any(layer.name == k or layer.name.startswith(k + "_") for k in keep):
            continue
        if all(layer.get_output(j).dtype in floats for j in range(layer.num_outputs)):
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    return pinned


class TensorRTBuilder(EngineBuilder):
    backend = "tensorrt"
    suffix = ".plan"
    int8_scheme = "s8s8"  # TensorRT takes symmetric INT8 Q/DQ only
    fixed_shapes = True

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            _tensorrt()
            from occo_deploy.runtime.cuda import device_info

            device_info()
        except (MissingDependencyError, EngineError) as exc:
            return str(exc)
        return None

    def precision_input(self, precision: str, fp32: Path, fp16: Path | None, int8: Path | None) -> Path:
        if precision == "fp16" and major_version(_tensorrt().__version__) == 10:
            return fp32  # TensorRT 10: FP16 by builder flag, FP32 islands by precision constraints
        return {"fp32": fp32, "fp16": fp16, "int8": int8}[precision]  # type: ignore[return-value]

    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> dict[str, Any]:
        import onnx

        from occo_deploy.engines.precision import fp32_nodes
        from occo_deploy.runtime.cuda import device_info

        trt = _tensorrt()
        device = device_info()
        weak_fp16 = options.precision == "fp16" and major_version(trt.__version__) == 10
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        # STRONGLY_TYPED: opt-in on 10.x, accepted and always on in 11.x.
        flags = 0 if weak_fp16 else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            first = str(parser.get_error(0)) if parser.num_errors else "unknown error"
            raise BuildError(f"TensorRT cannot parse {onnx_path.name}: {first[:200]}")
        config = builder.create_builder_config()
        if options.workspace_gib:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
        p = options.profile
        profile = builder.create_optimization_profile()
        profile.set_shape(VISIBLE, (*p.min, 3), (*p.opt, 3), (*p.max, 3))
        profile.set_shape(INFRARED, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
        pinned = 0
        if weak_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            pinned = _pin_fp32(trt, network, set(fp32_nodes(onnx.load(str(onnx_path), load_external_data=False))))
        cache_path = options.timing_cache
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path and cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BuildError("TensorRT could not build the engine (its messages above say why)")
        out.write_bytes(memoryview(plan))
        if cache_path is not None:
            write_bytes_atomic(cache_path, bytes(memoryview(config.get_timing_cache().serialize())), force=True)
        return {
            "provider": "tensorrt",
            "tensorrt": {"version": trt.__version__, "gpu": device,
                         "typing": "weak, FP16 builder flag" if weak_fp16 else "strong",
                         "fp32_layers_pinned": pinned, "workspace_gib": options.workspace_gib,
                         "timing_cache": str(cache_path) if cache_path else None},
        }

    def runner(self, engine: Path, sidecar: dict[str, Any] | None) -> Runner:
        from occo_deploy.runtime.tensorrt_backend import TensorRTBackend

        backend = TensorRTBackend(engine, sidecar, "tensorrt", None)
        return lambda ir, vis: backend.run(vis, ir)
