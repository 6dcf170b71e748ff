"""The sidecar JSON beside every artifact (``occo.onnx.json``, ``<engine>.json``): its schema, and the
one place it is read and written.

The schema is a set of ``TypedDict``s, so strict mypy checks every key the package reads. On disk
the paths a sidecar names (the FP32 export an engine came from, the gate's frames, the range cache)
are relative to the artifact's folder, so a folder of engines moved to another machine with the
folders beside it keeps its requalification set; in memory they are absolute. Format 1 (paths as the
command line gave them, relative to where it ran) is read and rewritten as format 2; a newer format
or a file that is not a sidecar is refused with the command that makes a new one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any, TypedDict, cast

from occo_deploy.contract import IO_SPEC
from occo_deploy.errors import EngineError

FORMAT_VERSION = 2


class Versions(TypedDict, total=False):
    occo_deploy: str
    python: str
    torch: str
    onnx: str
    onnxscript: str
    onnxruntime: str
    exporter: str


class Source(TypedDict, total=False):
    """Where the artifact came from: the checkpoint (an export), or the ONNX it was built from."""

    checkpoint: str
    checkpoint_sha256: str | None
    onnx: str
    onnx_sha256: str | None
    made_by: str
    #: For an engine built from an ``--onnx-only`` ONNX: that ONNX's own source (the FP32 export).
    made_from: Source


class GateFrames(TypedDict, total=False):
    """The gate's held-out frames: the folder and seed of the seeded split, and their sizes."""

    folder: str
    seed: int
    count: int
    size_hw: list[int]
    large_hw: list[int]


class Gate(TypedDict, total=False):
    """A quality gate's result (``engines.gate.GateResult.as_dict``)."""

    reference: str
    metric: str
    pairs: int
    psnr_min: float | None  # None: identical frames (JSON has no infinity)
    psnr_all: float | None
    max_abs_error: int
    min_psnr: float
    largest_hw: list[int]
    passed: bool
    reference_s: float
    candidate_s: float
    speedup_vs_fp32: float | None
    cpu_class: str
    cpu: str
    precision: str
    date: str


class Calibration(TypedDict, total=False):
    set_sha256: str
    method: str
    count: int
    seed: int
    size_hw: list[int]
    scheme: str
    activations: str
    weights: str
    cache: str
    cache_reused: bool
    tensors: int


class Sidecar(TypedDict, total=False):
    """Every field a sidecar may hold; stages fill in theirs (``DESIGN.md``, "Sidecar JSON")."""

    format_version: int
    kind: str  # "onnx" | "engine"
    format: str  # "onnx" | "plan"
    backend: str | None
    provider: str
    precision: str
    io: dict[str, Any]
    versions: Versions
    created: str
    sha256: str
    shapes: dict[str, Any]
    source: Source
    model: dict[str, Any]
    verification: dict[str, Any]
    #: An ``--onnx-only`` ONNX: the backend it is for, and what to do with it.
    target: str
    purpose: str
    built_by: str
    calibration: Calibration
    mixed_precision: dict[str, Any]
    gate_frames: GateFrames
    quality: Gate
    precision_onnx_check: Gate
    build_attempts: list[dict[str, Any]]
    build_seconds: float
    lint: dict[str, Any]
    requalified: dict[str, Gate]
    # Backend fields (each builder's ``build`` returns its own).
    inference_precision: str
    openvino: str
    device: str
    cpu_capabilities: list[str]
    onnxruntime: str
    graph_optimization: str
    tensorrt: dict[str, Any]


#: Where a sidecar names a file or folder: stored relative to the artifact, held absolute.
PATH_FIELDS: tuple[tuple[str, ...], ...] = (
    ("source", "checkpoint"),
    ("source", "onnx"),
    ("source", "made_from", "onnx"),
    ("source", "made_from", "checkpoint"),
    ("gate_frames", "folder"),
    ("calibration", "cache"),
)


def sidecar_path(artifact: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: beside the artifact, which stays a plain file."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def new_sidecar(kind: str, fmt: str, precision: str, backend: str | None) -> Sidecar:
    """The fields every sidecar starts with; stages add ``sha256`` (of the artifact itself, checked
    on load), ``source``, ``shapes``, ``verification``..."""
    from occo_deploy._version import __version__

    return {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "format": fmt,
        "backend": backend,
        "precision": precision,
        "io": IO_SPEC,
        "versions": {"occo_deploy": __version__, "python": platform.python_version()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _remake(artifact: Path) -> str:
    """The command that makes a new sidecar for this kind of artifact."""
    return ("re-export it: occo-deploy export CHECKPOINT" if artifact.name.endswith("occo.onnx")
            else "rebuild it: occo-deploy build (with the options it was built with)")


def _paths(data: dict[str, Any], change: Any) -> None:
    """Apply ``change(str) -> str`` to every ``PATH_FIELDS`` entry present in ``data``."""
    for keys in PATH_FIELDS:
        holder: Any = data
        for key in keys[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(keys[-1]), str) and holder[keys[-1]]:
            holder[keys[-1]] = change(holder[keys[-1]])


def read_sidecar(artifact: str | Path) -> Sidecar | None:
    """The sidecar of ``artifact`` with its paths absolute, or None when it has none; one that cannot
    be read, is not a sidecar or is of a newer format is an ``EngineError`` naming the fix."""
    artifact = Path(artifact)
    path = sidecar_path(artifact)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot read {path} ({exc}); delete it and {_remake(artifact)}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("format_version"), int):
        raise EngineError(f"{path} is not an occo-deploy sidecar; delete it and {_remake(artifact)}")
    version = data["format_version"]
    if version > FORMAT_VERSION:
        raise EngineError(f"{path} was written by a newer occo-deploy (sidecar format {version}); upgrade "
                          f"occo-deploy, or {_remake(artifact)} with this one")
    # Format 1 stored paths as given on the command line (relative to where it ran), format 2 relative
    # to the artifact's folder; either way they are absolute from here on.
    base = Path.cwd() if version == 1 else artifact.parent.absolute()
    _paths(data, lambda p: os.path.normpath(base / p))
    data["format_version"] = FORMAT_VERSION  # what it is in memory now; written back as format 2
    return cast(Sidecar, data)


def write_sidecar(artifact: str | Path, sidecar: Sidecar, force: bool = False) -> Path:
    """Write ``sidecar`` beside ``artifact`` (atomically), its paths relative to the artifact's folder;
    the path written."""
    from occo_deploy.files import write_json_atomic

    artifact = Path(artifact)
    folder = artifact.parent.absolute()
    data: dict[str, Any] = json.loads(json.dumps(sidecar))  # a deep copy: the caller keeps absolute paths
    data["format_version"] = FORMAT_VERSION
    _paths(data, lambda p: os.path.relpath(Path(p).absolute(), folder))
    path = sidecar_path(artifact)
    write_json_atomic(path, data, force=force)
    return path


def verify_artifact(artifact: Path, sidecar: Sidecar | None) -> None:
    """Refuse an artifact that changed after its sidecar was written: it must not run under old claims."""
    from occo_deploy.files import sha256_file

    if not artifact.is_file():
        raise EngineError(f"engine not found: {artifact}")
    expected = (sidecar or {}).get("sha256")
    if expected and sha256_file(artifact) != expected:
        raise EngineError(f"{artifact} does not match its sidecar (the file changed after it was written); "
                          f"{_remake(artifact)}")
