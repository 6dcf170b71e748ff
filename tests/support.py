"""Helpers the test modules share (not tests themselves): how a one-line error looks, and what the
package logged during a block."""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from occo_deploy import log


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A failed verb: non-zero exit, exactly one ``error:`` line on stderr naming every needle, no traceback."""
    assert result.returncode != 0, result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@contextlib.contextmanager
def logged() -> Iterator[list[str]]:
    """What the package logs inside the block, one message each, as the CLI's text shows them (a
    warning as ``note: ...``)."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(("note: " if record.levelno >= logging.WARNING else "") + record.getMessage())

    logger = logging.getLogger(log.NAME)
    handler, level = Keep(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """``cv2.imread`` that fails the test, naming the file, instead of returning None."""
    image = cv2.imread(str(path), flags)
    assert image is not None, f"cannot read {path}"
    return image
