"""``occo-deploy eval``: fidelity to a reference and the IVIF fusion metrics, per engine and pair."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from occo_deploy.cli.common import check_outputs, one_line_errors, out, write_png
from occo_deploy.files import write_json_atomic
from occo_deploy.workspace import DEFAULT_ONNX

GRID_ROWS = 4


@one_line_errors
def evaluate(
    ir: Path = typer.Argument(..., help="Infrared image or folder of images."),
    vis: Path = typer.Argument(..., help="Visible image or folder (pairs matched by file name)."),
    engine: Optional[list[Path]] = typer.Option(None, "--engine", help="Engine to evaluate; repeat for several [default: the one fuse would use]."),
    reference: Path = typer.Option(DEFAULT_ONNX, "--reference", help="FP32 ONNX / engine, or a checkpoint (.pth: PyTorch, needs the export extra)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many pairs."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write per-pair and mean values as JSON."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Write a PNG: IR | visible | fused per engine, a few pairs."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing report or grid."),
) -> None:
    """Compare engines with a reference and score their fusions (EN SD SF AG MI SCD VIF Qabf SSIM PSNR)."""
    from occo_deploy.evaluation import evaluate as ev
    from occo_deploy.evaluation.metrics import FUSION_METRICS
    from occo_deploy.evaluation.pictures import grid as draw_grid
    from occo_deploy.runtime.fuser import Fuser
    from occo_deploy.workspace import default_engine

    check_outputs(force, report, grid, "--grid")
    pairs = ev.load_pairs(ir, vis, limit)
    ref_fn, ref_label = ev.reference_runner(reference)
    fusers = [Fuser(p) for p in (engine or [default_engine()])]
    try:
        labels = [f"{f.engine.name} [{f.info().get('precision')}]" for f in fusers]
        engines = [(label, f.info(), f.fuse) for label, f in zip(labels, fusers)]
        with out.status(f"evaluating {len(engines)} engine(s) on {len(pairs)} pair(s)..."):
            results, frames = ev.evaluate(pairs, engines, ref_fn)
    finally:
        for f in fusers:
            f.close()

    out.print(f"reference: {ref_label}; {len(pairs)} pair(s)")
    fid = Table(title="fidelity to the reference (mean over pairs)", title_justify="left")
    for col in ("engine", "PSNR dB", "SSIM", "max |err|", ">1 level", ">8 levels"):
        fid.add_column(col, justify="left" if col == "engine" else "right")
    for r in results:
        m = r.mean("fidelity")
        fid.add_row(r.label, "identical" if m["psnr"] is None else f"{m['psnr']:.1f}", f"{m['ssim']:.4f}",
                    f"{max(p['fidelity']['max_abs'] for p in r.per_pair)}", f"{100 * m['off_by_more_than_1']:.2f}%",
                    f"{100 * m['off_by_more_than_8']:.2f}%")
    out.print(fid)
    names = FUSION_METRICS
    met = Table(title="fusion metrics (mean over pairs; MI, SCD, VIF, SSIM summed over IR and visible)",
                title_justify="left")
    met.add_column("engine")
    for name in names:
        met.add_column(name, justify="right")
    for r in results:
        m = r.mean("metrics")
        met.add_row(r.label, *("-" if m[n] is None else f"{m[n]:.3f}" for n in names))
    out.print(met)
    if report is not None:
        write_json_atomic(report, {"command": "eval", "reference": ref_label, "pairs": [p[0] for p in pairs],
                                   "conventions": "see occo_deploy/evaluation/metrics.py",
                                   "engines": [r.as_dict() for r in results]}, force)
        out.print(f"report: {report}")
    if grid is not None:
        rows = [[p[1], p[2], *(frames[label][k] for label in labels)] for k, p in enumerate(pairs[:GRID_ROWS])]
        image = draw_grid(rows, ["infrared", "visible", *labels], [p[0] for p in pairs[:GRID_ROWS]])
        write_png(grid, image, force)
        out.print(f"grid: {grid} ({image.shape[1]}x{image.shape[0]})")
