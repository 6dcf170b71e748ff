"""What a worker runs: tasks of archive items through the ``fuse`` jobs, each item ending with a result.

A task is a list of items a worker runs together: a batch of image pairs (batched through the
engine), or one video pair. Both runners (``local`` in this process, ``ray_runner`` on Ray Data
actors) hand their tasks to ``run_task``; every item ends ``done``, ``skipped`` or ``failed`` with its
one-line error, and no item's failure stops the others.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from occo_deploy.archive.items import Item
from occo_deploy.errors import OccoDeployError, first_line
from occo_deploy.fusing.options import FrameOptions, RunOptions

if TYPE_CHECKING:
    from occo_deploy.fusing.fuser import Fuser


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


@dataclass(frozen=True)
class RunSettings:
    """How workers run their tasks (the same here and in every Ray actor): the verb's own options
    objects, whole, so a worker's ``Fuser`` is opened with exactly what ``archive`` was given."""

    engine: str  # absolute path: Ray workers on other nodes open the same path
    run: RunOptions = field(default_factory=RunOptions)
    #: Its ``align`` an absolute path as the engine's, for the same reason.
    frames: FrameOptions = field(default_factory=FrameOptions)
    force: bool = False

    @property
    def batch(self) -> int:
        return self.run.batch or 1

    @property
    def threads(self) -> int | None:
        return self.run.threads

    def fuser(self) -> Fuser:
        """The ``Fuser`` every worker opens from these settings."""
        from occo_deploy.fusing.fuser import Fuser

        return Fuser(self.engine, **self.run.kwargs(), **self.frames.kwargs())


@dataclass
class Started:
    """What a runner gives back at once: the engine, the pool, and the results as items finish."""

    engine: dict[str, Any]
    results: Iterator[ItemResult]
    workers: dict[str, Any]
    ray: dict[str, Any] | None = None


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


def run_task(fuser: Fuser, task: list[Item], settings: RunSettings) -> list[ItemResult]:
    """One task in this process, every item ending with a result (never an exception for a bad item).

    An output that exists when its task starts was written during this job: the job refuses (or with
    ``--resume`` skips) outputs that exist when it starts, so it comes from an earlier attempt of this
    very task, which Ray retried because its worker died after writing it. Outputs are atomic, so it
    is whole: it counts as done and is not fused a second time (``--force`` fuses it again).
    """
    earlier = [] if settings.force else [i for i in task if i.kind != "bad" and i.output and Path(i.output).exists()]
    rest = [i for i in task if i not in earlier]
    return [_written_earlier(i) for i in earlier] + (_run(fuser, rest, settings) if rest else [])


def _written_earlier(item: Item) -> ItemResult:
    frames = 1
    if item.kind != "image":
        from occo_deploy.video.streams import probe

        try:
            frames = probe(Path(item.output or ""), "output").frame_count
        except OccoDeployError:
            frames = 0
    return ItemResult.of(item, "done", frames=frames, worker=worker_name(),
                         notices=["written by an earlier attempt of its task (its worker died); kept whole"])


def _run(fuser: Fuser, task: list[Item], settings: RunSettings) -> list[ItemResult]:
    from occo_deploy.fusing import jobs

    if len(task) == 1 and task[0].kind != "image":
        return [_run_single(fuser, task[0], settings)]
    start = time.perf_counter()
    done: list[Item] = []
    by_key = {i.key: i for i in task}
    try:
        failed = jobs.fuse_image_pairs(
            fuser, [(i.key, Path(i.ir or ""), Path(i.vis or ""), Path(i.output or "")) for i in task],
            batch=settings.batch, force=settings.force, keep_going=True, on_done=lambda k: done.append(by_key[k]),
            stretch="frame")  # an archive's image pairs are separate scenes, whatever --stretch says of videos
    except Exception as exc:  # noqa: BLE001 - an engine failure takes the batch, not the job
        error = _one_line(exc)
        ran = {i.key for i in done}
        return [ItemResult.of(i, "done", frames=1, worker=worker_name()) for i in done] + \
            [ItemResult.of(i, "failed", error=error, worker=worker_name()) for i in task if i.key not in ran]
    share = (time.perf_counter() - start) / max(1, len(done))
    errors = dict(failed)
    return [ItemResult.of(i, "failed", error=errors[i.key], worker=worker_name()) if i.key in errors else
            ItemResult.of(i, "done", frames=1, seconds=share, worker=worker_name()) for i in task]


def _run_single(fuser: Fuser, item: Item, settings: RunSettings) -> ItemResult:
    from occo_deploy.fusing import jobs

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


