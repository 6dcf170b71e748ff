"""TensorRT: plans built from the precision ONNX and run on CUDA streams, and TensorRT's rules.

Everything about native TensorRT is declared here: the import and its version rules, the builder (a
plan from the precision ONNX), the runner (a plan on CUDA streams), and as its check the rules
``occo-deploy check --target tensorrt`` applies to the ONNX TensorRT would parse (kept as data in
``tensorrt_rules.py``, apart from the library calls ``tests/test_api_conformance.py`` walks). ONNX
Runtime's TensorRT execution provider is another thing (``--provider ort-tensorrt``,
``backends/onnxruntime_gpu.py``).

NOT RUN on this project's machines: TensorRT cannot be installed there. What comes before the
``tensorrt`` import (profiles, the precision ONNX, its rules, calibration, sidecars, version checks,
errors) is tested on the CPU, and every TensorRT call here is checked against both versions'
bindings by ``tests/test_api_conformance.py``; the builder and the runner are written to the
Python API that TensorRT 10 and 11 share.

Builder: every network is strongly typed, on 10 as on 11: 11 builds nothing else, 10.12 deprecated
weak typing, and the precision then lives in the ONNX this project checks on ONNX Runtime (Q/DQ for
INT8, mixed FP16 with its FP32 islands for FP16). ``--fp32`` plans clear the TF32 flag, which is on
by default and would round FP32 convolutions' inputs to 10 mantissa bits. The plan is a plain
serialized engine (loadable by ``trtexec --loadEngine``); what we know about it goes in the sidecar.

Runner: ``Runtime.deserialize_cuda_engine``, ``create_execution_context``, ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3``. One execution context per slot, because a context
must not run on two streams at once; the pinned buffers, copies, events and graph capture come from
``CudaStagedBackend``, whose code did run on a GPU with another engine. On load the plan must declare
the engine contract's I/O tensors (names, modes, dtypes); the shapes it accepts are read from the
plan's own profile, not from the sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from occo_deploy import log
from occo_deploy.backends import tensorrt_rules
from occo_deploy.contract import FUSED, INFRARED, RANGE, STRETCH, VISIBLE
from occo_deploy.errors import BuildError, EngineError, MissingDependencyError, require
from occo_deploy.files import write_bytes_atomic
from occo_deploy.interface.profile import Profile
from occo_deploy.interface.spec import BackendSpec, BuildOptions, EngineBuilder
from occo_deploy.runtime.cuda_staged import CudaStagedBackend
from occo_deploy.runtime.shapes import ShapeRange
from occo_deploy.runtime.staging import Slot
from occo_deploy.sidecar import Sidecar, new_sidecar, verify_artifact

_log = log.get("backends.tensorrt")

if TYPE_CHECKING:  # annotations only; tests/test_api_conformance.py resolves the calls through them
    import tensorrt as trt


# -- the library and its versions ---------------------------------------------------------------
SUPPORTED_MAJORS = (10, 11)
#: name -> (mode, dtype, rank) of the engine I/O contract, as a plan must declare it.
EXPECTED_IO = {VISIBLE: ("input", "UINT8", 4), INFRARED: ("input", "UINT8", 3), FUSED: ("output", "UINT8", 4)}
#: The stretch's steering, which plans built from exports that have it declare as well (both or neither).
STEERING_IO = {STRETCH: ("input", "FLOAT", 2), RANGE: ("output", "FLOAT", 2)}
REBUILD = "rebuild it with: occo-deploy build --backend tensorrt"
#: ``built_by`` of a plan's sidecar written at ``--onnx-only`` time, for the plan trtexec makes.
TRTEXEC = "trtexec"


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


def check_plan_compatible(sidecar: Sidecar | None, tensorrt_version: str, device: dict[str, Any]) -> None:
    """Refuse a plan built by another TensorRT version or for another GPU architecture.

    Plans are not portable across TensorRT versions or compute capabilities; loading one anyway
    fails deep inside TensorRT or, worse, runs slowly. The sidecar says what it was built with.
    """
    if not sidecar:
        raise EngineError(f"this TensorRT plan has no sidecar (.json), so its TensorRT version and GPU are "
                          f"unknown; {REBUILD}")
    if sidecar.get("built_by") == TRTEXEC and not sidecar.get("tensorrt"):
        return  # built by trtexec from our precision ONNX: TensorRT checks version and GPU as it loads the plan
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


def check_io(tensors: dict[str, tuple[str, str, int]]) -> bool:
    """Refuse a plan whose I/O tensors (name -> mode, dtype, rank) are not the engine contract's;
    whether it has the stretch's steering."""
    steered = any(name in tensors for name in STEERING_IO)
    for name, expected in {**EXPECTED_IO, **(STEERING_IO if steered else {})}.items():
        got = tensors.get(name)
        if got is None:
            raise EngineError(f"this plan has no tensor '{name}' (it has {', '.join(sorted(tensors)) or 'none'}): "
                              f"not an occo-deploy engine; {REBUILD}")
        if got != expected:
            raise EngineError(f"this plan's tensor '{name}' is {got[0]} {got[1]} rank {got[2]}, expected "
                              f"{expected[0]} {expected[1]} rank {expected[2]}; {REBUILD}")
    extra = sorted(set(tensors) - set(EXPECTED_IO) - set(STEERING_IO))
    if extra:
        raise EngineError(f"this plan has I/O tensors the contract lacks ({', '.join(extra)}); {REBUILD}")
    return steered


def engine_io(trt: Any, engine: trt.ICudaEngine) -> dict[str, tuple[str, str, int]]:
    """name -> (mode, dtype, rank) of a deserialized engine's I/O tensors."""
    tensors = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        dtype = engine.get_tensor_dtype(name)
        known = {trt.DataType.UINT8: "UINT8", trt.DataType.FLOAT: "FLOAT"}
        tensors[name] = (mode, known.get(dtype, str(dtype)),
                         len(engine.get_tensor_shape(name)))
    return tensors


def engine_profile(engine: trt.ICudaEngine) -> ShapeRange:
    """The shapes a plan takes, read from the plan itself (profile 0 of the infrared input)."""
    lo, _opt, hi = engine.get_tensor_profile_shape(INFRARED, 0)
    return ShapeRange(min_batch=lo[0], max_batch=hi[0], min_height=lo[1], min_width=lo[2],
                      max_height=hi[1], max_width=hi[2])


# -- runner --------------------------------------------------------------------------------------
class TensorRTBackend(CudaStagedBackend):
    name = "tensorrt"

    def __init__(self, artifact: Path, sidecar: Sidecar | None, provider: str, threads: int | None,
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
        self.steerable = check_io(engine_io(trt, self._engine))
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
        if not context.set_input_shape(VISIBLE, (*shape, 3)) or not context.set_input_shape(INFRARED, shape) or \
                (self.steerable and not context.set_input_shape(STRETCH, (slot.n, 4))):
            raise EngineError(f"this engine's profile does not take a batch of {shape}; rebuild with --max")
        tensors = [(VISIBLE, "visible"), (INFRARED, "infrared"), (FUSED, "fused")]
        if self.steerable:
            tensors += [(STRETCH, "stretch"), (RANGE, "range")]
        for name, key in tensors:
            if not context.set_tensor_address(name, ptr[key]):
                raise EngineError(f"TensorRT refused the device buffer for '{name}' (see its log above)")

    def _enqueue(self, slot: Slot) -> None:
        if not slot.device["context"].execute_async_v3(int(slot.device["stream"])):
            raise EngineError("TensorRT failed to enqueue the engine (see its log above)")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensorrt": self._trt_version,
                "precision": (self.sidecar or {}).get("precision", "unknown")}


# -- builder -------------------------------------------------------------------------------------
#: What a plan takes when the user gives no shapes: from small crops to 1080p, one to four frames.
DEFAULT_PROFILE = Profile(min=(1, 256, 256), opt=(1, 480, 640), max=(4, 1088, 1920))


class TensorRTBuilder(EngineBuilder):
    """A strongly typed plan from the precision ONNX (see the module's docstring)."""

    build_options: ClassVar[Mapping[str, str]] = {"workspace": "the workspace limit (GiB)",
                                                  "timing_cache": "a timing cache to load and save"}

    suffix = ".plan"
    int8_scheme = "s8s8"  # TensorRT takes symmetric INT8 Q/DQ only
    fixed_shapes = True
    default_profile = DEFAULT_PROFILE
    onnx_only = True

    def unavailable(self) -> str | None:
        try:
            tensorrt()
            from occo_deploy.runtime.cuda import device_info

            device_info()
        except (MissingDependencyError, EngineError) as exc:
            return str(exc)
        return None

    def check_options(self) -> dict[str, Any]:
        try:
            return {"trt_major": major_version(tensorrt().__version__)}
        except MissingDependencyError:
            return {}

    def rules_label(self) -> str:
        major = self.check_options().get("trt_major")
        return f"TensorRT {major}" if major else "TensorRT 10 and 11"

    def int8_rests(self) -> tuple[str, ...]:
        # The rest's precision is in the graph (explicit casts, strongly typed): FP16 where it holds.
        return ("fp16", "fp32")

    def pending_engine(self, onnx_path: Path, info: Sidecar) -> tuple[Path, Sidecar] | None:
        """The plan the printed ``trtexec`` line writes, and its sidecar: TensorRT's version and the GPU
        are not known yet, and TensorRT itself refuses a plan of another version or GPU as it loads."""
        sidecar = new_sidecar(kind="engine", fmt="plan", precision=str(info["precision"]), backend=self.backend)
        sidecar["provider"], sidecar["shapes"], sidecar["built_by"] = self.spec.provider, info["shapes"], TRTEXEC
        sidecar["source"] = {"onnx": str(onnx_path.absolute()), "onnx_sha256": info.get("sha256")}
        if "calibration" in info:
            sidecar["calibration"] = info["calibration"]
        if "mixed_precision" in info:
            sidecar["mixed_precision"] = info["mixed_precision"]
        if "lint" in info:
            sidecar["lint"] = info["lint"]
        if "quality" in info:
            sidecar["quality"] = info["quality"]
        return onnx_path.with_suffix(".plan"), sidecar

    def next_step(self, onnx_name: str, profile: Profile) -> str:
        shapes = " ".join(
            f"--{which}Shapes={VISIBLE}:{'x'.join(map(str, (*dims, 3)))},{INFRARED}:{'x'.join(map(str, dims))},"
            f"{STRETCH}:{dims[0]}x4"
            for which, dims in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)))
        plan = onnx_name.rsplit(".", 1)[0] + ".plan"
        return (f"occo-deploy build {onnx_name} --backend tensorrt (checks the plan against this ONNX and writes its "
                f"sidecar), or: trtexec --onnx={onnx_name} --stronglyTyped {shapes} --saveEngine={plan}")

    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> Sidecar:
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
        workspace_gib: float | None = options.backend_options.get("workspace")
        timing_cache: Path | None = options.backend_options.get("timing_cache")
        tf32 = options.precision != "fp32"  # on by default; an FP32 plan computes in FP32
        if not tf32:
            config.clear_flag(trt.BuilderFlag.TF32)
        if workspace_gib:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
        p = options.profile
        profile = builder.create_optimization_profile()
        profile.set_shape(VISIBLE, (*p.min, 3), (*p.opt, 3), (*p.max, 3))
        profile.set_shape(INFRARED, p.min, p.opt, p.max)
        if any(network.get_input(i).name == STRETCH for i in range(network.num_inputs)):
            profile.set_shape(STRETCH, (p.min[0], 4), (p.opt[0], 4), (p.max[0], 4))
        config.add_optimization_profile(profile)
        cache_state = _attach_timing_cache(config, timing_cache)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BuildError("TensorRT could not build the engine (its messages above say why)")
        out.write_bytes(memoryview(plan))
        if timing_cache is not None:
            cache = config.get_timing_cache()
            if cache is None:
                _log.warning("timing cache not saved: TensorRT returned none to write to %s", timing_cache)
            else:
                write_bytes_atomic(timing_cache, bytes(memoryview(cache.serialize())), force=True)
        return {
            "tensorrt": {"version": trt.__version__, "gpu": device, "typing": "strong",
                         "tf32": tf32,
                         "workspace_gib": workspace_gib,
                         "timing_cache": str(timing_cache) if timing_cache else None,
                         "timing_cache_state": cache_state},
        }


def _attach_timing_cache(config: trt.IBuilderConfig, path: Path | None) -> str:
    """Load ``path`` into the builder config; a cache from another GPU or TensorRT is ignored, and said so.

    ``set_timing_cache(cache, ignore_mismatch=False)`` returns False for a cache whose device
    properties differ from this GPU's; building on with it would either fail or reuse timings of
    another chip. An empty blob makes a new cache.
    """
    blob = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, False):
        return "loaded" if blob else "new"
    _log.warning("timing cache %s ignored: it was made on another GPU or TensorRT version; starting a new one", path)
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, False):
        raise BuildError("TensorRT could not create an empty timing cache")
    return "ignored (another GPU or TensorRT version)"


SPEC = BackendSpec(
    runner=TensorRTBackend,
    title="TensorRT",
    reads="plan",
    suffixes=(".plan", ".engine", ".trt"),
    providers={"tensorrt": "TensorRT, a plan from build --backend tensorrt"},
    extra="gpu",
    library="tensorrt",
    builder=TensorRTBuilder,
    check=tensorrt_rules.check_rules,
    check_source=tensorrt_rules.rules_source,
    check_options={"trt_major": "check for TensorRT 10 or 11 only [default: both]"},
    default_for_format=True,
    auto_rank=1,
    missing_hint="build one with: occo-deploy build --backend tensorrt --fp16 (on the GPU machine that will run it)",
)
