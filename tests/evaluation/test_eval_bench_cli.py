"""``occo-deploy eval`` and ``bench`` through the CLI on real pairs: tables, JSON reports, PNGs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from occo_deploy.engines.build import BuildResult
from tests.conftest import PAIRS, run_cli
from tests.support import one_line_error


@pytest.mark.slow
@pytest.mark.shared
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
    assert report["convention"] == "cddfuse" and "Evaluator.py" in report["convention_matches"]
    (roadscene,) = report["datasets"]
    assert report["reference"].startswith("export/occo.onnx") and len(roadscene["pairs"]) == 3
    assert roadscene["name"] == "RoadScene"
    by_label = {e["label"].split(" ")[0]: e for e in roadscene["methods"]}
    i8, f16 = by_label[int8.name], by_label[fp16_build.engine.name]
    assert i8["mean"]["fidelity"]["psnr"] > 35 and f16["mean"]["fidelity"]["psnr"] > 45
    assert len(i8["pairs"]) == 3 and set(i8["mean"]["metrics"]) == {
        "EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR"}
    # An engine that matches the reference scores like it: the metrics of INT8 and FP16 agree closely.
    for name in ("EN", "SD", "Qabf", "SSIM"):
        want = f16["mean"]["metrics"][name]
        assert abs(i8["mean"]["metrics"][name] - want) < 0.05 * abs(want)
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
    assert report["datasets"][0]["methods"][0]["pairs"][0]["fidelity"]["max_abs"] <= 1  # FP32 export vs PyTorch


@pytest.mark.shared
def test_eval_lays_out_a_papers_table_over_data_sets_and_other_methods(workspace: Path) -> None:
    """Two data sets, the default engine and another method's fused folder (gray images, the layout
    DIR/<data set>/<pair>): one row per method, one column block per data set, in each format."""
    from occo_deploy.evaluation.evaluate import load_pairs
    from occo_deploy.evaluation.metrics import fusion_metrics

    method = workspace / "results" / "Max"
    expected: dict[str, list[dict]] = {}
    for name in ("TNO", "MSRS"):
        (method / name).mkdir(parents=True)
        for side in ("ir", "vi"):
            (workspace / name / side).mkdir(parents=True)
        for stem, ir, vis in load_pairs(PAIRS / name / "ir", PAIRS / name / "vi", limit=2):
            ir, vis = (cv2.resize(x, (160, 120), interpolation=cv2.INTER_AREA) for x in (ir, vis))  # CI time
            cv2.imwrite(str(workspace / name / "ir" / f"{stem}.png"), ir)
            cv2.imwrite(str(workspace / name / "vi" / f"{stem}.png"), vis)
            fused = np.maximum(ir, cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY))
            cv2.imwrite(str(method / name / f"{stem}.png"), fused)
            expected.setdefault(name, []).append(fusion_metrics(ir, vis, fused, "vifb"))
    datasets = [f"--dataset={n}={workspace / n / 'ir'},{workspace / n / 'vi'}" for n in ("TNO", "MSRS")]
    for suffix in ("md", "csv", "tex"):
        result = run_cli("eval", *datasets, "--limit", "2", "--fused", f"Max={method}", "--convention", "vifb",
                         "--table", f"t.{suffix}", "--report", f"r{suffix}.json", cwd=workspace,
                         env_extra={"COLUMNS": "80"})
        assert result.returncode == 0, result.stderr
        assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    report = json.loads((workspace / "rmd.json").read_text())
    assert report["convention"] == "vifb" and [d["name"] for d in report["datasets"]] == ["TNO", "MSRS"]
    for d in report["datasets"]:
        engine, other = d["methods"]
        assert engine["label"].startswith("occo") and engine["mean"]["fidelity"]["max_abs"] == 0
        assert other["label"] == "Max" and other["mean"]["fidelity"] is None
        for name in ("EN", "MI", "Qabf", "PSNR"):  # the folder's gray images, scored as VIFB scores gray
            assert other["mean"]["metrics"][name] == pytest.approx(
                np.mean([e[name] for e in expected[d["name"]]]), rel=1e-9)
        assert other["mean"]["metrics"]["VIF"] is None
    md = (workspace / "t.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| method"))
    assert "TNO EN" in header and "MSRS PSNR" in header and header.index("TNO EN") < header.index("MSRS EN")
    rows = [line for line in md if line.startswith("| occo") or line.startswith("| Max")]
    assert len(rows) == 2 and all(line.count("|") == 2 + 2 * 10 for line in rows)
    assert sum(line.count("**") for line in rows) == 2 * 2 * 8  # a best per column; VIF, SCD are "-"
    csv_rows = (workspace / "t.csv").read_text().splitlines()
    assert csv_rows[0].startswith("method,TNO EN,") and csv_rows[2].startswith("Max,")
    max_mi = float(csv_rows[2].split(",")[5])
    assert max_mi == pytest.approx(np.mean([e["MI"] for e in expected["TNO"]]), rel=1e-5)
    tex = (workspace / "t.tex").read_text()
    assert r"\begin{tabular}{l|cccccccccc|cccccccccc}" in tex and r"\multicolumn{10}{c}{MSRS}" in tex


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
    one_line_error(run_cli("bench", "--report", "bench.json", cwd=workspace), "--force")
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
    one_line_error(run_cli("bench", "--batch", "2,0", cwd=workspace), "--batch", "1,2,4")


def test_eval_shows_a_dash_for_what_a_method_lacks(workspace: Path) -> None:
    # A --fused folder without the pair's image: the table shows -, a note says which, nothing fails.
    shutil.rmtree(workspace / "export")  # the folders alone: no engine to run
    (workspace / "Y").mkdir()
    shutil.copy(PAIRS / "TNO" / "vi" / "07.png", workspace / "Y" / "07.png")
    result = run_cli("eval", str(PAIRS / "TNO" / "ir"), str(PAIRS / "TNO" / "vi"), "--fused", f"X={workspace}",
                     "--fused", f"Y={workspace / 'Y'}", "--report", "r.json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    x_row = next(line for line in lines if line.startswith("X "))
    y_row = next(line for line in lines if line.startswith("Y "))
    assert set(x_row.split()[1:]) == {"-"}
    assert "-" in y_row.split()[1:]  # Y has 07 alone: a mean over fewer pairs would not compare
    pairs = len(list((PAIRS / "TNO" / "ir").iterdir()))
    assert f"X has no image for {pairs} of {pairs}" in result.stdout
    assert f"Y has no image for {pairs - 1} of {pairs}" in result.stdout
    report = json.loads((workspace / "r.json").read_text())
    methods = {m["label"]: m for m in report["datasets"][0]["methods"]}
    assert all(p["missing"] for p in methods["X"]["pairs"])


def test_eval_bad_inputs(workspace: Path) -> None:
    ir = PAIRS / "TNO" / "ir" / "07.png"
    one_line_error(run_cli("eval", str(ir), str(PAIRS / "TNO" / "vi"), cwd=workspace), "two images or two folders")
    one_line_error(run_cli("eval", "--dataset", "TNO", cwd=workspace), "NAME=IR_DIR,VIS_DIR")
    one_line_error(run_cli("eval", cwd=workspace), "--dataset NAME=IR_DIR,VIS_DIR")
    one_line_error(run_cli("eval", str(ir), str(PAIRS / "TNO" / "vi" / "07.png"), "--convention", "matlab",
                            cwd=workspace), "cddfuse, vifb, textbook")
    one_line_error(run_cli("eval", str(ir), str(PAIRS / "TNO" / "vi" / "07.png"), "--table", "t.xlsx",
                            cwd=workspace), ".md, .csv or .tex")
    one_line_error(run_cli("eval", str(ir), str(PAIRS / "TNO" / "vi" / "07.png"), "--grid", "g.jpg",
                            cwd=workspace), "PNG")
    shutil.rmtree(workspace / "export")
    one_line_error(run_cli("eval", str(ir), str(PAIRS / "TNO" / "vi" / "07.png"), cwd=workspace), "occo-deploy export")
