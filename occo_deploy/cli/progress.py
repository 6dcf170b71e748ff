"""The one progress display of the CLI: a bar per step of a job, on stderr, drawn on terminals only.

Library code reports through ``occo_deploy.progress`` callbacks; ``Bars`` turns them into rich bars
that fit 80 columns: ``calibrating (percentile) ━━━━━━━━━━━━━━━━ 12/35 0:01:09 elapsed 0:02:12 left``.
"""

from __future__ import annotations

import datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from occo_deploy.cli.common import err
from occo_deploy.progress import Progress as ProgressCallback


class _Left(ProgressColumn):
    """``0:02:12 left`` while running, ``done`` once finished, nothing while unknown: a finished bar
    never reads ``0:00:00 left`` beside its elapsed time."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("done")
        remaining = task.time_remaining
        if remaining is None:
            return Text("")
        return Text(f"{datetime.timedelta(seconds=int(remaining))} left")


class Bars:
    """``with Bars() as bars:`` then ``bars.step("calibrating")`` is a ``Progress`` callback drawing
    that step's bar. ``quiet`` draws nothing; ``note`` adds a short text after the counts
    (``bars.note(task, "120 frames")``). Bars vanish when the job ends; what it printed stays."""

    def __init__(self, quiet: bool = False, console: Console = err) -> None:
        self._bars: Progress | None = None if quiet else Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=16), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("elapsed"), _Left(), TextColumn("{task.fields[note]}"),
            console=console, transient=True)
        self._tasks: dict[str, TaskID] = {}

    @property
    def console(self) -> Console | None:
        """Where to print lines while bars are drawn (so they stay above the bars), or None when quiet."""
        return None if self._bars is None else self._bars.console

    def __enter__(self) -> Bars:
        if self._bars is not None:
            self._bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bars is not None:
            self._bars.__exit__(*exc)

    def _task(self, task: str) -> TaskID | None:
        if self._bars is None:
            return None
        if task not in self._tasks:
            self._tasks[task] = self._bars.add_task(task, total=None, note="")
        return self._tasks[task]

    def step(self, task: str) -> ProgressCallback:
        """The ``Progress`` callback of one step: ``(done, total)`` moves its bar."""
        def update(done: int, total: int | None) -> None:
            key = self._task(task)
            if self._bars is not None and key is not None:
                self._bars.update(key, completed=done, total=total)

        return update

    def note(self, task: str, text: str) -> None:
        """A short text after the step's counts ("120 frames")."""
        key = self._task(task)
        if self._bars is not None and key is not None:
            self._bars.update(key, note=text)
