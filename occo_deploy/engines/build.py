"""``occo-deploy build``: FP32 ONNX -> precision ONNX -> engine for one backend -> quality gate.

Library code: messages go to a ``log`` callback and long steps to ``steps`` (``occo_deploy.progress``);
nothing is printed. The engine and its sidecar appear only when the build and the gate both succeed.
The backend is the registry's choice (``backends.builder_for``, also for ``auto``); the result says
which and why, and what to run next, so a caller never re-derives either.

Two more ways in and out, for a backend with a format of its own (TensorRT) on a machine without it:
``onnx_only`` stops after the precision ONNX (linted for the target and gated on ONNX Runtime) and
writes it with a sidecar that says what it is for; a later build on the GPU machine takes that ONNX
as its input and skips calibration, which already happened.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy import backends
from occo_deploy.backends.spec import BackendSpec
from occo_deploy.calibration import data as calib_data
from occo_deploy.calibration import ranges as calib_ranges
from occo_deploy.contract import FUSED, INFRARED, VISIBLE, base_sidecar, read_sidecar, sidecar_path
from occo_deploy.engines import precision as prec
from occo_deploy.engines.builders import BuildOptions, EngineBuilder
from occo_deploy.engines.gate import DEFAULT_MIN_PSNR, GateResult, compare
from occo_deploy.engines.profile import Profile
from occo_deploy.errors import BuildError, EngineError, InputError, cli_names, option
from occo_deploy.files import atomic_output, check_writable, sha256_file, write_json_atomic
from occo_deploy.progress import Log, Progress, Steps, quiet

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _gate_advice(precision: str) -> str:
    """What to try when an engine of ``precision`` fails its gate."""
    method, gate = option("calib_method"), option("min_psnr")
    return {
        "int8": f"calibrate on more representative pairs, try {method}, or lower {gate}",
        "fp16": f"some FP16 value overflows or rounds too much; build {_precision_flag('fp32')} or "
                f"{_precision_flag('int8')} and report it",
        "bf16": f"BF16 rounds too much for this gate; build {_precision_flag('fp32')} or {_precision_flag('int8')}, "
                f"or lower {gate}",
        "fp32": "the engine does not reproduce its own ONNX; report it with the versions in the sidecar",
    }[precision]


@dataclass
class BuildRequest:
    onnx: Path
    precision: str | None  # None: the precision of a precision ONNX from onnx_only
    profile: Profile
    backend: str = "auto"  # a backend that builds, or "auto" (see backends.builder_for)
    output: Path | None = None  # default: engines/occo_<precision>_<backend>[_<NxHxW>]<suffix>
    force: bool = False
    calib_dir: Path = Path("calibration")
    calib_method: str = "minmax"
    calib_size: int | None = None
    calib_cache: Path | None = None  # default: calib_<method>_<symmetric|asymmetric>.json beside the engine
    val_size: int = 4
    seed: int = 0
    min_psnr: float | None = None
    workspace_gib: float | None = None
    timing_cache: Path | None = None
    onnx_only: bool = False  # write the precision ONNX the backend would parse, not an engine


@dataclass
class BuildResult:
    engine: Path
    sidecar: Path
    info: dict[str, Any]
    gate: GateResult
    seconds: float
    #: The backend built for, and why it was chosen ("as asked", or what ``auto`` found).
    backend: str = ""
    backend_reason: str = ""
    #: For an ``onnx_only`` ONNX: the command that makes the engine on the machine that has the backend.
    next_step: str | None = None


@dataclass
class BuildSource:
    """What a build starts from: the FP32 export, or a precision ONNX an ``onnx_only`` build wrote."""

    path: Path
    meta: dict[str, Any]
    precision: str
    #: The FP32 ONNX the gate compares with: the export, or the one a precision ONNX came from when it
    #: is still there unchanged; else None (the precision ONNX is then its own reference).
    fp32: Path | None

    @property
    def made_for(self) -> str | None:
        """The backend a precision ONNX from ``onnx_only`` was made for; None for the FP32 export."""
        target = self.meta.get("target")
        return str(target) if target else None


@dataclass
class _Plan:
    """Everything decided before the first long step."""

    spec: BackendSpec
    why: str
    builder: EngineBuilder
    source: BuildSource
    precision: str
    profile: Profile
    output: Path
    min_psnr: float


def _precision_flag(precision: str) -> str:
    return f"--{precision}" if cli_names() else f"precision={precision!r}"


def default_output(engines_dir: Path, precision: str, builder: EngineBuilder, profile: Profile,
                   onnx_only: bool = False) -> Path:
    shape = "_" + "x".join(map(str, profile.opt)) if builder.fixed_shapes and profile.static else ""
    return engines_dir / f"occo_{precision}_{builder.backend}{shape}{'.onnx' if onnx_only else builder.suffix}"


def _check_occo_onnx(path: Path) -> Any:
    """The graph of ``path`` when it has the engine I/O contract (an ``onnx.GraphProto``)."""
    import onnx

    if not path.is_file():
        raise InputError(f"ONNX not found: {path}; make it with: occo-deploy export CHECKPOINT")
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:
        raise InputError(f"{path} is not an ONNX file ({type(exc).__name__}); export one with occo-deploy "
                         "export") from exc
    inputs = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    if inputs != {VISIBLE: onnx.TensorProto.UINT8, INFRARED: onnx.TensorProto.UINT8} or \
            [o.name for o in graph.output] != [FUSED]:
        raise InputError(f"{path} is not an occo-deploy export (inputs {sorted(inputs)}); "
                         "build from the ONNX that occo-deploy export writes")
    return graph


def _foreign_int8(path: Path, graph: Any) -> BuildSource | None:
    """An INT8 Q/DQ ONNX another tool made from our export (NVIDIA ModelOpt, say), taken as a precision
    ONNX made for TensorRT; its gate compares it with the FP32 export here, when there is one."""
    from onnx import TensorProto

    from occo_deploy.workspace import DEFAULT_ONNX

    types = {i.name: i.data_type for i in graph.initializer}
    kinds = {types.get(n.input[2], TensorProto.UINT8) if len(n.input) > 2 else TensorProto.UINT8
             for n in graph.node if n.op_type == "QuantizeLinear"}
    if not kinds:
        return None
    fp8 = {TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2, TensorProto.FLOAT8E5M2FNUZ}
    if kinds & fp8:
        raise InputError(f"{path} quantizes to FP8, which this network does not survive (ModelOpt's FP8 scored "
                         "5.7 dB worst, 10.4 dB median against FP32 on held-out pairs); build --int8 instead")
    if kinds != {TensorProto.INT8}:
        raise InputError(f"{path} is not symmetric INT8 Q/DQ (zero points of another type); TensorRT takes INT8 "
                         "zero points: quantize for TensorRT, or build --int8 --backend tensorrt from the export")
    fp32 = DEFAULT_ONNX if DEFAULT_ONNX.is_file() else None
    meta = {"kind": "onnx", "precision": "int8", "target": "tensorrt",
            "source": {"onnx": str(fp32 or ""), "made_by": "another tool (the ONNX has no occo-deploy sidecar)"}}
    return BuildSource(path, meta, "int8", fp32)


def source_onnx(path: Path) -> BuildSource:
    """The ONNX a build starts from, checked: ours, unchanged since its sidecar, and of a kind we build
    (or an INT8 Q/DQ ONNX another tool made for TensorRT)."""
    graph = _check_occo_onnx(path)
    meta = read_sidecar(path)
    if meta is None:
        foreign = _foreign_int8(path, graph)
        if foreign is not None:
            return foreign
    if meta is None or meta.get("kind") != "onnx":
        raise InputError(f"{path} has no export sidecar ({sidecar_path(path).name}); re-export it")
    if meta.get("sha256") and meta["sha256"] != sha256_file(path):
        raise InputError(f"{path} changed after it was written (its sidecar's hash differs); make it again")
    precision = str(meta.get("precision"))
    if not meta.get("target"):
        if precision != "fp32":
            raise InputError(f"{path} is not the FP32 export; build from export/occo.onnx")
        return BuildSource(path, meta, "fp32", path)
    fp32 = Path(meta.get("source", {}).get("onnx", ""))
    unchanged = fp32.is_file() and sha256_file(fp32) == meta.get("source", {}).get("onnx_sha256")
    return BuildSource(path, meta, precision, fp32 if unchanged else None)


def _choose(req: BuildRequest, source: BuildSource) -> tuple[BackendSpec, str]:
    """The backend: the one named; for ``auto``, the one a precision ONNX was made for, the one
    ``onnx_only`` is for, else the registry's first available."""
    if req.backend == "auto" and source.made_for:
        return backends.get(source.made_for), "the ONNX is for it"
    if req.backend == "auto" and req.onnx_only:
        spec = next((s for s in backends.builders() if s.builder is not None and s.builder.onnx_only), None)
        if spec is not None:
            return spec, f"what {option('onnx_only')} is for"
    return backends.builder_for(req.backend)


def _plan(req: BuildRequest) -> _Plan:
    """Check the request against the source and the backend; nothing is written or measured yet."""
    source = source_onnx(req.onnx)
    spec, why = _choose(req, source)
    builder = spec.make_builder()
    made_for = source.made_for
    if req.precision is None and not made_for:
        raise InputError(f"choose one precision: {', '.join(_precision_flag(p) for p in PRECISIONS[:-1])} or "
                         f"{_precision_flag(PRECISIONS[-1])}")
    precision = req.precision or source.precision
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use {', '.join(_precision_flag(p) for p in PRECISIONS)}")
    if made_for:
        if made_for != spec.name:
            raise InputError(f"{req.onnx} is a {source.precision} ONNX made for {made_for}; build it with "
                             f"{option('backend', made_for)}, or build from the FP32 export (export/occo.onnx)")
        if precision != source.precision:
            raise InputError(f"{req.onnx} is a {source.precision} ONNX; build it with "
                             f"{_precision_flag(source.precision)} or no precision option")
        if req.onnx_only:
            raise InputError(f"{req.onnx} already is the ONNX for {spec.name}; {option('onnx_only')} takes the "
                             "FP32 export")
    if req.onnx_only and not builder.onnx_only:
        others = [s.name for s in backends.builders() if s.builder is not None and s.builder.onnx_only]
        raise InputError(f"{option('onnx_only')} writes the ONNX a backend with a format of its own parses "
                         f"({', '.join(others)}); {spec.name} engines already are ONNX files: drop "
                         f"{option('onnx_only')}")
    if not req.onnx_only:
        why_not = builder.unavailable()
        if why_not:
            hint = f"; or write the ONNX it would parse here with {option('onnx_only')}" \
                if builder.onnx_only and not made_for else ""
            raise EngineError(f"cannot build for {spec.name}: {why_not}{hint}")
    if precision not in builder.precisions:
        makers = [s.name for s in backends.builders() if s.builder is not None and precision in s.builder.precisions]
        hint = f" ({precision.upper()} engines are {' and '.join(makers)}'s: {option('backend', makers[0])})" \
            if makers else ""
        raise InputError(f"{spec.name} builds {', '.join(builder.precisions)} engines, not {precision}{hint}")
    profile = _resolve_profile(req, builder, source)
    output = req.output or default_output(Path("engines"), precision, builder, profile, req.onnx_only)
    check_writable(output, req.force)
    check_writable(sidecar_path(output), req.force)
    min_psnr = req.min_psnr if req.min_psnr is not None else DEFAULT_MIN_PSNR[precision]
    return _Plan(spec, why, builder, source, precision, profile, output, min_psnr)


def _first_sidecar(req: BuildRequest, plan: _Plan) -> dict[str, Any]:
    """The sidecar's fields known before building: kind, format, shapes, where it came from."""
    spec, precision, profile, source = plan.spec, plan.precision, plan.profile, plan.source
    if req.onnx_only:
        info = base_sidecar(kind="onnx", fmt="onnx", precision=precision, backend=None)
        info["target"] = spec.name
        info["purpose"] = f"the {precision} ONNX {spec.name} parses; on the GPU machine: " + \
            plan.builder.next_step(str(plan.output), profile)
    else:
        info = base_sidecar(kind="engine", fmt=spec.reads, precision=precision, backend=spec.name)
        info["provider"] = spec.provider
    # ONNX Runtime engines take any shape; the profile's opt only sets the calibration/check size.
    info["shapes"] = profile.as_dict() if plan.builder.fixed_shapes else {"dynamic": True, "opt": list(profile.opt)}
    source_meta = source.meta.get("source", {})
    info["source"] = {"onnx": str(req.onnx), "onnx_sha256": source.meta.get("sha256") or sha256_file(req.onnx),
                      "checkpoint_sha256": source_meta.get("checkpoint_sha256")}
    if source.made_for:
        info["source"]["made_from"] = source_meta  # the FP32 export the precision ONNX was made from
        for key in ("calibration", "mixed_precision"):
            if key in source.meta:
                info[key] = source.meta[key]
    return info


def _resolve_profile(req: BuildRequest, builder: EngineBuilder, source: BuildSource) -> Profile:
    """The user's shapes; else those the precision ONNX was made for; else the builder's default range."""
    if not req.profile.dynamic:
        return req.profile
    made_for = source.meta.get("shapes", {})
    if source.meta.get("target") and made_for.get("min"):
        return Profile.from_lists(made_for["min"], made_for["opt"], made_for["max"])
    return builder.default_profile or req.profile


def _lint(builder: EngineBuilder, model_path: Path, log: Log) -> dict[str, Any] | None:
    """The backend's rules on the ONNX it will parse into its own format, before parsing (TensorRT's,
    checked without it). Backends that run the ONNX itself are checked by running it in the gate."""
    spec = builder.spec
    if spec.check is None or not builder.onnx_only:
        return None
    import onnx

    from occo_deploy.engines.check import check_model

    major = builder.target_major()
    findings = check_model(onnx.load(str(model_path)), [spec.name], path=model_path, tensorrt_major=major)
    errors = [f for f in findings if f.level == "error"]
    versions = f"{spec.title} {major}" if major else f"{spec.title} 10 and 11"
    if errors:
        raise BuildError(f"the ONNX breaks {len(errors)} rule(s) of {versions}, first: {errors[0].line()}; "
                         f"see them all with: occo-deploy check --target {spec.name}")
    log(f"{spec.name} rules ({versions}): passed")
    infos = [f.message for f in findings if f.level == "info"]
    for line in infos:
        log(f"{spec.name}: {line}")
    return {"target": spec.name, "rules": versions, "errors": 0,
            "warnings": sum(f.level == "warning" for f in findings), "plan": infos}


def build_engine(req: BuildRequest, log: Log = quiet, steps: Steps | None = None) -> BuildResult:
    """FP32 ONNX -> precision ONNX -> engine -> quality gate; ``log`` gets what a user reads, and
    ``steps(task)`` a progress callback for each long step (calibration, the gates)."""
    start = time.perf_counter()
    plan = _plan(req)
    spec, builder, source, precision, output = plan.spec, plan.builder, plan.source, plan.precision, plan.output
    log(f"backend: {spec.name} ({plan.why})")
    for note in builder.notes(precision):
        log(f"note: {note}")
    info = _first_sidecar(req, plan)
    what = f"the {precision} ONNX for {spec.name}" if req.onnx_only else f"{precision} for {spec.name}"
    log(f"building {what}; shapes {plan.profile.describe()}")

    # Pairs: calibration (INT8 from the export) and validation (every build), never the same frames.
    calibrate = precision == "int8" and not source.made_for
    hw = plan.profile.opt_hw
    val_pairs, calib_items = _pairs(req, calibrate, hw, log)
    large_hw = _large_hw(plan.profile, builder.fixed_shapes)
    if large_hw != val_pairs[0][0].shape[:2]:  # a static profile has no larger frame to try
        val_pairs.append(_large_pair(val_pairs[0], large_hw))

    with tempfile.TemporaryDirectory(prefix="occo-build-") as tmp_dir, contextlib.ExitStack() as opened:
        candidates = _precision_onnx(req, plan, info, Path(tmp_dir), calib_items, log, steps)
        from occo_deploy.backends.onnxruntime_cpu import reference_backend

        reference_path = source.fp32 or source.path
        if reference_path != source.fp32:
            log(f"the FP32 export {source.meta.get('source', {}).get('onnx')} is not here: checking against "
                f"{req.onnx.name} itself (its own gate against FP32 is in its sidecar)")
        reference = opened.enter_context(contextlib.closing(reference_backend(reference_path)))
        (mixed, parsed), pre = candidates[0], None
        if req.onnx_only or (spec.name != reference.name and parsed != reference_path):
            # The ONNX another backend parses is checked here too, on the CPU, before that backend builds.
            mixed, parsed, pre = _first_passing(candidates, reference, val_pairs, plan, info, log, steps)
        if mixed:
            info["mixed_precision"] = mixed
        lint = _lint(builder, parsed, log)
        if lint:
            info["lint"] = lint
        with atomic_output(output, req.force) as tmp_out:
            if req.onnx_only:
                assert pre is not None
                tmp_out.write_bytes(parsed.read_bytes())
                gate = pre
            else:
                log(f"building the engine with {spec.name}...")
                info.update(builder.build(parsed, tmp_out, BuildOptions(precision, plan.profile, req.workspace_gib,
                                                                        req.timing_cache, log)))
                engine = opened.enter_context(contextlib.closing(builder.runner(tmp_out, info)))
                gate = compare(reference, engine, val_pairs, plan.min_psnr, _step(steps, "quality gate"))
                log(gate.describe())
                if not gate.passed:
                    raise BuildError(f"engine below the quality gate, nothing kept: {gate.describe()}; "
                                     + _gate_advice(precision))
            info["quality"] = gate.as_dict()
            info["sha256"] = sha256_file(tmp_out)
            info["build_seconds"] = round(time.perf_counter() - start, 1)
    meta_path = sidecar_path(output)
    write_json_atomic(meta_path, info, force=req.force)
    if req.onnx_only:
        _write_pending_engine(builder, output, info, log)
    next_step = builder.next_step(str(output), plan.profile) if req.onnx_only else None
    return BuildResult(output, meta_path, info, gate, time.perf_counter() - start, spec.name, plan.why, next_step)


def _write_pending_engine(builder: EngineBuilder, onnx_path: Path, info: dict[str, Any], log: Log) -> None:
    """The sidecar of the engine the printed command builds from ``onnx_path`` (trtexec's plan), so the
    engine runs with ``fuse`` once it is there; an engine that exists already keeps its own."""
    pending = builder.pending_engine(onnx_path, info)
    if pending is None:
        return
    engine, sidecar = pending
    if engine.exists():
        log(f"{engine} exists; its sidecar is left as it is")
        return
    write_json_atomic(sidecar_path(engine), sidecar, force=True)


def _precision_onnx(req: BuildRequest, plan: _Plan, info: dict[str, Any], tmp: Path, calib_items: list[Any] | None,
                    log: Log, steps: Steps | None) -> list[tuple[dict[str, Any] | None, Path]]:
    """The ONNX the backend may parse, preferred first, each with its ``mixed_precision`` record: made
    here (mixed FP16; calibrated INT8, for TensorRT with its rest in FP16 first), or the one given."""
    import onnx

    if plan.source.made_for:
        return [(plan.source.meta.get("mixed_precision"), plan.source.path)]
    fp16_path = int8_path = None
    mixed = None
    if plan.precision == "fp16":
        fp16_path = tmp / "fp16.onnx"
        fp32_model = onnx.load(str(req.onnx))
        mixed = {"fp32_nodes": len(prec.fp32_nodes(fp32_model))}
        onnx.save(prec.to_fp16(fp32_model), fp16_path)
    if plan.precision == "int8":
        assert calib_items is not None
        int8_path = tmp / "int8.onnx"
        info["calibration"] = _quantize(req, plan.builder, plan.profile.opt_hw, calib_items,
                                        info["source"]["onnx_sha256"], plan.output, int8_path, log, steps)
        if plan.builder.int8_fp16_rest:
            quantized = onnx.load(str(int8_path))
            rest_path = tmp / "int8_fp16_rest.onnx"
            onnx.save(prec.int8_with_fp16_rest(quantized), rest_path)
            return [({"rest": "fp16", "fp32_nodes": len(prec.int8_fp32_nodes(quantized))}, rest_path),
                    ({"rest": "fp32"}, int8_path)]
    return [(mixed, plan.builder.precision_input(plan.precision, req.onnx, fp16_path, int8_path))]


def _first_passing(candidates: list[tuple[dict[str, Any] | None, Path]], reference: Any,
                   val_pairs: list[tuple[np.ndarray, np.ndarray]], plan: _Plan, info: dict[str, Any], log: Log,
                   steps: Steps | None) -> tuple[dict[str, Any] | None, Path, GateResult]:
    """The first candidate precision ONNX that passes the gate on ONNX Runtime (Q/DQ as stated)."""
    from occo_deploy.backends.onnxruntime_cpu import reference_backend

    precision = plan.precision
    for k, (mixed, path) in enumerate(candidates):
        what = f"{precision} ONNX" + (f" ({mixed['rest'].upper()} rest)" if mixed and "rest" in mixed else "")
        with contextlib.closing(reference_backend(path)) as candidate:
            gate = compare(reference, candidate, val_pairs, plan.min_psnr, _step(steps, f"checking the {what}"))
        log(f"{what} on ONNX Runtime: {gate.describe()}")
        if gate.passed:
            info["precision_onnx_check"] = gate.as_dict()
            return mixed, path, gate
        if k + 1 < len(candidates):
            log(f"the {what} is below the gate; trying the next")
    raise BuildError(f"the {precision} ONNX fails the quality gate, nothing kept: {gate.describe()}; "
                     + _gate_advice(precision))


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

    ir, vis = (cv2.resize(x, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for x in pair)
    return ir, vis


def _pairs(req: BuildRequest, calibrate: bool, hw: tuple[int, int], log: Log
           ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[Any] | None]:
    if calibrate:
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


def _step(steps: Steps | None, task: str) -> Progress | None:
    return None if steps is None else steps(task)


def _quantize(req: BuildRequest, builder: EngineBuilder, hw: tuple[int, int], items: list[Any], onnx_sha256: str,
              output: Path, out_path: Path, log: Log, steps: Steps | None = None) -> dict[str, Any]:
    scheme = builder.int8_scheme
    symmetric = prec.SCHEMES[scheme].symmetric
    set_sha = calib_data.set_hash(items, hw)
    key = calib_ranges.cache_key(onnx_sha256, set_sha, req.calib_method, symmetric)
    # One cache per method and range kind, shared by every backend beside it: an OpenVINO build
    # reuses the ranges an ONNX Runtime build measured when their schemes quantize alike.
    cache_path = req.calib_cache or output.with_name(
        f"calib_{req.calib_method}_{'symmetric' if symmetric else 'asymmetric'}.json")
    found = calib_ranges.load_cache(cache_path, key)
    log(found.message)
    ranges = found.ranges
    if ranges is None:
        log(f"calibrating ({req.calib_method}) on {len(items)} frames...")
        ranges = calib_ranges.measure(req.onnx, calib_data.iter_pairs(items, hw), req.calib_method, symmetric,
                                      _step(steps, f"calibrating ({req.calib_method})"), total=len(items))
        calib_ranges.save_cache(cache_path, key, ranges)
    import onnx

    onnx.save(prec.to_int8(req.onnx, ranges, scheme), out_path)
    return {"set_sha256": set_sha, "method": req.calib_method, "count": len(items), "seed": req.seed,
            "size_hw": list(hw), "scheme": scheme, "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
            "weights": prec.SCHEMES[scheme].describe_weights(), "cache": str(cache_path),
            "cache_reused": found.ranges is not None,
            "tensors": len(ranges)}
