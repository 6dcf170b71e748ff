"""``occo-deploy archive``: many pairs and videos, in this process or on Ray, past bad items, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from occo_deploy.cli.common import EXIT_SOME_FAILED, err, one_line_errors, out
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
    ir_root: Optional[Path] = typer.Argument(None, help="Infrared root folder (pairs by relative path)."),
    vis_root: Optional[Path] = typer.Argument(None, help="Visible root folder."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="CSV with header ir,vis[,output] instead of two roots."),
    output: Path = typer.Option(..., "-o", "--output", help="Output root; the input tree is mirrored there."),
    engine: Optional[Path] = typer.Option(None, "--engine", help="Exported .onnx or built engine [default: newest in engines/, else export/occo.onnx]."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                      help="Run on Ray: alone, a local instance; with ADDRESS (host:port), that cluster."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray actors, each holding one engine [default: one per node, or per GPU share]."),
    threads_per_worker: Optional[int] = typer.Option(None, "--threads-per-worker", min=1, help="Inference threads per actor [default: cores / workers]."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", min=0.01, help="GPUs per actor (with a GPU engine)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Where an .onnx runs: cpu, cuda, tensorrt, openvino [default: from the sidecar, else cpu]."),
    batch: int = typer.Option(1, "--batch", min=1, help="Image pairs per inference call (and per Ray task)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads without --ray [default: all]."),
    resume: bool = typer.Option(False, "--resume", help="Skip items whose output exists (outputs are written whole or not at all)."),
    force: bool = typer.Option(False, "--force", help="Fuse every item again, replacing existing outputs."),
    ir_scale: Optional[str] = typer.Option(None, "--ir-scale", help="16-bit/float infrared to 8 bits: percentile[:LO,HI], minmax, fixed:MIN,MAX (see fuse)."),
    max_side: Optional[int] = typer.Option(None, "--max-side", min=16, help="Fuse frames whose longer side exceeds N at that size, then scale back up."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the per-item report as JSON here."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Fuse an archive of IR/visible pairs and videos; bad items are listed and skipped (exit 8)."""
    from occo_deploy.archive import items as archive_items
    from occo_deploy.archive.job import RunSettings, run_archive
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
    found = archive_items.read_manifest(manifest, output) if manifest is not None else \
        archive_items.discover(ir_root, vis_root, output)  # type: ignore[arg-type]
    from occo_deploy.runtime.irscale import IrScale

    IrScale.parse(ir_scale)  # a bad value is one line here, not one failure per item
    settings = RunSettings(str((engine or default_engine()).resolve()), provider, threads, batch, force, ir_scale,
                           max_side)
    ray_options = None
    if ray is not None:
        from occo_deploy.archive.ray_runner import RayOptions

        ray_options = RayOptions(None if ray == LOCAL else ray, workers, threads_per_worker, gpus_per_worker)
    with _Bar(quiet, len(found)) as bar:
        result = run_archive(found, output, settings, resume=resume, ray=ray_options, progress=bar.update)
    failures = [r for r in result.results if r.status == "failed"]
    for r in failures[:SHOWN_FAILURES]:
        err.print(f"failed: {r.key}: {r.error}", soft_wrap=True)
    if len(failures) > SHOWN_FAILURES:
        err.print(f"... and {len(failures) - SHOWN_FAILURES} more (all in --report)", soft_wrap=True)
    if result.partials_removed:
        out.print(f"removed {result.partials_removed} unfinished output(s) a killed run left")
    where = f"Ray {result.ray['version']}, {result.workers['count']} worker(s) x {result.workers['threads']} " \
            f"thread(s)" if result.ray else "this process"
    out.print(f"engine: {result.engine.get('artifact')} [{result.engine.get('backend')} {result.engine.get('provider')}, "
              f"{result.engine.get('precision')}] on {where}", soft_wrap=True)
    if report is not None:
        write_json_atomic(report, {"command": "archive", "output": str(output), **result.as_dict()}, force)
        out.print(f"report: {report}")
    out.print(result.summary())
    if failures:
        raise typer.Exit(EXIT_SOME_FAILED)


class _Bar:
    """Items and frames done, as a progress bar on stderr (nothing when quiet)."""

    def __init__(self, quiet: bool, total: int) -> None:
        self._bar: Progress | None = None if quiet else Progress(
            TextColumn("fusing items"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[frames]} frames"),
            TimeRemainingColumn(), console=err, transient=True)
        self._total = total
        self._frames = 0
        self._task: Any = None

    def __enter__(self) -> _Bar:
        if self._bar is not None:
            self._bar.__enter__()
            self._task = self._bar.add_task("archive", total=self._total, frames=0)
        return self

    def update(self, result: Any, done: int, total: int) -> None:
        self._frames += result.frames
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, frames=self._frames)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)  # type: ignore[arg-type]
