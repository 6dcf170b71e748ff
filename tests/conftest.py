"""Shared fixtures: the real data in ../shared, one exported ONNX per test session, test videos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from occo_deploy.demo import WEIGHTS
from occo_deploy.engines.build import BuildRequest, BuildResult, build_engine
from occo_deploy.interface.profile import Profile
from tests.support import logged, read_image

ROOT = Path(__file__).resolve().parents[1]
FULL_SHARED = Path(os.environ.get("OCCO_SHARED", ROOT.parent / "shared"))
#: ``../shared`` (39 real pairs, sequences, every golden case) is there. Without it the tests read the
#: subset the repository carries (``tests/data/shared``: three TNO pairs, two golden cases), and the
#: tests marked ``shared`` (they need more of it) are skipped.
HAVE_SHARED = (FULL_SHARED / "reference" / "occo-demo.pth").is_file()
SHARED = FULL_SHARED if HAVE_SHARED else ROOT / "tests" / "data" / "shared"
REFERENCE = SHARED / "reference"
PAIRS = SHARED / "data" / "pairs"
SEQUENCE = SHARED / "data" / "sequence"
#: The checkpoint in the official format; the package bundles the same demo weights.
CHECKPOINT = REFERENCE / "occo-demo.pth" if HAVE_SHARED else WEIGHTS


def golden_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((REFERENCE / "cases" / "index.json").read_text())
    return cases


def golden_params(slow_above_pixels: int) -> list[Any]:
    """The golden cases as test parameters; those of more pixels than this run in the slow tier."""
    return [pytest.param(c["name"], marks=[pytest.mark.slow] if c["height"] * c["width"] > slow_above_pixels else [])
            for c in golden_cases()]


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


def cached_export() -> Path:
    return EXPORT_CACHE / f"export-{_export_key()}" / "occo.onnx"


def export_for_tests(target: Path) -> None:
    """The real export, through the library, verified on the demo pair at 160x120 (the golden tests
    hold the export to full-size frames)."""
    from occo_deploy import demo
    from occo_deploy.export.onnx_export import export_onnx

    ir, vis = demo.first_pair()
    small = (cv2.resize(ir, (160, 120), interpolation=cv2.INTER_AREA),
             cv2.resize(vis, (160, 120), interpolation=cv2.INTER_AREA))
    export_onnx(CHECKPOINT, target, verify_with=small, force=True)


#: The export running beside the tests that need none (see ``pytest_collection_modifyitems``).
_export_job: subprocess.Popen[str] | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``shared`` when ``../shared`` is missing; run the tests that need no export
    first, while the export (a minute of one core) runs in a process of its own on the other."""
    global _export_job
    if not HAVE_SHARED:
        skip = pytest.mark.skip(reason=f"needs the shared test data at {FULL_SHARED} (set OCCO_SHARED); "
                                       "the rest runs on tests/data/shared")
        for item in items:
            if item.get_closest_marker("shared"):
                item.add_marker(skip)
    needs = [item for item in items if "exported" in getattr(item, "fixturenames", ())
             and not item.get_closest_marker("skip")]
    items.sort(key=lambda item: "exported" in getattr(item, "fixturenames", ()))
    target = cached_export()
    if needs and not _ready(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        code = ("from pathlib import Path; from tests.conftest import export_for_tests; "
                f"export_for_tests(Path({str(target)!r}))")
        _export_job = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _export_job is not None and _export_job.poll() is None:
        _export_job.kill()
        _export_job.wait()


def _ready(onnx_path: Path) -> bool:
    from occo_deploy.sidecar import sidecar_path

    return onnx_path.is_file() and sidecar_path(onnx_path).is_file()


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared checkpoint exported once per change of what the export depends on (kept in
    ``.test-cache/``), copied into this session's folder."""
    from occo_deploy.sidecar import sidecar_path

    target = cached_export()
    if _export_job is not None:
        _, stderr = _export_job.communicate()
        if _export_job.returncode != 0:
            pytest.fail(f"the export the tests use failed:\n{stderr[-3000:]}")
    if not _ready(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        export_for_tests(target)
    out = tmp_path_factory.mktemp("export") / "occo.onnx"
    shutil.copy(target, out)
    shutil.copy(sidecar_path(target), sidecar_path(out))
    return out


@pytest.fixture(scope="session")
def fuser(exported: Path) -> Iterator[object]:
    from occo_deploy import Fuser

    with Fuser(exported) as f:
        yield f


@pytest.fixture()
def workspace(tmp_path: Path, exported: Path) -> Path:
    """A user's folder with export/occo.onnx (+ sidecar) in it, as `occo-deploy export` leaves it."""
    from occo_deploy.sidecar import sidecar_path

    (tmp_path / "export").mkdir()
    shutil.copy(exported, tmp_path / "export" / "occo.onnx")
    shutil.copy(sidecar_path(exported), tmp_path / "export" / "occo.onnx.json")
    return tmp_path


def require_shared(what: str) -> None:
    """Skip the calling test or fixture when it needs ``what`` of ``../shared`` and only the subset the
    repository carries is here: the helpers and fixtures that read more of it declare it this way."""
    if not HAVE_SHARED:
        pytest.skip(f"needs {what} of the shared test data at {FULL_SHARED} (set OCCO_SHARED)")


def sequence_frames(what: str, size_wh: tuple[int, int] | None = (160, 120)) -> list[np.ndarray]:
    """The real M3SVD frames of ../shared/data/sequence, optionally resized (tests stay fast)."""
    require_shared("the M3SVD sequence")
    frames = []
    for path in sorted((SEQUENCE / what).glob("*.png")):
        image = read_image(path)
        frames.append(image if size_wh is None else cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA))
    return frames


def make_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    from occo_deploy.video.streams import write_video

    write_video(path, frames, fps)
    return path


def run_cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None, process: bool = False
            ) -> subprocess.CompletedProcess[str]:
    """Run ``occo-deploy ARGS`` in ``cwd`` as a user would, capturing its exit status and output.

    In this process by default (the same ``main`` entry point, argument handling, one-line errors and
    exit codes; a second interpreter only adds its start-up), or with ``process=True`` as
    ``python -m occo_deploy`` for what only a process shows: output that libraries write to the
    file descriptors themselves, signals, what gets imported. An unexpected exception is raised here,
    not turned into an exit status, so a bug fails the test with its traceback."""
    env = {"COLUMNS": "200", **(env_extra or {})}
    if process:
        return subprocess.run([sys.executable, "-m", "occo_deploy", *args], cwd=cwd, env={**os.environ, **env},
                              capture_output=True, text=True, timeout=900)
    from typer.testing import CliRunner

    from occo_deploy.cli import common
    from occo_deploy.cli.app import app
    from occo_deploy.cli.archive_cmd import ray_argv

    width = int(env["COLUMNS"])
    saved = os.getcwd(), common.out.width, common.err.width
    os.chdir(cwd)
    common.out.width = common.err.width = width  # as a fresh process reads COLUMNS
    try:
        result = CliRunner(env=env).invoke(app, ray_argv(list(args)), prog_name="occo-deploy", catch_exceptions=False)
    finally:
        os.chdir(saved[0])
        common.out.width, common.err.width = saved[1], saved[2]
    return subprocess.CompletedProcess(["occo-deploy", *args], result.exit_code, result.stdout, result.stderr)


# -- engines built once per session from the shared checkpoint on real calibration pairs ----------

#: Calibrate and check at 120x160 with a few pairs: the same code paths as 480x640, CI-fast.
PROFILE = Profile.from_options(min_="1x16x16", opt="1x120x160", max_="8x4096x4096")


def request(exported: Path, tmp: Path, **kw: object) -> BuildRequest:
    base = dict(onnx=exported, precision="int8", backend="onnxruntime", profile=PROFILE, output=tmp / "e.onnx",
                calib_dir=PAIRS, calib_size=10, val_size=4, seed=0)
    base.update(kw)
    return BuildRequest(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def int8_build(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuildResult, list[str]]]:
    require_shared("14 calibration and gate pairs")
    tmp = tmp_path_factory.mktemp("int8")
    with logged() as log:
        built = build_engine(request(exported, tmp, output=tmp / "occo_int8.onnx"))
    yield built, log


#: The small TensorRT profile the --onnx-only tests build for.
TRT_SMALL = Profile.from_options(min_="1x64x64", opt="1x120x160", max_="2x480x640")


@pytest.fixture(scope="session")
def trt_int8(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The calibrated INT8 ONNX TensorRT would parse (``build --backend tensorrt --int8 --onnx-only``),
    built once for the check and placement tests."""
    require_shared("14 calibration and gate pairs")
    tmp = tmp_path_factory.mktemp("trt-int8")
    return build_engine(request(exported, tmp, precision="int8", backend="tensorrt", profile=TRT_SMALL, onnx_only=True,
                                output=tmp / "occo_int8_tensorrt.onnx"))


@pytest.fixture(scope="session")
def fp16_build(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    require_shared("14 calibration and gate pairs")
    tmp = tmp_path_factory.mktemp("fp16")
    return build_engine(request(exported, tmp, precision="fp16", output=tmp / "occo_fp16.onnx"))
