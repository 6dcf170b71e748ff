"""The package logger: library code logs here and never prints; the CLI (or the embedding app)
decides where the records go.

``logging.getLogger("occo_deploy")`` carries a ``NullHandler`` only, so an app that embeds ``Fuser``
sees nothing unless it configures logging. Records of events a service watches (a source down and
why, back up, a run slower than its cameras) carry their fields in ``extra={"fields": {...}}``,
which ``JsonFormatter`` writes beside the message: one JSON object per line for log collectors.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from typing import Any

NAME = "occo_deploy"
logging.getLogger(NAME).addHandler(logging.NullHandler())


def get(module: str) -> logging.Logger:
    """The logger of one part of the package (``get("live")`` is ``occo_deploy.live``)."""
    return logging.getLogger(f"{NAME}.{module}" if module else NAME)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record was logged with (``extra={"fields": ...}``), else none."""
    found = getattr(record, "fields", None)
    return dict(found) if isinstance(found, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        when = _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds")
        return json.dumps({"time": when, "level": record.levelname.lower(), "logger": record.name,
                           "message": record.getMessage(), **fields(record)}, default=str)
