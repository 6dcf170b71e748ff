"""``occo-deploy eval`` and ``bench`` through the CLI on real pairs: tables, JSON reports, PNGs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from occo_deploy.engines.build import BuildResult
from tests.cli.test_fuse_cli import _one_line_error
from tests.conftest import PAIRS, run_cli


def test_eval_reports_fidelity_metrics_and_draws_a_grid(
    workspace: Path, int8_build: tuple[BuildResult, list[str]], fp16_build: BuildResult
) -> None:
    int8 = int8_build[0].engine
    result = run_cli("eval", str(PAIRS / "RoadScene" / "ir"), str(PAIRS / "RoadScene" / "vi"), "--limit", "3",
                     "--engine", str(int8), "--engine", str(fp16_build.engine), "--report", "eval.json",
                     "--grid", "grid.png", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "fidelity to the reference" in result.stdout and "Qabf" in result.stdout
    report = json.loads((workspace / "eval.json").read_text())
    assert report["reference"].startswith("export/occo.onnx") and len(report["pairs"]) == 3
    by_label = {e["label"].split(" ")[0]: e for e in report["engines"]}
    i8, f16 = by_label[int8.name], by_label[fp16_build.engine.name]
    assert i8["mean"]["fidelity"]["psnr"] > 35 and f16["mean"]["fidelity"]["psnr"] > 45
    assert len(i8["pairs"]) == 3 and set(i8["mean"]["metrics"]) == {
        "EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR"}
    # An engine that matches the reference scores like it: the metrics of INT8 and FP16 agree closely.
    for name in ("EN", "SD", "Qabf", "SSIM"):
        assert abs(i8["mean"]["metrics"][name] - f16["mean"]["metrics"][name]) < 0.05 * abs(f16["mean"]["metrics"][name])
    grid = cv2.imread(str(workspace / "grid.png"))
    assert grid.shape[0] > 3 * 240 and grid.shape[1] > 4 * 240  # 3 rows; IR, visible and two engines
    assert (workspace / "grid.png").stat().st_size > 100_000  # real pictures, not a blank canvas
    rows = np.array_split(grid, 3, axis=0)
    assert all(r.std() > 20 for r in rows)


def test_eval_against_a_checkpoint_reference(workspace: Path) -> None:
    from tests.conftest import CHECKPOINT

    ir, vis = PAIRS / "TNO" / "ir" / "07.png", PAIRS / "TNO" / "vi" / "07.png"
    result = run_cli("eval", str(ir), str(vis), "--reference", str(CHECKPOINT), "--report", "e.json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    report = json.loads((workspace / "e.json").read_text())
    assert report["reference"].startswith("pytorch eager")
    assert report["engines"][0]["pairs"][0]["fidelity"]["max_abs"] <= 1  # the FP32 export vs PyTorch


def test_bench_times_several_engines_and_draws_a_histogram(
    workspace: Path, int8_build: tuple[BuildResult, list[str]]
) -> None:
    int8 = int8_build[0].engine
    result = run_cli("bench", "export/occo.onnx", str(int8), "--shape", "96x128", "--warmup", "0.2",
                     "--duration", "1.5", "--pairs", str(PAIRS / "MSRS"), "--report", "bench.json",
                     "--histogram", "lat.png", cwd=workspace)
    assert result.returncode == 0, result.stderr
    report = json.loads((workspace / "bench.json").read_text())
    first, second = report["results"]
    assert first["engine"]["precision"] == "fp32" and second["engine"]["precision"] == "int8"
    for r in report["results"]:
        lat = r["latency_ms"]
        assert r["calls"] >= 2 and r["throughput_fps"] > 0 and r["shape_nhw"] == [1, 96, 128]
        assert lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert {"prepare", "infer", "finish", "total"} <= set(r["stages"])
    assert "vs first" in result.stdout and "1.00x" in result.stdout
    hist = cv2.imread(str(workspace / "lat.png"))
    assert hist.shape == (2 * 180, 720, 3) and hist.std() > 20
    assert (hist[:, :, 0] > 200).sum() > 500  # bars are drawn (the bar colour's blue channel is 240)


def test_bench_defaults_to_the_bundled_clip_and_refuses_overwrites(workspace: Path) -> None:
    (workspace / "bench.json").write_text("mine")
    _one_line_error(run_cli("bench", "--report", "bench.json", cwd=workspace), "--force")
    assert (workspace / "bench.json").read_text() == "mine"
    result = run_cli("bench", "--shape", "64x80", "--warmup", "0", "--duration", "0.5", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "real pairs at 64x80" in result.stdout


def test_bench_sweeps_batch_sizes_through_the_pipeline(workspace: Path) -> None:
    result = run_cli("bench", "--shape", "64x80", "--batch", "1,3", "--in-flight", "2", "--warmup", "0",
                     "--duration", "0.6", "--report", "sweep.json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    report = json.loads((workspace / "sweep.json").read_text())
    assert report["batches"] == [1, 3]
    one, three = report["results"]
    assert one["shape_nhw"] == [1, 64, 80] and three["shape_nhw"] == [3, 64, 80]
    for r in (one, three):
        assert r["calls"] >= 1 and r["throughput_fps"] > 0
        assert r["stages"]["infer"]["count"] == r["stages"]["total"]["count"] == r["calls"]
    _one_line_error(run_cli("bench", "--batch", "2,0", cwd=workspace), "--batch", "1,2,4")


def test_eval_bad_inputs(workspace: Path) -> None:
    ir = PAIRS / "TNO" / "ir" / "07.png"
    _one_line_error(run_cli("eval", str(ir), str(PAIRS / "TNO" / "vi"), cwd=workspace), "two images or two folders")
    _one_line_error(run_cli("eval", str(ir), str(PAIRS / "TNO" / "vi" / "07.png"), "--grid", "g.jpg",
                            cwd=workspace), "PNG")
    shutil.rmtree(workspace / "export")
    _one_line_error(run_cli("eval", str(ir), str(PAIRS / "TNO" / "vi" / "07.png"), cwd=workspace), "occo-deploy export")
