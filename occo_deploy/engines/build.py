"""``occo-deploy build``: FP32 ONNX -> precision ONNX -> engine for one backend -> quality gate.

Library code: progress messages go to a ``log`` callback; nothing is printed. The engine and its
sidecar appear only when the build and the gate both succeed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.calibration import data as calib_data
from occo_deploy.calibration import ranges as calib_ranges
from occo_deploy.contract import FUSED, INFRARED, VISIBLE, base_sidecar, read_sidecar, sidecar_path
from occo_deploy.engines import precision as prec
from occo_deploy.engines.builders import BuildOptions, EngineBuilder, builder_class
from occo_deploy.engines.gate import DEFAULT_MIN_PSNR, GateResult, compare
from occo_deploy.engines.profile import Profile
from occo_deploy.errors import BuildError, EngineError, InputError
from occo_deploy.files import atomic_output, check_writable, sha256_file, write_json_atomic

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_GATE_ADVICE = {
    "int8": "calibrate on more representative pairs, try --calib-method, or lower --min-psnr",
    "fp16": "some FP16 value overflows or rounds too much; build --fp32 or --int8 and report it",
    "bf16": "BF16 rounds too much for this gate; build --fp32 or --int8, or lower --min-psnr",
    "fp32": "the engine does not reproduce its own ONNX; report it with the versions in the sidecar",
}
Log = Callable[[str], None]


@dataclass
class BuildRequest:
    onnx: Path
    precision: str
    backend: str  # a concrete backend (choose "auto" before)
    profile: Profile
    output: Path | None = None  # default: engines/occo_<precision>_<backend>[_<NxHxW>]<suffix>
    force: bool = False
    calib_dir: Path = Path("calibration")
    calib_method: str = "minmax"
    calib_size: int | None = None
    calib_cache: Path | None = None  # default: <output stem>.calib.json beside the engine
    val_size: int = 4
    seed: int = 0
    min_psnr: float | None = None
    workspace_gib: float | None = None
    timing_cache: Path | None = None


@dataclass
class BuildResult:
    engine: Path
    sidecar: Path
    info: dict[str, Any]
    gate: GateResult
    seconds: float


def default_output(engines_dir: Path, precision: str, builder: EngineBuilder, profile: Profile) -> Path:
    shape = "_" + "x".join(map(str, profile.opt)) if builder.fixed_shapes and profile.static else ""
    return engines_dir / f"occo_{precision}_{builder.backend}{shape}{builder.suffix}"


def check_fp32_onnx(path: Path) -> dict[str, Any]:
    """The FP32 export's sidecar, after checking the file is ours; a one-line error otherwise."""
    import onnx

    if not path.is_file():
        raise InputError(f"ONNX not found: {path}; make it with: occo-deploy export CHECKPOINT")
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError
        raise InputError(f"{path} is not an ONNX file ({type(exc).__name__}); export one with occo-deploy export") from exc
    inputs = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    if inputs != {VISIBLE: onnx.TensorProto.UINT8, INFRARED: onnx.TensorProto.UINT8} or \
            [o.name for o in graph.output] != [FUSED]:
        raise InputError(f"{path} is not an occo-deploy export (inputs {sorted(inputs)}); "
                         "build from the ONNX that occo-deploy export writes")
    meta = read_sidecar(path)
    if meta is None or meta.get("kind") != "onnx" or meta.get("precision") != "fp32":
        raise InputError(f"{path} has no FP32 export sidecar ({sidecar_path(path).name}); re-export it")
    if meta.get("sha256") and meta["sha256"] != sha256_file(path):
        raise InputError(f"{path} changed after export (its sidecar's hash differs); re-export it")
    return meta


def build_engine(req: BuildRequest, log: Log = lambda _m: None) -> BuildResult:
    start = time.perf_counter()
    if req.precision not in PRECISIONS:
        raise InputError(f"unknown precision {req.precision!r}; use --fp32, --fp16, --bf16 or --int8")
    fp32_meta = check_fp32_onnx(req.onnx)
    builder_cls = builder_class(req.backend)
    why_not = builder_cls.unavailable()
    if why_not:
        raise EngineError(f"cannot build for {req.backend}: {why_not}")
    builder: EngineBuilder = builder_cls()
    if req.precision not in builder.precisions:
        hint = " (BF16 engines are OpenVINO's: --backend openvino)" if req.precision == "bf16" else ""
        raise InputError(f"{req.backend} builds {', '.join(builder.precisions)} engines, not {req.precision}{hint}")
    output = req.output or default_output(Path("engines"), req.precision, builder, req.profile)
    meta_path = sidecar_path(output)
    check_writable(output, req.force)
    check_writable(meta_path, req.force)
    min_psnr = req.min_psnr if req.min_psnr is not None else DEFAULT_MIN_PSNR[req.precision]
    hw = req.profile.opt_hw
    info = base_sidecar(kind="engine", fmt="plan" if builder.suffix == ".plan" else "onnx",
                        precision=req.precision, backend=req.backend)
    # ONNX Runtime engines take any shape; the profile's opt only sets the calibration/check size.
    info["shapes"] = req.profile.as_dict() if builder.fixed_shapes else {"dynamic": True, "opt": list(req.profile.opt)}
    info["source"] = {"onnx": str(req.onnx), "onnx_sha256": fp32_meta.get("sha256") or sha256_file(req.onnx),
                      "checkpoint_sha256": fp32_meta.get("source", {}).get("checkpoint_sha256")}
    log(f"building {req.precision} for {req.backend}; shapes {req.profile.describe()}")

    # Pairs: calibration (INT8) and validation (every build), never the same frames.
    val_pairs, calib_items = _pairs(req, hw, log)
    val_pairs.append(_large_pair(val_pairs[0], _large_hw(req.profile, builder.fixed_shapes)))

    with tempfile.TemporaryDirectory(prefix="occo-build-") as tmp_dir:
        tmp = Path(tmp_dir)
        import onnx

        fp16_path = int8_path = None
        if req.precision == "fp16":
            fp16_path = tmp / "fp16.onnx"
            fp32_model = onnx.load(str(req.onnx))
            info["mixed_precision"] = {"fp32_nodes": len(prec.fp32_nodes(fp32_model))}
            onnx.save(prec.to_fp16(fp32_model), fp16_path)
        if req.precision == "int8":
            assert calib_items is not None
            int8_path = tmp / "int8.onnx"
            info["calibration"] = _quantize(req, builder, hw, calib_items, info["source"]["onnx_sha256"], output,
                                            int8_path, log)
        source = builder.precision_input(req.precision, req.onnx, fp16_path, int8_path)
        cpu = builder_class("onnxruntime")()
        reference = cpu.runner(req.onnx, None)
        if req.backend != "onnxruntime" and source != req.onnx:
            # The artifact TensorRT parses is checked here too, on the CPU, before the GPU build.
            pre = compare(reference, cpu.runner(source, None), val_pairs, min_psnr)
            log(f"precision ONNX on ONNX Runtime: {pre.describe()}")
            info["precision_onnx_check"] = pre.as_dict()
            if not pre.passed:
                raise BuildError(f"the {req.precision} ONNX fails the quality gate before building: {pre.describe()}")
        with atomic_output(output, req.force) as tmp_engine:
            log(f"building the engine with {req.backend}...")
            info.update(builder.build(source, tmp_engine, BuildOptions(req.precision, req.profile, req.workspace_gib,
                                                                       req.timing_cache)))
            gate = compare(reference, builder.runner(tmp_engine, info), val_pairs, min_psnr)
            log(gate.describe())
            if not gate.passed:
                raise BuildError(f"engine below the quality gate, nothing kept: {gate.describe()}; "
                                 + _GATE_ADVICE[req.precision])
            info["quality"] = gate.as_dict()
            info["sha256"] = sha256_file(tmp_engine)
            info["build_seconds"] = round(time.perf_counter() - start, 1)
    write_json_atomic(meta_path, info, force=req.force)
    return BuildResult(output, meta_path, info, gate, time.perf_counter() - start)


def _large_hw(profile: Profile, fixed: bool) -> tuple[int, int]:
    """The size of the gate's extra, larger frame: the profile's max (capped at twice opt per side),
    or twice opt for engines that take any size. Sums over all pixels grow with the frame; a
    reduced-precision engine that is fine at opt can overflow on a bigger one."""
    opt_h, opt_w = profile.opt_hw
    if fixed:
        return min(profile.max[1], 2 * opt_h), min(profile.max[2], 2 * opt_w)
    return 2 * opt_h, 2 * opt_w


def _large_pair(pair: tuple[np.ndarray, np.ndarray], hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    return tuple(cv2.resize(x, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for x in pair)  # type: ignore[return-value]


def _pairs(req: BuildRequest, hw: tuple[int, int], log: Log) -> tuple[list[tuple[np.ndarray, np.ndarray]], list | None]:
    if req.precision == "int8":
        items = calib_data.discover(req.calib_dir)
        calib, val = calib_data.split(items, calib_size=req.calib_size, val_size=req.val_size, seed=req.seed)
        log(f"calibration set {req.calib_dir}: {len(items)} frames; {len(calib)} calibrate, {len(val)} check "
            f"(seed {req.seed}), at {hw[0]}x{hw[1]}")
        return list(calib_data.iter_pairs(val, hw)), calib
    try:
        items = calib_data.discover(req.calib_dir)
    except InputError:
        log(f"no pairs in {req.calib_dir}; checking on frames of the bundled demo clip")
        return calib_data.sample_pairs(None, hw, req.val_size), None
    _, val = calib_data.split(items, calib_size=None, val_size=req.val_size, seed=req.seed)
    log(f"checking on {len(val)} pairs of {req.calib_dir}")
    return list(calib_data.iter_pairs(val, hw)), None


def _quantize(req: BuildRequest, builder: EngineBuilder, hw: tuple[int, int], items: list, onnx_sha256: str,
              output: Path, out_path: Path, log: Log) -> dict[str, Any]:
    scheme = builder.int8_scheme
    symmetric = prec.SCHEMES[scheme][1]
    set_sha = calib_data.set_hash(items, hw)
    key = calib_ranges.cache_key(onnx_sha256, set_sha, req.calib_method, symmetric)
    cache_path = req.calib_cache or output.with_name(output.stem + ".calib.json")
    found = calib_ranges.load_cache(cache_path, key)
    log(found.message)
    ranges = found.ranges
    if ranges is None:
        log(f"calibrating ({req.calib_method}) on {len(items)} frames...")
        ranges = calib_ranges.measure(req.onnx, calib_data.iter_pairs(items, hw), req.calib_method, symmetric)
        calib_ranges.save_cache(cache_path, key, ranges)
    import onnx

    onnx.save(prec.to_int8(req.onnx, ranges, scheme), out_path)
    return {"set_sha256": set_sha, "method": req.calib_method, "count": len(items), "seed": req.seed,
            "size_hw": list(hw), "scheme": scheme, "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
            "weights": "int8 symmetric per channel", "cache": str(cache_path), "cache_reused": found.ranges is not None,
            "tensors": len(ranges)}
