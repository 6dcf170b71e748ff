"""What every verb shares: one-line errors with exit codes, consoles, rendering of reports."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from occo_deploy.errors import InputError, OccoDeployError, Terminated, cli_context
from occo_deploy.files import check_writable, write_bytes_atomic
from occo_deploy.urls import mask_credentials

P = ParamSpec("P")
R = TypeVar("R")


def _width(stream: object) -> int | None:
    """Terminals report their width; pipes and logs get a wide one so tables are not truncated."""
    if getattr(stream, "isatty", lambda: False)():
        return None
    return int(os.environ.get("COLUMNS", "160"))


# markup off: paths and engine names contain brackets that rich would eat as tags.
out = Console(highlight=False, markup=False, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, markup=False, width=_width(sys.stderr))

EXIT_INTERRUPTED = 130
#: 128 + SIGTERM, what shells and supervisors expect of a process that ended on it.
EXIT_TERMINATED = 143


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def handle_sigterm() -> None:
    """Turn SIGTERM into ``Terminated`` for the rest of this process (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
#: The job ran to its end, but some items or pairs failed (each listed); exit 8.
EXIT_SOME_FAILED = 8


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into one line on stderr and their exit code, Ctrl-C into 130.

    Anything else is a bug in occo-deploy and keeps its traceback (set OCCO_DEBUG=1 to also see
    tracebacks of the expected errors).
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with cli_context():  # messages name --options, not Python keywords
                return func(*args, **kwargs)
        except OccoDeployError as exc:
            if os.environ.get("OCCO_DEBUG"):
                raise
            # Once more here: no camera password reaches the terminal, whatever raised.
            err.print(f"[bold red]error:[/] {escape(mask_credentials(str(exc)))}", markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted: partial outputs were removed", soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Terminated:
            err.print("terminated (SIGTERM): partial outputs were removed", soft_wrap=True)
            raise typer.Exit(EXIT_TERMINATED) from None

    return wrapper


def engine_label(engine: dict[str, Any]) -> str:
    """``path [backend provider, precision]``, each word once: ``[openvino, int8]``, ``[onnxruntime cpu, fp32]``."""
    backend, provider = engine.get("backend"), engine.get("provider")
    runs_on = backend if provider in (None, backend) else f"{backend} {provider}"
    return f"{engine.get('artifact')} [{runs_on}, {engine.get('precision')}]"


def latency_table(latency: dict[str, Any], title: str = "latency per call (ms)") -> Table:
    """Stage rows in pipeline order with count, mean and percentiles, as trtexec summarises."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("stage")
    for col in ("count", "mean", "p50", "p90", "p99", "max"):
        table.add_column(col, justify="right")
    for stage, s in latency.get("stages", {}).items():
        # A stage that never ran (a live run stopped before its first frame) has a count and no figures.
        table.add_row(stage, str(s.get("count", 0)), *(f"{s[k]:.1f}" if k in s else "-" for k in
                                                       ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")))
    return table


def human_bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def check_outputs(force: bool, report: Path | None, picture: Path | None, picture_option: str) -> None:
    """Before any work: a report or picture must not overwrite a file without --force; pictures are PNG."""
    for path in (report, picture):
        if path is not None:
            check_writable(path, force)
    if picture is not None and picture.suffix.lower() != ".png":
        raise InputError(f"{picture_option} writes a PNG; name it .png (got {picture.name})")


def write_png(path: Path, image: Any, force: bool) -> None:
    import cv2

    write_bytes_atomic(path, cv2.imencode(".png", image)[1].tobytes(), force)
