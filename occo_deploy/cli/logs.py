"""Where the CLI sends the package logger's records: one line each on stderr, at once.

Text (the default): what a verb tells as it works (a build's steps, a camera back up) on stdout, a
notice as ``note: ...`` on stderr; a run under systemd, Docker or a pipe gets the same lines a
terminal does, beside (not instead of) the terminal's status line. ``--log-format json``: one JSON
object per record on stderr, with the event's fields, for collectors. Errors are left to the verb's
own one-line error, which says them once.
"""

from __future__ import annotations

import logging
import sys

from rich.text import Text

from occo_deploy import log
from occo_deploy.cli.common import err, out
from occo_deploy.urls import mask_credentials

FORMATS = ("text", "json")


class CliHandler(logging.Handler):
    """Writes records as lines and remembers what it said (so a summary does not say it twice)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(logging.INFO)
        self.fmt = fmt
        self.said: list[str] = []
        if fmt == "json":
            self.setFormatter(log.JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = mask_credentials(record.getMessage())  # once more: no password reaches the log
            if self.fmt == "json":
                record.msg, record.args = message, None
                sys.stderr.write(self.format(record) + "\n")
                sys.stderr.flush()
            elif record.levelno < logging.WARNING:
                out.print(Text(message), soft_wrap=True)
            elif record.levelno < logging.ERROR:
                err.print(Text("note: " + message), soft_wrap=True)
            self.said.append(message)
        except Exception:  # noqa: BLE001 - logging's contract: a handler never raises into the caller
            self.handleError(record)


def configure(fmt: str = "text") -> CliHandler:
    """Route the package's records to a fresh ``CliHandler`` (replacing one a previous verb set)."""
    logger = logging.getLogger(log.NAME)
    for old in [h for h in logger.handlers if isinstance(h, CliHandler)]:
        logger.removeHandler(old)
    handler = CliHandler(fmt)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # an app's root handlers would print each line twice
    return handler


def unsaid(notices: list[str]) -> list[str]:
    """The notices a report holds that the log did not already say (each said once, as it arose)."""
    handler = current()
    said = set(handler.said) if handler is not None else set()
    return [n for n in notices if mask_credentials(n) not in said]


def say_unsaid(notices: list[str]) -> None:
    """A job report's notices the log did not already say, as ``note:`` lines on stderr."""
    for notice in unsaid(notices):
        err.print(f"note: {mask_credentials(notice)}", soft_wrap=True)


def current() -> CliHandler | None:
    """The handler the CLI set, if any."""
    return next((h for h in logging.getLogger(log.NAME).handlers if isinstance(h, CliHandler)), None)
