"""``occo-deploy bench``: engine-only timing on real pairs, several engines in one table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from occo_deploy.cli.common import check_outputs, err, one_line_errors, out, write_png
from occo_deploy.cli.options import CudaGraph, Force, InferencePrecision, InFlight, Provider, Report, Threads
from occo_deploy.errors import InputError
from occo_deploy.files import write_json_atomic


@one_line_errors
def bench(
    engines: list[Path] | None = typer.Argument(None, help="Engines or exported ONNX files [default: the one fuse would use]."),
    shape: str = typer.Option("480x640", "--shape", help="Frame size HxW (real pairs are resized and cropped to it)."),
    batch: str = typer.Option("1", "--batch", help="Frames per call; a comma list sweeps, e.g. 1,2,4,8."),
    provider: Provider = None,
    in_flight: InFlight = None,
    cuda_graph: CudaGraph = False,
    inference_precision: InferencePrecision = None,
    warmup: float = typer.Option(2.0, "--warmup", min=0.0, help="Warm-up seconds (at least one call)."),
    duration: float = typer.Option(10.0, "--duration", min=0.0, help="Measured seconds per engine."),
    pairs: Path | None = typer.Option(None, "--pairs", help="Folder of real pairs (ir/ + vi/) [default: the bundled clip]."),
    threads: Threads = None,
    report: Report = None,
    histogram: Path | None = typer.Option(None, "--histogram", help="Write a latency histogram PNG."),
    force: Force = False,
) -> None:
    """Time engines on real frames: warm-up, then a fixed duration; latency percentiles and throughput."""
    from occo_deploy.calibration.data import sample_pairs
    from occo_deploy.evaluation.pictures import histogram as draw_histogram
    from occo_deploy.fusing import bench as bench_lib
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.fusing.options import RunOptions
    from occo_deploy.interface.profile import Profile
    from occo_deploy.workspace import default_engine

    check_outputs(force, report, histogram, "--histogram")
    batches = parse_batches(batch)
    run = RunOptions(provider=provider, threads=threads, batch=max(batches), in_flight=in_flight,
                     cuda_graph=cuda_graph, inference_precision=inference_precision)
    hw = Profile.from_options(shape=shape).opt_hw
    frames = sample_pairs(pairs, hw, max(8, *batches))
    results = []
    for engine in engines or [default_engine()]:
        with Fuser(engine, **run.kwargs()) as fuser:
            for n in batches:
                with out.status(f"timing {engine}, batch {n} ({warmup:g} s warm-up, {duration:g} s)..."):
                    results.append(bench_lib.run(fuser, frames, batch=n, warmup_s=warmup, duration_s=duration))
    base = results[0]
    # Engines as #1, #2 with a legend: engine file names would not fit 80 columns beside the numbers.
    keys = list(dict.fromkeys(r.engine["artifact"] for r in results))
    table = Table(title=f"{len(frames)} real pairs at {hw[0]}x{hw[1]}; latency per batch (ms), submit to "
                  "frames out", title_justify="left", box=box.SIMPLE_HEAD, padding=0,
                  pad_edge=False)
    for col in ("engine", "precision", "batch", "calls", "fps", "vs first", "mean", "p50", "p90", "p99", "max"):
        table.add_column(col, justify="left" if col in ("engine", "precision") else "right", no_wrap=True)
    for r in results:
        lat = r.latency
        table.add_row(f"#{keys.index(r.engine['artifact']) + 1}", str(r.engine.get("precision")), str(r.shape[0]),
                      str(r.calls), f"{r.fps:.2f}", f"{r.fps / base.fps:.2f}x" if base.fps else "-",
                      *(f"{lat[k]:.1f}" for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")))
    out.print(table)
    for k, artifact in enumerate(keys):
        info = next(r.engine for r in results if r.engine["artifact"] == artifact)
        out.print(f"#{k + 1} {artifact} ({info.get('backend')}, {info.get('provider')})", soft_wrap=False)
    out.print("latency in ms; stages p50 per batch: " + "; ".join(
        f"{_label(r, len(batches) > 1)}: " + ", ".join(f"{s} {v['p50_ms']:.1f}" for s, v in r.stages.items())
        for r in results))
    for r in results:
        if r.unstable:
            err.print(f"warning: {Path(r.engine['artifact']).name}: unstable measurement (coefficient of variation "
                      f"{100 * r.cov:.0f}% over {r.calls} calls); run longer (--duration) on a quieter machine")
    if report is not None:
        write_json_atomic(report, {"command": "bench", "shape_hw": list(hw), "batches": batches, "warmup_s": warmup,
                                   "duration_s": duration, "pairs": str(pairs or "bundled clip"),
                                   "results": [r.as_dict() for r in results]}, force)
        out.print(f"report: {report}")
    if histogram is not None:
        write_png(histogram, draw_histogram({_label(r, len(batches) > 1): r.samples_ms for r in results}), force)
        out.print(f"histogram: {histogram}")


def parse_batches(text: str) -> list[int]:
    """"4" or "1,2,4,8" -> batch sizes, each at least 1."""
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise InputError(f"--batch takes positive integers, one or a comma list like 1,2,4 (got {text!r})")
    return values


def _label(result: Any, with_batch: bool) -> str:
    """A result's name in tables and histograms (a ``BenchResult``)."""
    name = Path(result.engine["artifact"]).name
    return f"{name} b{result.shape[0]}" if with_batch else name
