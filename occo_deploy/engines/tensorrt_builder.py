"""TensorRT engines (plans), written to the documented Python API of TensorRT 10 and 11.

NOT RUN on this project's machines: TensorRT cannot be installed there. What comes before the
``tensorrt`` import (profiles, the precision ONNX, its TensorRT lint, calibration, sidecars, version
checks, errors) is tested on the CPU, and every TensorRT call here is checked against both versions'
bindings by ``tests/test_api_conformance.py``.

Every network is strongly typed, on 10 as on 11: 11 builds nothing else, 10.12 deprecated weak
typing, and the precision then lives in the ONNX this project checks on ONNX Runtime (Q/DQ for
INT8, mixed FP16 with its FP32 islands for FP16). ``--fp32`` plans clear the TF32 flag, which is on
by default and would round FP32 convolutions' inputs to 10 mantissa bits.

The plan is a plain serialized engine (loadable by ``trtexec --loadEngine``); what we know about it
goes in the sidecar beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from occo_deploy.contract import INFRARED, VISIBLE
from occo_deploy.engines.builders import BuildOptions, EngineBuilder, Log
from occo_deploy.engines.profile import Profile
from occo_deploy.errors import BuildError, EngineError, MissingDependencyError
from occo_deploy.files import write_bytes_atomic
from occo_deploy.runtime.backend import Backend
from occo_deploy.runtime.tensorrt_lib import major_version, tensorrt

if TYPE_CHECKING:  # annotations only; tests/test_api_conformance.py resolves the calls through them
    import tensorrt as trt

#: What a plan takes when the user gives no shapes: from small crops to 1080p, one to four frames.
DEFAULT_PROFILE = Profile(min=(1, 256, 256), opt=(1, 480, 640), max=(4, 1088, 1920))



class TensorRTBuilder(EngineBuilder):
    backend = "tensorrt"
    suffix = ".plan"
    int8_scheme = "s8s8"  # TensorRT takes symmetric INT8 Q/DQ only
    fixed_shapes = True
    default_profile = DEFAULT_PROFILE
    check_target = "tensorrt"

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            tensorrt()
            from occo_deploy.runtime.cuda import device_info

            device_info()
        except (MissingDependencyError, EngineError) as exc:
            return str(exc)
        return None

    @classmethod
    def target_major(cls) -> int | None:
        try:
            return major_version(tensorrt().__version__)
        except MissingDependencyError:
            return None

    def next_step(self, onnx_name: str, profile: Profile) -> str:
        shapes = " ".join(
            f"--{which}Shapes={VISIBLE}:{'x'.join(map(str, (*dims, 3)))},{INFRARED}:{'x'.join(map(str, dims))}"
            for which, dims in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)))
        plan = onnx_name.rsplit(".", 1)[0] + ".plan"
        return (f"occo-deploy build {onnx_name} --backend tensorrt (checks the plan against this ONNX and writes its "
                f"sidecar), or: trtexec --onnx={onnx_name} --stronglyTyped {shapes} --saveEngine={plan}")

    def precision_input(self, precision: str, fp32: Path, fp16: Path | None, int8: Path | None) -> Path:
        # Strongly typed on 10 and 11: the precision ONNX itself, never the FP32 one with flags.
        return {"fp32": fp32, "fp16": fp16, "int8": int8}[precision]  # type: ignore[return-value]

    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> dict[str, Any]:
        from occo_deploy.runtime.cuda import device_info

        trt = tensorrt()
        device = device_info()
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        # STRONGLY_TYPED: opt-in on 10.x, accepted and always on in 11.x.
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            count = parser.num_errors
            error = parser.get_error(0) if count else None
            first = f"node {error.node_name()}: {error.desc()}" if error is not None else "unknown error"
            raise BuildError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name} ({count} error(s)); "
                             f"first: {first[:200]}")
        config = builder.create_builder_config()
        tf32 = options.precision != "fp32"  # on by default; an FP32 plan computes in FP32
        if not tf32:
            config.clear_flag(trt.BuilderFlag.TF32)
        if options.workspace_gib:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
        p = options.profile
        profile = builder.create_optimization_profile()
        profile.set_shape(VISIBLE, (*p.min, 3), (*p.opt, 3), (*p.max, 3))
        profile.set_shape(INFRARED, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
        cache_state = _attach_timing_cache(config, options.timing_cache, options.log)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BuildError("TensorRT could not build the engine (its messages above say why)")
        out.write_bytes(memoryview(plan))
        if options.timing_cache is not None:
            cache = config.get_timing_cache()
            if cache is None:
                options.log(f"timing cache not saved: TensorRT returned none to write to {options.timing_cache}")
            else:
                write_bytes_atomic(options.timing_cache, bytes(memoryview(cache.serialize())), force=True)
        return {
            "provider": "tensorrt",
            "tensorrt": {"version": trt.__version__, "gpu": device, "typing": "strong",
                         "tf32": tf32,
                         "workspace_gib": options.workspace_gib,
                         "timing_cache": str(options.timing_cache) if options.timing_cache else None,
                         "timing_cache_state": cache_state},
        }

    def runner(self, engine: Path, sidecar: dict[str, Any] | None) -> Backend:
        from occo_deploy.runtime.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(engine, sidecar, "tensorrt", None)


def _attach_timing_cache(config: trt.IBuilderConfig, path: Path | None, log: Log) -> str:
    """Load ``path`` into the builder config; a cache from another GPU or TensorRT is ignored, and said so.

    ``set_timing_cache(cache, ignore_mismatch=False)`` returns False for a cache whose device
    properties differ from this GPU's; building on with it would either fail or reuse timings of
    another chip. An empty blob makes a new cache.
    """
    blob = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, False):
        return "loaded" if blob else "new"
    log(f"timing cache {path} ignored: it was made on another GPU or TensorRT version; starting a new one")
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, False):
        raise BuildError("TensorRT could not create an empty timing cache")
    return "ignored (another GPU or TensorRT version)"
