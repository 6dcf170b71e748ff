"""``occo-deploy build`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PAIRS, run_cli
from tests.support import one_line_error


@pytest.mark.shared
def test_int8_build_then_fuse_uses_it(workspace: Path) -> None:
    ws = workspace
    result = run_cli("build", "--int8", "--calib", str(PAIRS / "MSRS"), "--calib-size", "4", "--opt", "1x120x160",
                     "--min", "1x16x16", "--max", "4x2048x2048", cwd=ws)
    assert result.returncode == 0, result.stderr
    assert "backend: onnxruntime (TensorRT not usable here" in result.stdout
    assert "PSNR vs FP32" in result.stdout and "built engines/occo_int8_onnxruntime.onnx" in result.stdout
    assert "speed on this machine: " in result.stdout  # measured on the gate's frames
    assert "next: occo-deploy fuse IR VIS --engine engines/occo_int8_onnxruntime.onnx" in result.stdout
    assert "Collecting tensor data" not in result.stdout + result.stderr  # ONNX Runtime's chatter
    meta = json.loads((ws / "engines" / "occo_int8_onnxruntime.onnx.json").read_text())
    assert meta["quality"]["passed"] and meta["calibration"]["count"] == 4
    assert meta["quality"]["speedup_vs_fp32"] > 0 and meta["quality"]["candidate_s"] > 0
    # Stored beside the engine, relative to it: the folder can move with its cache.
    assert meta["calibration"]["cache"] == "calib_minmax_asymmetric.json"
    assert (ws / "engines" / "calib_minmax_asymmetric.json").is_file()
    ir, vis = PAIRS / "TNO" / "ir" / "07.png", PAIRS / "TNO" / "vi" / "07.png"
    fused = run_cli("fuse", str(ir), str(vis), cwd=ws)  # the newest engine is picked by default
    assert fused.returncode == 0, fused.stderr
    assert "engines/occo_int8_onnxruntime.onnx [onnxruntime cpu, int8]" in fused.stdout
    assert "faster on a CPU" not in fused.stdout  # the hint is for runs on the FP32 export


def test_fp16_on_cpu_says_what_it_means(workspace: Path) -> None:
    ws = workspace
    result = run_cli("build", "--fp16", "--shape", "96x128", cwd=ws)
    assert result.returncode == 0, result.stderr
    assert "note: FP16 on ONNX Runtime's CPU provider" in result.stderr  # a notice: on stderr, as notes are
    assert "not for speed" in result.stderr and "--backend openvino" in result.stderr
    assert "checking on frames of the bundled demo clip" in result.stdout


def test_no_precision(workspace: Path) -> None:
    one_line_error(run_cli("build", cwd=workspace), "--fp32, --fp16, --bf16 or --int8")


def test_tensorrt_asked_for_where_it_is_missing(workspace: Path) -> None:
    result = run_cli("build", "--fp16", "--backend", "tensorrt", cwd=workspace)
    one_line_error(result, "cannot build for tensorrt", "[gpu]'", "--onnx-only")
    assert not (workspace / "engines").exists() or not any((workspace / "engines").iterdir())


def test_int8_without_calibration_pairs(workspace: Path) -> None:
    ws = workspace
    (ws / "calibration").mkdir()
    one_line_error(run_cli("build", "--int8", cwd=ws), "calibration", "--calib DIR")


def test_shape_below_the_model_minimum(workspace: Path) -> None:
    one_line_error(run_cli("build", "--fp32", "--shape", "8x8", cwd=workspace), ">= 16")


def test_missing_onnx(tmp_path: Path) -> None:
    one_line_error(run_cli("build", "--fp32", cwd=tmp_path), "ONNX not found", "occo-deploy export")
