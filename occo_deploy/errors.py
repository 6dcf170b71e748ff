"""Errors the library raises; the CLI turns each into one line and an exit code.

Every message says what was wrong and what to do about it, because the CLI prints it as is. Where
the fix is an option, ``option`` names it as the caller knows it: ``--max-side 640`` for someone at
the command line, ``max_side=640`` for someone calling ``Fuser``.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar


class OccoDeployError(Exception):
    """Base of every error occo-deploy raises on purpose. Only its subclasses are raised, each with an
    exit code the README's table documents (``tests/test_errors.py`` holds them to it)."""

    exit_code: ClassVar[int] = 1


class InputError(OccoDeployError):
    """A file, folder, frame or option the user gave cannot be used."""

    exit_code = 2


class OutputExistsError(InputError):
    """An output would overwrite a user's file and ``--force`` was not given."""


class CheckpointError(OccoDeployError):
    """A checkpoint cannot be read or does not match the OCCO network."""

    exit_code = 3


class ExportError(OccoDeployError):
    """Exporting or verifying the ONNX graph failed."""

    exit_code = 4


class EngineError(OccoDeployError):
    """An engine or exported model cannot be found, opened or run."""

    exit_code = 5


class BuildError(EngineError):
    """Building an engine failed, or the engine failed its quality gate; nothing was kept."""

    exit_code = 7


class CheckFailedError(OccoDeployError):
    """``occo-deploy check`` found rules an artifact breaks for its target backend."""

    exit_code = 9


class OutputError(OccoDeployError):
    """An output could not be written (the encoder failed, the disk is full). Nothing partial is kept,
    but a video the disk cut short: fragmented MP4 plays up to its last whole fragment."""

    exit_code = 10


class ShapeError(InputError):
    """Frames whose shape the model or engine cannot take."""


class SourceError(InputError):
    """A live source that could not be opened, or stayed down longer than the reconnect timeout."""


class MissingDependencyError(OccoDeployError):
    """An optional dependency is not installed; the message names the extra."""

    exit_code = 6


# -- naming the fix as the caller knows it ----------------------------------------------------------
_CLI: ContextVar[bool] = ContextVar("occo_deploy_cli", default=False)


@contextlib.contextmanager
def cli_context() -> Iterator[None]:
    """Within it, ``option`` names command-line options (the CLI runs every verb in one)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


_NAME_ONLY: Any = object()


def option(name: str, value: Any = _NAME_ONLY) -> str:
    """An option as the caller spells it: ``--max-side 640`` at the command line, ``max_side=640`` from
    Python; without a value just its name (``--max-side`` / ``max_side``). ``name`` is the Python keyword;
    ``True`` makes a flag (``--force`` / ``force=True``)."""
    if _CLI.get():
        flag = "--" + name.replace("_", "-")
        return flag if value is _NAME_ONLY or value is True else f"{flag} {value}"
    if value is _NAME_ONLY:
        return name
    return f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"


def cli_names() -> bool:
    """Whether messages are for someone at the command line (inside ``cli_context``)."""
    return _CLI.get()


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, as this copy of occo-deploy was installed.

    From a checkout (the package beside its ``pyproject.toml``, as the README installs it) that is
    ``pip install -e '.[extra]'``. Anywhere else the extra's own requirements are named, which install
    whatever index or wheel occo-deploy itself came from.
    """
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        try:
            here = Path.cwd().resolve()
        except OSError:
            here = None
        where = "." if here == root else str(root)
        return f"pip install -e '{where}[{extra}]'"
    from importlib import metadata

    try:
        requirements = metadata.requires("occo-deploy") or []
    except metadata.PackageNotFoundError:
        requirements = []
    marker = f'extra == "{extra}"'
    wanted = [r.split(";")[0].strip() for r in requirements if marker in r]
    return "pip install " + " ".join(f"'{r}'" for r in wanted) if wanted else f"install the {extra} extra"


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency lazily, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs '{module}', which is not installed: {install_hint(extra)} ({first_line(exc)})"
        ) from exc


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name): libraries raise multi-line
    C++ traces, and a user gets one line; terminal colour codes in it (torch bolds words) are dropped."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    return (text.strip().splitlines() or [type(exc).__name__])[0]


class Terminated(BaseException):
    """SIGTERM (``docker stop``, systemd, Kubernetes, ``timeout``), raised in the main thread as Ctrl-C
    raises ``KeyboardInterrupt`` (the CLI installs the handler): every ``with`` block unwinds, so
    partial outputs are removed, and a live run ends as on Ctrl-C."""
