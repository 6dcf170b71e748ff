"""``occo-deploy build``: export/occo.onnx -> an FP32, FP16 or INT8 engine, quality-gated."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from occo_deploy.cli.common import err, human_bytes, one_line_errors, out
from occo_deploy.errors import InputError
from occo_deploy.workspace import CALIBRATION_DIR, DEFAULT_ONNX

CPU_FP16_NOTE = (
    "note: FP16 on ONNX Runtime's CPU provider is for checking the artifact TensorRT builds, not for speed: "
    "x86 CPUs have no FP16 arithmetic there, so ONNX Runtime casts to FP32 around most operators "
    "(slower than --fp32). For speed on a CPU: --backend openvino with --bf16 or --int8 (pip install 'occo-deploy[openvino]')."
)


@one_line_errors
def build(
    onnx: Path = typer.Argument(DEFAULT_ONNX, help="FP32 ONNX from occo-deploy export, or a precision ONNX from --onnx-only."),
    fp32: bool = typer.Option(False, "--fp32", help="FP32 engine."),
    fp16: bool = typer.Option(False, "--fp16", help="Mixed FP16 engine (norms, softmax, reductions, I/O in FP32)."),
    bf16: bool = typer.Option(False, "--bf16", help="BF16 compute on a CPU that has it (OpenVINO)."),
    int8: bool = typer.Option(False, "--int8", help="INT8 Q/DQ engine calibrated on real pairs."),
    backend: str = typer.Option("auto", "--backend", help="auto | tensorrt | onnxruntime | openvino."),
    calib: Path = typer.Option(CALIBRATION_DIR, "--calib", help="Folder with ir/ and vi/ pairs (or sub-folders that have them)."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax | entropy | percentile."),
    calib_size: Optional[int] = typer.Option(None, "--calib-size", min=1, help="Frames to calibrate on [default: all but the check pairs]."),
    calib_cache: Optional[Path] = typer.Option(None, "--calib-cache", help="Range cache [default: calib_<method>_<symmetric or asymmetric>.json beside the engine, shared by backends]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration / check split."),
    shape: Optional[str] = typer.Option(None, "--shape", help="Static HxW (batch 1)."),
    min_shape: Optional[str] = typer.Option(None, "--min", help="Profile minimum NxHxW."),
    opt_shape: Optional[str] = typer.Option(None, "--opt", help="Profile optimum NxHxW (calibration size)."),
    max_shape: Optional[str] = typer.Option(None, "--max", help="Profile maximum NxHxW."),
    workspace: Optional[float] = typer.Option(None, "--workspace", min=0.0625, help="TensorRT workspace limit (GiB)."),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="TensorRT timing cache to load and save."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Engine path [default: engines/occo_<precision>_<backend>...]."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing engine."),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", help="Quality gate in dB vs FP32 [default: 40 FP16/FP32, 35 INT8]."),
    onnx_only: bool = typer.Option(False, "--onnx-only", help="Write the precision ONNX TensorRT would parse (checked and gated here, no TensorRT needed); build the plan from it on the GPU machine."),
) -> None:
    """Build an engine for this machine from the exported ONNX; every build passes a quality gate."""
    from occo_deploy.engines.build import BuildRequest, build_engine, source_onnx
    from occo_deploy.engines.builders import choose_backend
    from occo_deploy.engines.profile import Profile

    chosen = [name for name, on in (("fp32", fp32), ("fp16", fp16), ("bf16", bf16), ("int8", int8)) if on]
    made_for = source_onnx(onnx).meta.get("target")  # a precision ONNX from --onnx-only
    if len(chosen) > 1 or not chosen and not made_for:
        raise InputError("choose one precision: --fp32, --fp16, --bf16 or --int8")
    precision = chosen[0] if chosen else None
    profile = Profile.from_options(shape, min_shape, opt_shape, max_shape)
    if backend == "auto" and (made_for or onnx_only):
        backend_name, why = made_for or "tensorrt", "the ONNX is for it" if made_for else "what --onnx-only is for"
    else:
        backend_name, why = choose_backend(backend)
    out.print(f"backend: {backend_name} ({why})")
    if backend_name == "onnxruntime" and precision == "fp16":
        err.print(CPU_FP16_NOTE, soft_wrap=True)
    request = BuildRequest(onnx=onnx, precision=precision, backend=backend_name, profile=profile, output=output,
                           force=force, calib_dir=calib, calib_method=calib_method, calib_size=calib_size,
                           calib_cache=calib_cache, seed=seed, min_psnr=min_psnr, workspace_gib=workspace,
                           timing_cache=timing_cache, onnx_only=onnx_only)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    # Calibration and the gates take minutes on a CPU: a bar each (drawn on terminals only).
    columns = (TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())
    with Progress(*columns, console=out, transient=True) as bars:
        tasks: dict[str, object] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bars.add_task(task, total=total)
            bars.update(tasks[task], completed=done)  # type: ignore[arg-type]

        result = build_engine(request, log=lambda message: bars.console.print(message, soft_wrap=True),
                              progress=progress)
    what = "wrote" if onnx_only else "built"
    out.print(f"{what} {result.engine} ({human_bytes(result.engine.stat().st_size)}) in {result.seconds:.0f} s; "
              f"sidecar {result.sidecar}")
    if onnx_only:
        out.print(f"next, {result.info['purpose'].split('; ', 1)[1]}", soft_wrap=True)
    else:
        speed = result.gate.speedup
        if speed is not None:
            out.print(f"speed on this machine: {speed:.2f}x the FP32 export on ONNX Runtime's CPU provider "
                      "(the gate's frames, run one by one by both)", soft_wrap=True)
        out.print(f"next: occo-deploy fuse IR VIS --engine {result.engine} (fuse picks the newest engine in "
                  "engines/ by itself)", soft_wrap=True)
