"""Errors the library raises; the CLI turns each into one line and an exit code.

Every message says what was wrong and what to do about it, because the CLI prints it as is.
"""

from __future__ import annotations


class OccoDeployError(Exception):
    """Base of every error occo-deploy raises on purpose."""

    exit_code: int = 1


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


class ShapeError(InputError):
    """Frames whose shape the model or engine cannot take."""


class MissingDependencyError(OccoDeployError):
    """An optional dependency is not installed; the message names the extra."""

    exit_code = 6


def require(module: str, extra: str, purpose: str):  # noqa: ANN201 - returns a module
    """Import an optional dependency lazily, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs '{module}', which is not installed: "
            f"pip install 'occo-deploy[{extra}]' ({exc})"
        ) from exc


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name): libraries raise multi-line
    C++ traces, and a user gets one line."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
