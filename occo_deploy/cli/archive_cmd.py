"""``occo-deploy archive``: many pairs and videos, in this process or on Ray, past bad items, resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from occo_deploy.cli.common import EXIT_SOME_FAILED, engine_label, err, one_line_errors, out
from occo_deploy.cli.options import (
    Align,
    Batch,
    Engine,
    Force,
    IrScale,
    MaxSide,
    Provider,
    Quiet,
    Ray,
    Report,
    Stretch,
    Threads,
)
from occo_deploy.cli.progress import Bars
from occo_deploy.errors import InputError
from occo_deploy.files import check_writable, write_json_atomic

#: How many failures are listed on the terminal; the report lists them all.
SHOWN_FAILURES = 20
LOCAL = "local"


def ray_argv(argv: list[str]) -> list[str]:
    """``--ray`` takes an optional ADDRESS: given alone (or before another option or a path), it
    means a local instance. Click has no optional option values, so the CLI fills in ``local``
    before parsing. A following token is the address only if it looks like one (host:port,
    ray://..., auto)."""
    fixed = list(argv)
    for k, token in enumerate(fixed):
        if token == "--ray":
            following = fixed[k + 1] if k + 1 < len(fixed) else ""
            if not (":" in following or following == "auto"):
                fixed.insert(k + 1, LOCAL)
            break
    return fixed


@one_line_errors
def archive(
    ir_root: Path | None = typer.Argument(None, help="Infrared root folder (pairs by relative path)."),
    vis_root: Path | None = typer.Argument(None, help="Visible root folder."),
    manifest: Path | None = typer.Option(None, "--manifest", help="CSV with header ir,vis[,output] instead of two roots."),
    output: Path = typer.Option(..., "-o", "--output", help="Output root; the input tree is mirrored there."),
    engine: Engine = None,
    ray: Ray = None,
    workers: int | None = typer.Option(None, "--workers", min=1, help="Ray actors, each holding one engine [default: one per node, or per GPU share]."),
    threads_per_worker: int | None = typer.Option(None, "--threads-per-worker", min=1, help="Inference threads per actor [default: cores / workers]."),
    gpus_per_worker: float | None = typer.Option(None, "--gpus-per-worker", min=0.01, help="GPUs per actor (with a GPU engine)."),
    provider: Provider = None,
    batch: Batch = 1,
    threads: Threads = None,
    resume: bool = typer.Option(False, "--resume", help="Skip items whose output exists (outputs are written whole or not at all)."),
    force: Force = False,
    ir_scale: IrScale = None,
    max_side: MaxSide = None,
    stretch: Stretch = None,
    align: Align = None,
    report: Report = None,
    quiet: Quiet = False,
) -> None:
    """Fuse an archive of IR/visible pairs and videos; bad items are listed and skipped (exit 8)."""
    from occo_deploy.archive import items as archive_items
    from occo_deploy.archive.job import ItemResult, RunSettings, run_archive
    from occo_deploy.fusing.options import FrameOptions, RunOptions
    from occo_deploy.workspace import default_engine

    if manifest is not None and (ir_root is not None or vis_root is not None):
        raise InputError("give either IR_ROOT VIS_ROOT or --manifest FILE.csv, not both")
    if manifest is None and (ir_root is None or vis_root is None):
        raise InputError("give two root folders, IR_ROOT VIS_ROOT, or --manifest FILE.csv")
    if resume and force:
        raise InputError("--resume keeps existing outputs and --force replaces them; choose one")
    if ray is None and (workers or threads_per_worker or gpus_per_worker):
        raise InputError("--workers, --threads-per-worker and --gpus-per-worker are for --ray")
    if report is not None:
        check_writable(report, force)
    if output.exists() and not output.is_dir():
        raise InputError(f"output {output} is a file; give an output folder")
    if manifest is not None:
        found = archive_items.read_manifest(manifest, output)
    else:
        assert ir_root is not None and vis_root is not None  # checked above
        found = archive_items.discover(ir_root, vis_root, output)
    from occo_deploy.runtime.irscale import IrScale

    IrScale.parse(ir_scale)  # a bad value is one line here, not one failure per item
    if align is not None:
        from occo_deploy.registration.rig import Rig

        Rig.load(align)  # a bad rig file fails here, once, not in every worker
    settings = RunSettings(str((engine or default_engine()).resolve()),
                           RunOptions(provider=provider, threads=threads, batch=batch),
                           FrameOptions(ir_scale=ir_scale, max_side=max_side, stretch=stretch,
                                        align=str(align.resolve()) if align else None), force)
    ray_options = None
    if ray is not None:
        from occo_deploy.archive.ray_runner import RayOptions

        ray_options = RayOptions(None if ray == LOCAL else ray, workers, threads_per_worker, gpus_per_worker)
    frames = 0

    def count_frames(item: ItemResult) -> None:
        nonlocal frames
        frames += item.frames
        bars.note("fusing items", f"{frames} frames")

    with Bars(quiet) as bars:
        result = run_archive(found, output, settings, resume=resume, ray=ray_options,
                             progress=bars.step("fusing items"), on_result=count_frames)
    failures = [r for r in result.results if r.status == "failed"]
    for r in failures[:SHOWN_FAILURES]:
        err.print(f"failed: {r.key}: {r.error}", soft_wrap=True)
    if len(failures) > SHOWN_FAILURES:
        err.print(f"... and {len(failures) - SHOWN_FAILURES} more (all in --report)", soft_wrap=True)
    if result.partials_removed:
        out.print(f"removed {result.partials_removed} unfinished output(s) a killed run left")
    where = f"Ray {result.ray['version']}, {result.workers['count']} worker(s) x {result.workers['threads']} " \
            f"thread(s)" if result.ray else "this process"
    if not quiet:
        out.print(f"engine: {engine_label(result.engine)} on {where}", soft_wrap=True)
    if report is not None:
        write_json_atomic(report, {"command": "archive", "output": str(output), **result.as_dict()}, force)
        out.print(f"report: {report}")
    out.print(result.summary())
    if failures:
        raise typer.Exit(EXIT_SOME_FAILED)
