"""``occo-deploy build`` as a user runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from occo_deploy.contract import sidecar_path
from tests.cli.test_fuse_cli import _one_line_error
from tests.conftest import PAIRS, run_cli


def _workspace(tmp_path: Path, exported: Path) -> Path:
    (tmp_path / "export").mkdir()
    shutil.copy(exported, tmp_path / "export" / "occo.onnx")
    shutil.copy(sidecar_path(exported), tmp_path / "export" / "occo.onnx.json")
    return tmp_path


def test_int8_build_then_fuse_uses_it(tmp_path: Path, exported: Path) -> None:
    ws = _workspace(tmp_path, exported)
    result = run_cli("build", "--int8", "--calib", str(PAIRS / "MSRS"), "--calib-size", "4", "--opt", "1x120x160",
                     "--min", "1x16x16", "--max", "4x2048x2048", cwd=ws)
    assert result.returncode == 0, result.stderr
    assert "backend: onnxruntime (TensorRT not usable here" in result.stdout
    assert "PSNR vs FP32" in result.stdout and "built engines/occo_int8_onnxruntime.onnx" in result.stdout
    meta = json.loads((ws / "engines" / "occo_int8_onnxruntime.onnx.json").read_text())
    assert meta["quality"]["passed"] and meta["calibration"]["count"] == 4
    ir, vis = PAIRS / "TNO" / "ir" / "07.png", PAIRS / "TNO" / "vi" / "07.png"
    fused = run_cli("fuse", str(ir), str(vis), cwd=ws)  # the newest engine is picked by default
    assert fused.returncode == 0, fused.stderr
    assert "engines/occo_int8_onnxruntime.onnx [onnxruntime cpu, int8]" in fused.stdout


def test_fp16_on_cpu_says_what_it_means(tmp_path: Path, exported: Path) -> None:
    ws = _workspace(tmp_path, exported)
    result = run_cli("build", "--fp16", "--shape", "96x128", cwd=ws)
    assert result.returncode == 0, result.stderr
    assert "not for speed" in result.stderr and "no BF16 path" in result.stderr
    assert "checking on frames of the bundled demo clip" in result.stdout


def test_no_precision(tmp_path: Path, exported: Path) -> None:
    _one_line_error(run_cli("build", cwd=_workspace(tmp_path, exported)), "--fp32, --fp16 or --int8")


def test_tensorrt_asked_for_where_it_is_missing(tmp_path: Path, exported: Path) -> None:
    result = run_cli("build", "--fp16", "--backend", "tensorrt", cwd=_workspace(tmp_path, exported))
    _one_line_error(result, "cannot build for tensorrt", "occo-deploy[gpu]")
    assert not (tmp_path / "engines").exists() or not any((tmp_path / "engines").iterdir())


def test_int8_without_calibration_pairs(tmp_path: Path, exported: Path) -> None:
    ws = _workspace(tmp_path, exported)
    (ws / "calibration").mkdir()
    _one_line_error(run_cli("build", "--int8", cwd=ws), "calibration", "--calib DIR")


def test_shape_below_the_model_minimum(tmp_path: Path, exported: Path) -> None:
    _one_line_error(run_cli("build", "--fp32", "--shape", "8x8", cwd=_workspace(tmp_path, exported)), ">= 16")


def test_missing_onnx(tmp_path: Path) -> None:
    _one_line_error(run_cli("build", "--fp32", cwd=tmp_path), "ONNX not found", "occo-deploy export")
