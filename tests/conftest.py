"""Shared fixtures: the real data in ../shared, one exported ONNX per test session, test videos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from occo_deploy.engines.build import BuildRequest, BuildResult, build_engine
from occo_deploy.engines.profile import Profile

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OCCO_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
CHECKPOINT = REFERENCE / "occo-demo.pth"
PAIRS = SHARED / "data" / "pairs"
SEQUENCE = SHARED / "data" / "sequence"

if not CHECKPOINT.is_file():
    pytest.exit(f"shared test data not found at {SHARED}; set OCCO_SHARED", returncode=4)


def golden_cases() -> list[dict]:
    return json.loads((REFERENCE / "cases" / "index.json").read_text())


def load_case(name: str) -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "cases" / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


#: Exports kept between test runs on this machine (a clean clone exports afresh): a real export
#: takes a minute on 2 cores, and every run of the fast tier starts from one.
EXPORT_CACHE = ROOT / ".test-cache"


def _export_key() -> str:
    """What an export depends on: the checkpoint, the exporting code, the exporting libraries."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256(CHECKPOINT.read_bytes())
    for folder in ("export", "model"):
        for path in sorted((ROOT / "occo_deploy" / folder).glob("*.py")):
            digest.update(path.read_bytes())
    for package in ("torch", "onnx", "onnxscript", "onnxruntime"):
        digest.update(version(package).encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared checkpoint exported once, through the library, verified on the demo frames (reused
    from ``.test-cache/`` when nothing it depends on changed)."""
    from occo_deploy import demo
    from occo_deploy.contract import sidecar_path
    from occo_deploy.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("export") / "occo.onnx"
    cached = EXPORT_CACHE / f"export-{_export_key()}" / "occo.onnx"
    if not (cached.is_file() and sidecar_path(cached).is_file()):
        cached.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(CHECKPOINT, cached, verify_with=demo.first_pair(), force=True)
    shutil.copy(cached, out)
    shutil.copy(sidecar_path(cached), sidecar_path(out))
    return out


@pytest.fixture(scope="session")
def fuser(exported: Path) -> Iterator[object]:
    from occo_deploy import Fuser

    with Fuser(exported) as f:
        yield f


@pytest.fixture()
def workspace(tmp_path: Path, exported: Path) -> Path:
    """A user's folder with export/occo.onnx (+ sidecar) in it, as `occo-deploy export` leaves it."""
    from occo_deploy.contract import sidecar_path

    (tmp_path / "export").mkdir()
    shutil.copy(exported, tmp_path / "export" / "occo.onnx")
    shutil.copy(sidecar_path(exported), tmp_path / "export" / "occo.onnx.json")
    return tmp_path


def sequence_frames(what: str, size_wh: tuple[int, int] | None = (160, 120)) -> list[np.ndarray]:
    """The real M3SVD frames of ../shared/data/sequence, optionally resized (tests stay fast)."""
    frames = []
    for path in sorted((SEQUENCE / what).glob("*.png")):
        image = cv2.imread(str(path))
        frames.append(image if size_wh is None else cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA))
    return frames


def make_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    from occo_deploy.video.streams import write_video

    write_video(path, frames, fps)
    return path


def run_cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m occo_deploy`` as a user would, capturing output."""
    env = {**os.environ, "COLUMNS": "200", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "occo_deploy", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


# -- engines built once per session from the shared checkpoint on real calibration pairs ----------

#: Calibrate and check at 240x320 with a few pairs: the same code paths as 480x640, CI-fast.
PROFILE = Profile.from_options(min_="1x16x16", opt="1x240x320", max_="8x4096x4096")


def request(exported: Path, tmp: Path, **kw: object) -> BuildRequest:
    base = dict(onnx=exported, precision="int8", backend="onnxruntime", profile=PROFILE, output=tmp / "e.onnx",
                calib_dir=PAIRS, calib_size=10, val_size=4, seed=0)
    base.update(kw)
    return BuildRequest(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def int8_build(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuildResult, list[str]]]:
    log: list[str] = []
    tmp = tmp_path_factory.mktemp("int8")
    yield build_engine(request(exported, tmp, output=tmp / "occo_int8.onnx"), log.append), log


@pytest.fixture(scope="session")
def fp16_build(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    tmp = tmp_path_factory.mktemp("fp16")
    return build_engine(request(exported, tmp, precision="fp16", output=tmp / "occo_fp16.onnx"))
