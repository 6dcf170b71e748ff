"""The default workspace the CLI reads and writes: ``export/``, ``engines/``, ``calibration/``."""

from __future__ import annotations

from pathlib import Path

from occo_deploy.errors import EngineError, cli_names
from occo_deploy.sidecar import read_sidecar, sidecar_path

EXPORT_DIR = Path("export")
ENGINES_DIR = Path("engines")
CALIBRATION_DIR = Path("calibration")
DEFAULT_ONNX = EXPORT_DIR / "occo.onnx"


def default_engine(root: Path = Path(".")) -> Path:
    """The newest engine in ``engines/`` (one with an engine sidecar), else ``export/occo.onnx``."""
    engines_dir = root / ENGINES_DIR
    candidates = []
    if engines_dir.is_dir():
        for path in engines_dir.iterdir():
            if path.is_file() and path.suffix != ".json" and sidecar_path(path).is_file():
                meta = read_sidecar(path)
                if meta and meta.get("kind") == "engine":
                    candidates.append(path)
    if candidates:
        return max(candidates, key=lambda p: p.stat().st_mtime)
    onnx = root / DEFAULT_ONNX
    if onnx.is_file():
        return onnx
    where = Path.cwd() if root == Path() else root
    name_it = "--engine PATH" if cli_names() else "its path"
    raise EngineError(
        f"no engine in {engines_dir}/ and no {onnx} here ({where}); name one with {name_it}, run from the folder "
        "that holds engines/ or export/, or make one with: occo-deploy export CHECKPOINT (or --demo for the "
        "bundled demo weights)"
    )
