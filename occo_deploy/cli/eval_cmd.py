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
    ir: Path | None = typer.Argument(None, help="Infrared image or folder of images."),
    vis: Path | None = typer.Argument(None, help="Visible image or folder (pairs matched by file name)."),
    dataset: list[str] | None = typer.Option(None, "--dataset", metavar="NAME=IR_DIR,VIS_DIR", help="A data set: a column block of the table; repeat for several."),
    engine: list[Path] | None = typer.Option(None, "--engine", metavar="ENGINE", help="Engine to evaluate; repeat for several [default: the one fuse would use]."),
    fused: list[str] | None = typer.Option(None, "--fused", metavar="NAME=DIR", help="Another method's fused images (DIR/<data set>/<pair>.* or DIR/<pair>.*): a row beside the engines; repeat."),
    convention: str = typer.Option("cddfuse", "--convention", metavar="NAME", help="Metric definitions: cddfuse (MMIF-CDDFuse's evaluator), vifb (VIFB's MATLAB), textbook."),
    reference: Path = typer.Option(DEFAULT_ONNX, "--reference", help="FP32 ONNX / engine, or a checkpoint (.pth: PyTorch, needs the export extra)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many pairs per data set."),
    provider: Provider = None,
    threads: Threads = None,
    inference_precision: InferencePrecision = None,
    report: Report = None,
    table: Path | None = typer.Option(None, "--table", help="Write the table as in a paper: .md, .csv or .tex."),
    grid: Path | None = typer.Option(None, "--grid", help="Write a PNG: IR | visible | fused per engine, a few pairs."),
    force: Force = False,
) -> None:
    """Compare engines with a reference and score their fusions (EN SD SF AG MI SCD VIF Qabf SSIM PSNR)."""
    from occo_deploy.evaluation.job import EvalRequest, dataset_specs, run_eval
    from occo_deploy.evaluation.metrics import CONVENTIONS, FUSION_METRICS
    from occo_deploy.evaluation.pictures import grid as draw_grid
    from occo_deploy.evaluation.tables import format_for, render
    from occo_deploy.fusing.options import RunOptions

    check_outputs(force, report, grid, "--grid")
    if table is not None:
        format_for(table)
        check_writable(table, force)
    request = EvalRequest(dataset_specs(ir, vis, dataset or []), engines=list(engine or []), fused=list(fused or []),
                          convention=convention, reference=reference, limit=limit,
                          run=RunOptions(provider=provider, threads=threads, inference_precision=inference_precision))
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
