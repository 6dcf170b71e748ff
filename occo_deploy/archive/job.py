"""Running an archive: what to skip, each task through the ``fuse`` jobs, the report.

A task is a list of items a worker runs together: a batch of image pairs (batched through the
engine), or one video pair. Here they run one after another in this process; ``ray_runner`` hands
the same tasks to Ray Data actors. Either way every item ends ``done``, ``skipped`` or ``failed``
with its one-line error, and no item's failure stops the others.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from occo_deploy.archive.items import Item
from occo_deploy.errors import InputError, OccoDeployError, first_line

#: Called after each finished item: (its result, items finished so far, items in the job).
Progress = Callable[["ItemResult", int, int], None]


@dataclass
class ItemResult:
    key: str
    kind: str
    ir: str | None
    vis: str | None
    output: str | None
    status: str  # "done" | "skipped" | "failed"
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    worker: str | None = None  # host:pid of the process that ran it
    notices: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, item: Item, status: str, **kw: Any) -> ItemResult:
        return cls(item.key, item.kind, item.ir, item.vis, item.output, status, **kw)


@dataclass
class RunSettings:
    """How workers run their tasks (the same here and in every Ray actor)."""

    engine: str  # absolute path: Ray workers on other nodes open the same path
    provider: str | None = None
    threads: int | None = None
    batch: int = 1
    force: bool = False
    ir_scale: str | None = None
    max_side: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ArchiveReport:
    results: list[ItemResult]
    wall_s: float
    mode: str  # "local" | "ray"
    engine: dict[str, Any]
    workers: dict[str, Any]
    ray: dict[str, Any] | None = None
    partials_removed: int = 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    def summary(self) -> str:
        done = [r for r in self.results if r.status == "done"]
        rate = f"; {len(done) / self.wall_s:.2f} items/s, {self.frames / self.wall_s:.2f} frames/s" \
            if self.wall_s > 0 and done else ""
        return (f"{self.count('done')} done, {self.count('skipped')} skipped, {self.count('failed')} failed "
                f"({self.frames} frames in {self.wall_s:.1f} s{rate})")

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": {"items": len(self.results), "done": self.count("done"), "skipped": self.count("skipped"),
                       "failed": self.count("failed"), "frames": self.frames, "wall_s": self.wall_s,
                       "items_per_s": self.count("done") / self.wall_s if self.wall_s else 0.0,
                       "frames_per_s": self.frames / self.wall_s if self.wall_s else 0.0},
            "mode": self.mode, "engine": self.engine, "workers": self.workers, "ray": self.ray,
            "partial_outputs_removed": self.partials_removed,
            "failures": [{"item": r.key, "ir": r.ir, "vis": r.vis, "error": r.error}
                         for r in self.results if r.status == "failed"],
            "items": [asdict(r) for r in self.results],
        }


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def make_tasks(items: list[Item], batch: int) -> list[list[Item]]:
    """Consecutive image pairs in groups of ``batch``; each video pair alone."""
    tasks: list[list[Item]] = []
    images: list[Item] = []
    for item in items:
        if item.kind == "image":
            images.append(item)
            if len(images) == batch:
                tasks.append(images)
                images = []
        else:
            tasks.append([item])
    if images:
        tasks.append(images)
    return tasks


def run_task(fuser: Any, task: list[Item], settings: RunSettings) -> list[ItemResult]:
    """One task in this process, every item ending with a result (never an exception for a bad item)."""
    from occo_deploy.video import jobs

    if len(task) == 1 and task[0].kind != "image":
        return [_run_single(fuser, task[0], settings)]
    start = time.perf_counter()
    done: list[Item] = []
    by_key = {i.key: i for i in task}
    try:
        failed = jobs.fuse_image_pairs(
            fuser, [(i.key, Path(i.ir or ""), Path(i.vis or ""), Path(i.output or "")) for i in task],
            batch=settings.batch, force=settings.force, keep_going=True, on_done=lambda k: done.append(by_key[k]))
    except Exception as exc:  # noqa: BLE001 - an engine failure takes the batch, not the job
        error = _one_line(exc)
        ran = {i.key for i in done}
        return [ItemResult.of(i, "done", frames=1, worker=worker_name()) for i in done] + \
            [ItemResult.of(i, "failed", error=error, worker=worker_name()) for i in task if i.key not in ran]
    share = (time.perf_counter() - start) / max(1, len(done))
    errors = dict(failed)
    return [ItemResult.of(i, "failed", error=errors[i.key], worker=worker_name()) if i.key in errors else
            ItemResult.of(i, "done", frames=1, seconds=share, worker=worker_name()) for i in task]


def _run_single(fuser: Any, item: Item, settings: RunSettings) -> ItemResult:
    from occo_deploy.video import jobs

    if item.kind == "bad":
        return ItemResult.of(item, "failed", error=item.error)
    start = time.perf_counter()
    try:
        report = jobs.fuse_video(fuser, Path(item.ir or ""), Path(item.vis or ""), Path(item.output or ""),
                                 batch=settings.batch, force=settings.force)
    except Exception as exc:  # noqa: BLE001 - decoders and writers raise their own types
        return ItemResult.of(item, "failed", error=_one_line(exc), seconds=time.perf_counter() - start,
                             worker=worker_name())
    return ItemResult.of(item, "done", frames=report.frames, seconds=time.perf_counter() - start,
                         worker=worker_name(), notices=report.notices)


def _one_line(exc: BaseException) -> str:
    text = first_line(exc)
    return text if isinstance(exc, OccoDeployError) else f"{type(exc).__name__}: {text}"


def remove_partials(out_root: Path) -> int:
    """Delete the temporary files of outputs a killed run never finished (``files.atomic_output``'s
    names), so a resumed job leaves only whole outputs behind."""
    removed = 0
    if out_root.is_dir():
        for path in out_root.rglob(".*.partial.*"):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def split_existing(items: list[Item], resume: bool, force: bool) -> tuple[list[Item], list[ItemResult]]:
    """(items to run, skipped results): with ``resume`` an existing output is complete (outputs are
    written whole or not at all) and skipped; without ``resume`` or ``force`` it is an error."""
    existing = [i for i in items if i.output and Path(i.output).exists()]
    if existing and not resume and not force:
        raise InputError(f"{len(existing)} of the outputs exist (first {existing[0].output}); pass --resume to "
                         "skip them and fuse the rest, or --force to fuse everything again")
    if not resume:
        return items, []
    skip = {i.key for i in existing}
    return [i for i in items if i.key not in skip], [ItemResult.of(i, "skipped") for i in existing]


def run_local(tasks: list[list[Item]], settings: RunSettings) -> tuple[dict[str, Any], Iterator[ItemResult]]:
    """(engine description, results as they finish) for tasks run one after another in this process."""
    from occo_deploy.runtime.fuser import Fuser

    fuser = Fuser(settings.engine, provider=settings.provider, threads=settings.threads, batch=settings.batch,
                  ir_scale=settings.ir_scale, max_side=settings.max_side)

    def results() -> Iterator[ItemResult]:
        try:
            for task in tasks:
                yield from run_task(fuser, task, settings)
        finally:
            fuser.close()

    return fuser.info(), results()


def run_archive(items: list[Item], out_root: Path, settings: RunSettings, *, resume: bool = False,
                ray: Any = None, progress: Progress | None = None) -> ArchiveReport:
    """Fuse ``items`` into ``out_root``: here, or on Ray when ``ray`` (``ray_runner.RayOptions``) is given."""
    start = time.perf_counter()
    removed = remove_partials(out_root)
    to_run, results = split_existing(items, resume, settings.force)
    for result in results:
        if progress:
            progress(result, len(results), len(items))
    tasks = make_tasks(to_run, settings.batch)
    ray_info = None
    if ray is None:
        engine, stream = run_local(tasks, settings)
        workers: dict[str, Any] = {"count": 1, "threads": settings.threads, "where": worker_name()}
    else:
        from occo_deploy.archive.ray_runner import run_on_ray

        engine, stream, workers, ray_info = run_on_ray(tasks, settings, ray)
    for result in stream:
        results.append(result)
        if progress:
            progress(result, len(results), len(items))
    removed += remove_partials(out_root)
    results.sort(key=lambda r: r.key)
    return ArchiveReport(results, time.perf_counter() - start, "local" if ray is None else "ray", engine, workers,
                         ray_info, removed)
