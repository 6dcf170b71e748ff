"""``occo-deploy build``: export/occo.onnx -> an FP32, FP16, BF16 or INT8 engine, quality-gated."""

from __future__ import annotations

from pathlib import Path

import typer

from occo_deploy.cli.common import human_bytes, one_line_errors, out
from occo_deploy.cli.options import Backend, Force, TimingCache, Workspace
from occo_deploy.cli.progress import Bars
from occo_deploy.workspace import CALIBRATION_DIR, DEFAULT_ONNX


@one_line_errors
def build(
    onnx: Path = typer.Argument(DEFAULT_ONNX, help="FP32 ONNX from occo-deploy export, or a precision ONNX from --onnx-only."),
    fp32: bool = typer.Option(False, "--fp32", help="FP32 engine."),
    fp16: bool = typer.Option(False, "--fp16", help="Mixed FP16 engine (norms, softmax, reductions, I/O in FP32)."),
    bf16: bool = typer.Option(False, "--bf16", help="BF16 compute on a CPU that has it (OpenVINO)."),
    int8: bool = typer.Option(False, "--int8", help="INT8 Q/DQ engine calibrated on real pairs."),
    backend: Backend = "auto",
    calib: Path = typer.Option(CALIBRATION_DIR, "--calib", help="Folder with ir/ and vi/ pairs (or sub-folders that have them)."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax | entropy | percentile."),
    calib_fallback: bool = typer.Option(True, "--calib-fallback/--no-calib-fallback", help="INT8: when no configuration of --calib-method passes the gate, try percentile ranges (calibrated once, then cached)."),
    calib_size: int | None = typer.Option(None, "--calib-size", min=1, help="Frames to calibrate on [default: all but the check pairs]."),
    calib_cache: Path | None = typer.Option(None, "--calib-cache", help="Range cache [default: calib_<method>_<symmetric or asymmetric>.json beside the engine, shared by backends]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration / check split."),
    shape: str | None = typer.Option(None, "--shape", help="Static HxW (batch 1)."),
    min_shape: str | None = typer.Option(None, "--min", help="Profile minimum NxHxW."),
    opt_shape: str | None = typer.Option(None, "--opt", help="Profile optimum NxHxW (calibration size)."),
    max_shape: str | None = typer.Option(None, "--max", help="Profile maximum NxHxW."),
    workspace: Workspace = None,
    timing_cache: TimingCache = None,
    output: Path | None = typer.Option(None, "-o", "--output", help="Engine path [default: engines/occo_<precision>_<backend>...]."),
    force: Force = False,
    min_psnr: float | None = typer.Option(None, "--min-psnr", help="Quality gate in dB vs FP32 [default: 40 FP16/FP32, 35 INT8]."),
    onnx_only: bool = typer.Option(False, "--onnx-only", help="Write the precision ONNX TensorRT would parse (checked and gated here, no TensorRT needed); build the plan from it on the GPU machine."),
) -> None:
    """Build an engine for this machine from the exported ONNX; every build passes a quality gate."""
    from occo_deploy import api
    from occo_deploy.errors import InputError

    chosen = [name for name, on in (("fp32", fp32), ("fp16", fp16), ("bf16", bf16), ("int8", int8)) if on]
    if len(chosen) > 1:
        raise InputError("choose one precision: --fp32, --fp16, --bf16 or --int8")
    # Calibration and the gates take minutes on a CPU: a bar each (drawn on terminals only).
    with Bars(console=out) as bars:
        result = api.build(onnx, precision=chosen[0] if chosen else None, backend=backend, calib=calib,
                           calib_method=calib_method, calib_fallback=calib_fallback, calib_size=calib_size,
                           calib_cache=calib_cache, seed=seed, shape=shape, min_shape=min_shape,
                           opt_shape=opt_shape, max_shape=max_shape, workspace=workspace, timing_cache=timing_cache,
                           output=output, force=force, min_psnr=min_psnr, onnx_only=onnx_only, steps=bars.step)
    out.print(f"{'wrote' if onnx_only else 'built'} {result.engine} ({human_bytes(result.engine.stat().st_size)}) "
              f"in {result.seconds:.0f} s; sidecar {result.sidecar}")
    if result.next_step:
        out.print(f"next, on the GPU machine: {result.next_step}", soft_wrap=True)
        return
    if result.gate.speedup is not None:
        out.print(f"speed on this machine: {result.gate.speedup:.2f}x the FP32 export on ONNX Runtime's CPU "
                  "provider (the gate's frames, run one by one by both)", soft_wrap=True)
    out.print(f"next: occo-deploy fuse IR VIS --engine {result.engine} (fuse picks the newest engine in "
              "engines/ by itself)", soft_wrap=True)
