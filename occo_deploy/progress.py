"""How library code reports progress and messages without printing: callbacks the CLI draws.

One shape everywhere: ``progress(done, total)`` after each unit of work (frames, pairs, items),
``total`` None while unknown (a stream). A job of several long steps (``build``: calibration, then
the gates) takes ``steps(task)``, which hands out one such callback per named step.
"""

from __future__ import annotations

from collections.abc import Callable

#: A message a user reads ("calibration set pairs/: 35 frames..."); the CLI prints it.
Log = Callable[[str], None]
#: ``progress(done, total)``: units done so far, and how many there will be (None while unknown).
Progress = Callable[[int, "int | None"], None]
#: ``steps(task)``: the ``Progress`` of one named step of a longer job ("quality gate").
Steps = Callable[[str], Progress]


def quiet(_message: str) -> None:
    """A ``Log`` that drops every message."""
    return None
