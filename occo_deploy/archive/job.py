"""Running an archive: what to skip, the runner (this process or Ray), the report.

``run_archive`` removes what a killed run left, skips existing outputs with ``resume``, cuts the
items into tasks (``tasks``), and hands them to a runner: ``run_local`` here, one after another, or
``ray_runner.run_on_ray`` on Ray Data actors. Both return a ``Started``: the engine described before
any task runs, the pool, and the results as they finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from occo_deploy.archive.items import Item
from occo_deploy.archive.tasks import ItemResult, RunSettings, Started, make_tasks, run_task, worker_name
from occo_deploy.errors import InputError, option
from occo_deploy.progress import Progress

if TYPE_CHECKING:
    from occo_deploy.archive.ray_runner import RayOptions

__all__ = ["ArchiveReport", "ItemResult", "RunSettings", "remove_partials", "run_archive", "run_local",
           "split_existing"]


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
        raise InputError(f"{len(existing)} of the outputs exist (first {existing[0].output}); pass "
                         f"{option('resume', True)} to skip them and fuse the rest, or {option('force', True)} to "
                         "fuse everything again")
    if not resume:
        return items, []
    skip = {i.key for i in existing}
    return [i for i in items if i.key not in skip], [ItemResult.of(i, "skipped") for i in existing]


def run_local(tasks: list[list[Item]], settings: RunSettings) -> Started:
    """Tasks run one after another in this process, on one ``Fuser``."""
    fuser = settings.fuser()

    def results() -> Iterator[ItemResult]:
        try:
            for task in tasks:
                yield from run_task(fuser, task, settings)
        finally:
            fuser.close()

    return Started(fuser.info(), results(), {"count": 1, "threads": settings.threads, "where": worker_name()})


def run_archive(items: list[Item], out_root: Path, settings: RunSettings, *, resume: bool = False,
                ray: RayOptions | None = None, progress: Progress | None = None,
                on_result: Callable[[ItemResult], None] | None = None) -> ArchiveReport:
    """Fuse ``items`` into ``out_root``: here, or on Ray when ``ray`` is given. ``progress(done, total)``
    counts finished items; ``on_result`` sees each one's result (frames, errors) as it finishes."""
    start = time.perf_counter()
    removed = remove_partials(out_root)
    to_run, skipped = split_existing(items, resume, settings.force)
    results: list[ItemResult] = []

    def finished(result: ItemResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)
        if progress:
            progress(len(results), len(items))

    for result in skipped:
        finished(result)
    tasks = make_tasks(to_run, settings.batch)
    if ray is None:
        started = run_local(tasks, settings)
    else:
        from occo_deploy.archive.ray_runner import run_on_ray

        started = run_on_ray(tasks, settings, ray)
    for result in started.results:
        finished(result)
    removed += remove_partials(out_root)
    results.sort(key=lambda r: r.key)
    return ArchiveReport(results, time.perf_counter() - start, "local" if ray is None else "ray", started.engine,
                         started.workers, started.ray, removed)
