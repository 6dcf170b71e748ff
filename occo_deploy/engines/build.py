"""``occo-deploy build``: FP32 ONNX -> precision ONNX -> engine for one backend -> quality gate.

Library code: messages go to the ``occo_deploy.engines`` logger and long steps to ``steps``
(``occo_deploy.progress``); nothing is printed. The engine and its sidecar appear only when the
build and the gate both succeed.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy import backends, log
from occo_deploy.calibration import data as calib_data
from occo_deploy.contract import FUSED, INFRARED, RANGE, STRETCH, VISIBLE
from occo_deploy.engines import precision as prec
from occo_deploy.engines.gate import DEFAULT_MIN_PSNR, GateResult, compare
from occo_deploy.errors import BuildError, EngineError, InputError, cli_names, option
from occo_deploy.files import atomic_output, check_writable, sha256_file
from occo_deploy.interface.profile import Profile
from occo_deploy.interface.spec import BackendSpec, BuildOptions, EngineBuilder
from occo_deploy.progress import Progress, Steps
from occo_deploy.quantization import ranges as calib_ranges
from occo_deploy.runtime.cpu import cpu_class, cpu_description
from occo_deploy.sidecar import Calibration, Sidecar, new_sidecar, read_sidecar, sidecar_path, write_sidecar

logger = log.get("engines")

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _gate_advice(precision: str, untried_methods: list[str]) -> str:
    """What to try when no engine of ``precision`` passes its gate (for INT8: the calibration methods
    the build did not try)."""
    gate = option("min_psnr")
    others = " or ".join(option("calib_method", m) for m in untried_methods)
    return {
        "int8": f"calibrate on more representative pairs ({'--calib' if cli_names() else 'calib_dir='}), "
                + (f"try {others}, " if others else "") + f"or lower {gate}",
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
    #: Options only some backends' builders take (TensorRT's ``workspace`` and ``timing_cache``);
    #: one the chosen builder does not declare is refused.
    backend_options: dict[str, Any] = field(default_factory=dict)
    onnx_only: bool = False  # write the precision ONNX the backend would parse, not an engine
    #: INT8: calibration methods tried, in order, when every configuration of ``calib_method`` fails.
    fallback_methods: tuple[str, ...] = ("percentile",)


@dataclass
class BuildResult:
    engine: Path
    sidecar: Path
    info: Sidecar
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
    meta: Sidecar
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
    frames = {VISIBLE: onnx.TensorProto.UINT8, INFRARED: onnx.TensorProto.UINT8}
    steered = inputs == {**frames, STRETCH: onnx.TensorProto.FLOAT} and [o.name for o in graph.output] == [FUSED, RANGE]
    if not steered and (inputs != frames or [o.name for o in graph.output] != [FUSED]):
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
    meta: Sidecar = {"kind": "onnx", "precision": "int8", "target": "tensorrt",
                     "source": {"onnx": str(fp32.absolute()) if fp32 else "",
                                "made_by": "another tool (the ONNX has no occo-deploy sidecar)"}}
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
    backends.refuse_options(spec, req.backend_options, "build")
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


def _first_sidecar(req: BuildRequest, plan: _Plan) -> Sidecar:
    """The sidecar's fields known before building: kind, format, shapes, where it came from."""
    spec, precision, profile, source = plan.spec, plan.precision, plan.profile, plan.source
    if req.onnx_only:
        info = new_sidecar(kind="onnx", fmt="onnx", precision=precision, backend=None)
        info["target"] = spec.name
        info["purpose"] = f"the {precision} ONNX {spec.name} parses; on the GPU machine: " + \
            plan.builder.next_step(str(plan.output), profile)
    else:
        info = new_sidecar(kind="engine", fmt=spec.reads, precision=precision, backend=spec.name)
        info["provider"] = spec.provider
    # ONNX Runtime engines take any shape; the profile's opt only sets the calibration/check size.
    info["shapes"] = profile.as_dict() if plan.builder.fixed_shapes else {"dynamic": True, "opt": list(profile.opt)}
    source_meta = source.meta.get("source", {})
    info["source"] = {"onnx": str(req.onnx.absolute()),
                      "onnx_sha256": source.meta.get("sha256") or sha256_file(req.onnx),
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


def _lint(builder: EngineBuilder, model_path: Path) -> dict[str, Any] | None:
    """The backend's rules on the ONNX it will parse into its own format, before parsing (TensorRT's,
    checked without it). Backends that run the ONNX itself are checked by running it in the gate."""
    spec = builder.spec
    if spec.check is None or not builder.onnx_only:
        return None
    import onnx

    from occo_deploy.engines.check import check_model

    findings = check_model(onnx.load(str(model_path)), [spec.name], path=model_path, options=builder.check_options())
    errors = [f for f in findings if f.level == "error"]
    versions = builder.rules_label()
    if errors:
        raise BuildError(f"the ONNX breaks {len(errors)} rule(s) of {versions}, first: {errors[0].line()}; "
                         f"see them all with: occo-deploy check --target {spec.name}")
    logger.info(f"{spec.name} rules ({versions}): passed")
    infos = [f.message for f in findings if f.level == "info"]
    for line in infos:
        logger.info(f"{spec.name}: {line}")
    return {"target": spec.name, "rules": versions, "errors": 0,
            "warnings": sum(f.level == "warning" for f in findings), "plan": infos}


@dataclass
class _Candidate:
    """One configuration a build may keep: the ONNX the backend parses and how it was made."""

    path: Path
    mixed: dict[str, Any] | None = None  # the sidecar's ``mixed_precision``
    method: str | None = None  # calibration method of its ranges (None: not calibrated here)
    rest: str | None = None  # INT8: the precision of what is not quantized
    calibration: Calibration | None = None  # the sidecar's ``calibration`` when calibrated here

    def label(self, precision: str) -> str:
        parts = [f"{self.method} ranges"] if self.method else []
        if self.rest:
            parts.append(f"{self.rest.upper()} rest")
        return f"{precision} ({', '.join(parts)})" if parts else precision


def build_engine(req: BuildRequest, steps: Steps | None = None) -> BuildResult:
    """FP32 ONNX -> precision ONNX -> engine -> quality gate; what a user reads is logged
    (``occo_deploy.engines``), and ``steps(task)`` gives a progress callback for each long step.

    An INT8 build tries its configurations fastest first (the rest in the builder's precisions, then
    the fallback calibration methods) and keeps the first one that passes; ranges are cached per
    method, so a second build never calibrates again with the same method."""
    start = time.perf_counter()
    plan = _plan(req)
    spec, builder, source, precision, output = plan.spec, plan.builder, plan.source, plan.precision, plan.output
    logger.info(f"backend: {spec.name} ({plan.why})")
    for note in builder.notes(precision):
        logger.warning("%s", note)
    info = _first_sidecar(req, plan)
    what = f"the {precision} ONNX for {spec.name}" if req.onnx_only else f"{precision} for {spec.name}"
    logger.info(f"building {what}; shapes {plan.profile.describe()}")

    # Pairs: calibration (INT8 from the export) and validation (every build), never the same frames.
    calibrate = precision == "int8" and not source.made_for
    hw = plan.profile.opt_hw
    large_hw = _large_hw(plan.profile, builder.fixed_shapes)
    val_pairs, calib_items = gate_pairs(req.calib_dir, calibrate, hw, large_hw, req.val_size, req.seed,
                                        req.calib_size)
    info["gate_frames"] = {"folder": str(req.calib_dir.absolute()), "seed": req.seed, "count": req.val_size,
                           "size_hw": list(hw), "large_hw": list(large_hw)}

    attempts: list[dict[str, Any]] = []
    backend_options = {k: v for k, v in req.backend_options.items() if v is not None}  # what the user gave
    with tempfile.TemporaryDirectory(prefix="occo-build-") as tmp_dir, contextlib.ExitStack() as opened, \
            atomic_output(output, req.force) as tmp_out:
        reference_path = source.fp32 or source.path
        if reference_path != source.fp32:
            logger.info(f"the FP32 export {source.meta.get('source', {}).get('onnx')} is not here: checking against "
                f"{req.onnx.name} itself (its own gate against FP32 is in its sidecar)")
        reference = opened.enter_context(contextlib.closing(backends.reference_backend(reference_path)))
        kept: tuple[_Candidate, GateResult, GateResult | None] | None = None
        stated_gates: dict[Path, GateResult] = {}
        for cand in _candidates(req, plan, Path(tmp_dir), calib_items, steps):
            label = cand.label(precision)
            pre = stated_gates.get(cand.path)
            if pre is None and (req.onnx_only or (spec.name != reference.name and cand.path != reference_path)):
                # The Q/DQ as stated, on ONNX Runtime: what TensorRT computes, and what CPUs with VNNI
                # or AMX compute (exact int32 sums) for a CPU backend whose results differ by CPU. Once
                # per ONNX: OpenVINO's BF16 and FP32 rests are one ONNX computed two ways.
                # The graph's own rest: FP16 only where the casts are in it (TensorRT's).
                in_graph = _Candidate(cand.path, cand.mixed, cand.method, "fp16" if cand.rest == "fp16" else "fp32")
                with contextlib.closing(backends.reference_backend(cand.path)) as stated:
                    pre = compare(reference, stated, val_pairs, plan.min_psnr,
                                  _step(steps, f"checking the {in_graph.label(precision)} ONNX"))
                stated_gates[cand.path] = pre
                logger.info(f"{in_graph.label(precision)} ONNX on ONNX Runtime (Q/DQ as stated): {pre.describe()}")
                attempts.append(_attempt(in_graph, precision, "onnxruntime, Q/DQ as stated", pre))
            if pre is not None and not pre.passed:
                continue
            lint = _lint(builder, cand.path)
            if lint:
                info["lint"] = lint
            if req.onnx_only:
                assert pre is not None
                tmp_out.write_bytes(cand.path.read_bytes())
                kept = (cand, pre, None)
                break
            logger.info(f"building the {label} engine with {spec.name}...")
            built = info.copy()
            options = BuildOptions(precision, plan.profile, backend_options, cand.rest)
            built.update(builder.build(cand.path, tmp_out, options))
            with contextlib.closing(builder.runner(tmp_out, built)) as engine:
                gate = compare(reference, engine, val_pairs, plan.min_psnr, _step(steps, "quality gate"))
            if spec.cpu:
                gate.cpu_class, gate.cpu = cpu_class(), cpu_description()
            logger.info(f"{label} on {spec.name}: {gate.describe()}")
            attempts.append(_attempt(cand, precision, spec.name, gate))
            if gate.passed:
                info.update(built)
                kept = (cand, gate, pre)
                break
        if kept is None:
            raise BuildError(_none_passed(req, precision, attempts))
        cand, gate, pre = kept
        failed = "; ".join(f"{a['configuration']} on {a['checked_on']}: worst {a['psnr_min']} dB"
                           for a in attempts if not a["passed"])
        if failed:
            logger.info(f"kept {cand.label(precision)}, the first to pass; below the gate: {failed}")
        if cand.mixed:
            info["mixed_precision"] = cand.mixed
        if cand.calibration:
            info["calibration"] = cand.calibration
        if pre is not None:
            info["precision_onnx_check"] = pre.as_dict()
        info["build_attempts"] = attempts
        info["quality"] = gate.as_dict()
        info["sha256"] = sha256_file(tmp_out)
        info["build_seconds"] = round(time.perf_counter() - start, 1)
    meta_path = write_sidecar(output, info, force=req.force)
    if req.onnx_only:
        _write_pending_engine(builder, output, info)
    next_step = builder.next_step(str(output), plan.profile) if req.onnx_only else None
    return BuildResult(output, meta_path, info, gate, time.perf_counter() - start, spec.name, plan.why, next_step)


def _attempt(cand: _Candidate, precision: str, checked_on: str, gate: GateResult) -> dict[str, Any]:
    return {"configuration": cand.label(precision), "calib_method": cand.method,
            "rest": cand.rest, "checked_on": checked_on, "psnr_min": gate.as_dict()["psnr_min"],
            "passed": gate.passed}


def _none_passed(req: BuildRequest, precision: str, attempts: list[dict[str, Any]]) -> str:
    tried = "; ".join(f"{a['configuration']} on {a['checked_on']}: worst {a['psnr_min']} dB" for a in attempts)
    tried_methods = {req.calib_method, *req.fallback_methods}
    advice = _gate_advice(precision, [m for m in calib_ranges.METHODS if m not in tried_methods])
    return f"no configuration passed the quality gate, nothing kept (tried {tried}); {advice}"


def _write_pending_engine(builder: EngineBuilder, onnx_path: Path, info: Sidecar) -> None:
    """The sidecar of the engine the printed command builds from ``onnx_path`` (trtexec's plan), so the
    engine runs with ``fuse`` once it is there; an engine that exists already keeps its own."""
    pending = builder.pending_engine(onnx_path, info)
    if pending is None:
        return
    engine, sidecar = pending
    if engine.exists():
        logger.info(f"{engine} exists; its sidecar is left as it is")
        return
    write_sidecar(engine, sidecar, force=True)


def _candidates(req: BuildRequest, plan: _Plan, tmp: Path, calib_items: list[Any] | None,
                steps: Steps | None) -> Iterator[_Candidate]:
    """The configurations to try, fastest and preferred first, made only when reached (a fallback
    method calibrates only when the first method's configurations all failed)."""
    import onnx

    if plan.source.made_for:
        mixed = plan.source.meta.get("mixed_precision")
        yield _Candidate(plan.source.path, mixed, rest=(mixed or {}).get("rest"))
        return
    if plan.precision == "fp16":
        fp16_path = tmp / "fp16.onnx"
        fp32_model = onnx.load(str(req.onnx))
        onnx.save(prec.to_fp16(fp32_model), fp16_path)
        yield _Candidate(plan.builder.precision_input("fp16", req.onnx, fp16_path, None),
                         {"fp32_nodes": len(prec.fp32_nodes(fp32_model))})
        return
    if plan.precision != "int8":
        yield _Candidate(plan.builder.precision_input(plan.precision, req.onnx, None, None))
        return
    assert calib_items is not None
    methods = [req.calib_method, *(m for m in req.fallback_methods if m != req.calib_method)]
    for k, method in enumerate(methods):
        if k:
            logger.info(f"trying {method} ranges next")
        int8_path = tmp / f"int8_{method}.onnx"
        calibration = _quantize(req, method, plan.builder, plan.profile.opt_hw, calib_items,
                                plan.output, int8_path, steps)
        for rest in plan.builder.int8_rests():
            if rest == "fp16":  # in the graph: explicit casts for a strongly typed network
                quantized = onnx.load(str(int8_path))
                rest_path = tmp / f"int8_{method}_fp16_rest.onnx"
                onnx.save(prec.int8_with_fp16_rest(quantized), rest_path)
                yield _Candidate(rest_path, {"rest": "fp16", "fp32_nodes": len(prec.int8_fp32_nodes(quantized))},
                                 method, rest, calibration)
            else:
                yield _Candidate(int8_path, {"rest": rest}, method, rest, calibration)


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


def gate_pairs(folder: Path, calibrate: bool, hw: tuple[int, int], large_hw: tuple[int, int], count: int, seed: int,
               calib_size: int | None = None
               ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[Any] | None]:
    """The gate's frames (``count`` held-out pairs at ``hw``, then the first scaled to ``large_hw``) and,
    when ``calibrate``, the calibration items; a build and a requalification choose them alike."""
    calib = None
    if calibrate:
        items = calib_data.discover(folder)
        calib, val = calib_data.split(items, calib_size=calib_size, val_size=count, seed=seed)
        logger.info(f"calibration set {folder}: {len(items)} frames; {len(calib)} calibrate, {len(val)} check "
            f"(seed {seed}), at {hw[0]}x{hw[1]}")
        pairs = list(calib_data.iter_pairs(val, hw))
    else:
        try:
            items = calib_data.discover(folder)
        except InputError:
            logger.info(f"no pairs in {folder}; checking on frames of the bundled demo clip")
            items = []
        if items:
            _, val = calib_data.split(items, calib_size=None, val_size=count, seed=seed)
            logger.info(f"checking on {len(val)} pairs of {folder}")
            pairs = list(calib_data.iter_pairs(val, hw))
        else:
            pairs = calib_data.sample_pairs(None, hw, count)
    if large_hw != pairs[0][0].shape[:2]:  # a static profile has no larger frame to try
        pairs.append(_large_pair(pairs[0], large_hw))
    return pairs, calib


def _step(steps: Steps | None, task: str) -> Progress | None:
    return None if steps is None else steps(task)


def _quantize(req: BuildRequest, method: str, builder: EngineBuilder, hw: tuple[int, int], items: list[Any],
              output: Path, out_path: Path, steps: Steps | None = None) -> Calibration:
    onnx_sha256 = sha256_file(req.onnx)
    scheme = builder.int8_scheme
    symmetric = prec.SCHEMES[scheme].symmetric
    set_sha = calib_data.set_hash(items, hw)
    key = calib_ranges.cache_key(onnx_sha256, set_sha, method, symmetric)
    # One cache per method and range kind, shared by every backend beside it: an OpenVINO build
    # reuses the ranges an ONNX Runtime build measured when their schemes quantize alike.
    # A fallback method's cache goes beside the asked one's, under the default name.
    default_name = f"calib_{method}_{'symmetric' if symmetric else 'asymmetric'}.json"
    if req.calib_cache is None:
        cache_path = output.with_name(default_name)
    else:
        cache_path = req.calib_cache if method == req.calib_method else req.calib_cache.with_name(default_name)
    found = calib_ranges.load_cache(cache_path, key)
    logger.info(found.message)
    ranges = found.ranges
    if ranges is None:
        logger.info(f"calibrating ({method}) on {len(items)} frames...")
        ranges = calib_ranges.measure(req.onnx, calib_data.iter_pairs(items, hw), method, symmetric,
                                      _step(steps, f"calibrating ({method})"), total=len(items))
        calib_ranges.save_cache(cache_path, key, ranges)
    import onnx

    onnx.save(prec.to_int8(req.onnx, ranges, scheme), out_path)
    return {"set_sha256": set_sha, "method": method, "count": len(items), "seed": req.seed,
            "size_hw": list(hw), "scheme": scheme, "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
            "weights": prec.SCHEMES[scheme].describe_weights(), "cache": str(cache_path.absolute()),
            "cache_reused": found.ranges is not None,
            "tensors": len(ranges)}
