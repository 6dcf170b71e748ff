"""``occo-deploy eval``: fidelity to a reference and the IVIF fusion metrics, per engine and pair."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from occo_deploy.cli.common import check_outputs, one_line_errors, out, write_png
from occo_deploy.cli.options import Force, InferencePrecision, Provider, Report, Threads
from occo_deploy.errors import InputError
from occo_deploy.files import check_writable, write_bytes_atomic, write_json_atomic
from occo_deploy.workspace import DEFAULT_ONNX

GRID_ROWS = 4


def _fmt(value: float | None) -> str:
    """Three significant digits, at most 5 characters for these metrics' ranges (80-column tables)."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{max(0, 2 - math.floor(math.log10(abs(value))))}f}"


@one_line_errors
def evaluate(
    ir: Path | None = typer.Argument(None, help="Infrared image, folder of images, or video."),
    vis: Path | None = typer.Argument(None, help="Visible image, folder (pairs matched by file name), or video."),
    dataset: list[str] | None = typer.Option(None, "--dataset", metavar="NAME=IR_DIR,VIS_DIR", help="A data set: a column block of the table; repeat for several."),
    engine: list[Path] | None = typer.Option(None, "--engine", metavar="ENGINE", help="Engine to evaluate; repeat for several [default: the one fuse would use]."),
    fused: list[str] | None = typer.Option(None, "--fused", metavar="NAME=DIR", help="Another method's fused images (DIR/<data set>/<pair>.* or DIR/<pair>.*): a row beside the engines; repeat."),
    convention: str = typer.Option("cddfuse", "--convention", metavar="NAME", help="Metric definitions: cddfuse (MMIF-CDDFuse's evaluator), vifb (VIFB's MATLAB), textbook."),
    reference: Path = typer.Option(DEFAULT_ONNX, "--reference", help="FP32 ONNX / engine, or a checkpoint (.pth: PyTorch, needs the export extra)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many pairs per data set (videos: frames, default 300)."),
    provider: Provider = None,
    threads: Threads = None,
    inference_precision: InferencePrecision = None,
    report: Report = None,
    table: Path | None = typer.Option(None, "--table", help="Write the table as in a paper: .md, .csv or .tex."),
    grid: Path | None = typer.Option(None, "--grid", help="Write a PNG: IR | visible | fused per engine, a few pairs."),
    force: Force = False,
) -> None:
    """Compare engines with a reference and score their fusions (EN SD SF AG MI SCD VIF Qabf SSIM PSNR);
    on two videos, how still each engine's fused video holds, per stretch."""
    from occo_deploy.fusing.options import RunOptions
    from occo_deploy.video.media import is_video

    run = RunOptions(provider=provider, threads=threads, inference_precision=inference_precision)
    if ir is not None and vis is not None and ir.is_file() and vis.is_file() and is_video(ir) and is_video(vis):
        images_only = [name for name, given in (("--dataset", dataset), ("--fused", fused), ("--table", table),
                                                ("--grid", grid), ("--reference", reference != DEFAULT_ONNX),
                                                ("--convention", convention != "cddfuse")) if given]
        if images_only:
            raise InputError(f"{images_only[0]} is for image pairs; on two videos eval measures how still the "
                             "fused video holds: drop it")
        _video(ir, vis, list(engine or []), run, limit, report, force)
        return
    from occo_deploy.evaluation.job import EvalRequest, dataset_specs, run_eval
    from occo_deploy.evaluation.metrics import CONVENTIONS, FUSION_METRICS
    from occo_deploy.evaluation.pictures import grid as draw_grid
    from occo_deploy.evaluation.tables import format_for, render

    check_outputs(force, report, grid, "--grid")
    if table is not None:
        format_for(table)
        check_writable(table, force)
    request = EvalRequest(dataset_specs(ir, vis, dataset or []), engines=list(engine or []), fused=list(fused or []),
                          convention=convention, reference=reference, limit=limit, run=run)
    with out.status("evaluating...") as status:
        result = run_eval(request, progress=lambda k, n: status.update(f"evaluating: {k}/{n} pairs"))

    engines = result.engine_labels
    if engines:
        out.print(f"reference: {result.reference_label}")
    for d in result.datasets:
        rows = result.results[d.name]
        out.print(f"{d.name}: {len(d.pairs)} pair(s)")
        if engines:
            out.print(_fidelity_table(rows[: len(engines)]))
        out.print(_metrics_table(rows, FUSION_METRICS, convention))
        for r in rows:
            if r.missing:
                out.print(f"note: {r.label} has no image for {len(r.missing)} of {len(d.pairs)} {d.name} pair(s) "
                          f"(first: {r.missing[0]}): its {d.name} cells show -", soft_wrap=True)
    if table is not None:
        caption = f"Fusion metrics ({convention} convention: {CONVENTIONS[convention][1]}), mean over pairs"
        write_bytes_atomic(table, render(result.means(), FUSION_METRICS, format_for(table), caption).encode(), force)
        out.print(f"table: {table}")
    if report is not None:
        write_json_atomic(report, result.as_dict(), force)
        out.print(f"report: {report}")
    if grid is not None:
        images, titles, names = result.grid(GRID_ROWS)
        image = draw_grid(images, titles, names)
        write_png(grid, image, force)
        out.print(f"grid: {grid} ({image.shape[1]}x{image.shape[0]})")


def _video(ir: Path, vis: Path, engines: list[Path], run: Any, limit: int | None, report: Path | None,
           force: bool) -> None:
    """``eval IR.mp4 VIS.mp4``: the temporal table (80 columns) and the JSON report with every step."""
    from occo_deploy.evaluation.temporal import STATIC_THRESHOLD
    from occo_deploy.evaluation.video import evaluate_video
    from occo_deploy.workspace import default_engine

    check_outputs(force, report, None, "--grid")
    with out.status("evaluating...") as status:
        result = evaluate_video(ir, vis, engines or [default_engine()], run, limit=limit,
                                progress=lambda k, n: status.update(f"evaluating: {k}/{n} frames"))
    out.print(f"{result.frames} frame pairs; static: both inputs change < {STATIC_THRESHOLD:g} grey levels",
              soft_wrap=True)
    t = Table(box=box.SIMPLE, pad_edge=False)
    for name in ("engine", "stretch", "worst", "mean", "abs", "inputs", "PSNR"):
        t.add_column(name, justify="left" if name in ("engine", "stretch") else "right")
    for r in result.runs:
        d = r.stability.as_dict()
        t.add_row(r.engine, r.stretch, f"{d['worst_shift']:.2f}", f"{d['mean_shift']:.2f}", f"{d['mean_abs']:.2f}",
                  f"{d['inputs_mean_abs']:.2f}", "-" if r.psnr_vs_frame is None else f"{r.psnr_vs_frame:.1f} dB")
    out.print(t)
    out.print("worst, mean: |signed mean change| of the fused luma on static pixels per\n"
              "frame step; abs: its mean |change|; inputs: theirs (grey levels);\n"
              "PSNR: against --stretch frame")
    if report is not None:
        write_json_atomic(report, result.as_dict(), force)
        out.print(f"report: {report}")


def _fidelity_table(rows: list[Any]) -> Table:
    """Each engine against the reference, mean over pairs (``EngineEval`` rows)."""
    table = Table(title="fidelity to the reference (mean over pairs)", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=0, pad_edge=False)
    for col in ("engine", "PSNR dB", "SSIM", "max |err|", ">1 level", ">8 levels"):
        table.add_column(col, justify="left" if col == "engine" else "right",
                         overflow="fold" if col == "engine" else "ellipsis", no_wrap=col != "engine")
    for r in rows:
        m = r.mean("fidelity")
        table.add_row(r.label, "identical" if m["psnr"] is None else f"{m['psnr']:.1f}", f"{m['ssim']:.4f}",
                      f"{max(p['fidelity']['max_abs'] for p in r.per_pair)}",
                      f"{100 * (m['off_by_more_than_1'] or 0):.2f}%", f"{100 * (m['off_by_more_than_8'] or 0):.2f}%")
    return table


def _metrics_table(rows: list[Any], names: Sequence[str], convention: str) -> Table:
    """Each engine's and method's fusion metrics, mean over pairs."""
    table = Table(title=f"fusion metrics, {convention} convention (mean over pairs)", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=0, pad_edge=False)
    table.add_column("method", overflow="fold", min_width=12)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        m = r.mean("metrics")
        table.add_row(r.label, *(_fmt(m.get(n)) for n in names))
    return table
