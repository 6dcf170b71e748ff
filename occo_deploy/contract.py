"""The contracts every stage agrees on: engine I/O and the sidecar JSON beside each artifact.

Kept free of heavy imports: the runtime, the exporter and the builders all read it.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any

from occo_deploy.errors import EngineError

#: Input and output names, dtypes and layouts of every exported model and engine.
VISIBLE = "visible"  # uint8 N x H x W x 3, BGR (as OpenCV decodes)
INFRARED = "infrared"  # uint8 N x H x W
FUSED = "fused"  # uint8 N x H x W x 3, BGR
IO_SPEC: dict[str, dict[str, Any]] = {
    "inputs": {
        VISIBLE: {"dtype": "uint8", "layout": "NHWC", "channels": "BGR", "shape": ["N", "H", "W", 3]},
        INFRARED: {"dtype": "uint8", "layout": "NHW", "channels": "gray", "shape": ["N", "H", "W"]},
    },
    "outputs": {
        FUSED: {"dtype": "uint8", "layout": "NHWC", "channels": "BGR", "shape": ["N", "H", "W", 3]},
    },
}

#: The reference network fails below 16 pixels: its fourth encoder stage pools a 1x1 map.
MIN_SIDE = 16

SIDECAR_FORMAT_VERSION = 1


def sidecar_path(artifact: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: beside the artifact, which stays a plain file."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def base_sidecar(kind: str, fmt: str, precision: str, backend: str | None) -> dict[str, Any]:
    """The fields every sidecar starts with; stages add ``sha256`` (of the artifact itself, checked
    on load), ``source``, ``shapes``, ``verification``..."""
    from occo_deploy._version import __version__

    return {
        "format_version": SIDECAR_FORMAT_VERSION,
        "kind": kind,
        "format": fmt,
        "backend": backend,
        "precision": precision,
        "io": IO_SPEC,
        "versions": {"occo_deploy": __version__, "python": platform.python_version()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_sidecar(artifact: str | Path) -> dict[str, Any] | None:
    """The sidecar of ``artifact``, or None when it has none; unreadable or too new is an error."""
    path = sidecar_path(artifact)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot read {path} ({exc}); delete it and re-export or rebuild") from exc
    if not isinstance(data, dict) or "format_version" not in data:
        raise EngineError(f"{path} is not an occo-deploy sidecar; delete it and re-export or rebuild")
    if int(data["format_version"]) > SIDECAR_FORMAT_VERSION:
        raise EngineError(
            f"{path} was written by a newer occo-deploy (sidecar format {data['format_version']}); "
            "upgrade occo-deploy"
        )
    return data


def verify_artifact(artifact: Path, sidecar: dict[str, Any] | None) -> None:
    """Refuse an artifact that changed after its sidecar was written: it must not run under old claims."""
    from occo_deploy.files import sha256_file

    if not artifact.is_file():
        raise EngineError(f"engine not found: {artifact}")
    expected = (sidecar or {}).get("sha256")
    if expected and sha256_file(artifact) != expected:
        raise EngineError(
            f"{artifact} does not match its sidecar (the file changed after it was written); "
            "re-export or rebuild it"
        )
