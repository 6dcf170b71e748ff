"""``occo-deploy fuse`` end to end on real pairs and videos, as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import PAIRS, bgr, load_case, make_video, run_cli, sequence_frames
from tests.support import one_line_error


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Test videos from the real M3SVD frames (160x120 to keep CPU tests fast)."""
    root = tmp_path_factory.mktemp("videos")
    ir, vis = sequence_frames("ir"), sequence_frames("vi")
    return {
        "ir": make_video(root / "ir.mp4", ir, 30.0),
        "vis": make_video(root / "vis.mp4", vis, 30.0),
        "ir15_small": make_video(root / "ir15.avi", [cv2.resize(f, (128, 96)) for f in ir[::2]], 15.0),
        "ir_short": make_video(root / "ir_short.mp4", ir[:10], 30.0),
        "ir_wide": make_video(root / "ir_wide.mp4", [cv2.resize(f, (240, 80)) for f in ir], 30.0),
    }


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.mark.shared
def test_image_pair_matches_reference(workspace: Path) -> None:
    ir = PAIRS / "MSRS" / "ir" / "00016N.png"
    vis = PAIRS / "MSRS" / "vi" / "00016N.png"
    result = run_cli("fuse", str(ir), str(vis), "-o", "out.png", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "fused 1 frame(s)" in result.stdout and "infer" in result.stdout
    fused = cv2.imread(str(workspace / "out.png"))
    want = bgr(load_case("msrs_00016N")["fused"])
    assert np.abs(fused.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.shared
def test_folders_pair_by_stem_and_count_the_rest(workspace: Path) -> None:
    ir_dir, vis_dir = workspace / "ir", workspace / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    stems = ["FLIR_00006", "FLIR_07504", "FLIR_08021"]
    for stem in stems:
        shutil.copy(PAIRS / "RoadScene" / "ir" / f"{stem}.jpg", ir_dir)
        shutil.copy(PAIRS / "RoadScene" / "vi" / f"{stem}.jpg", vis_dir)
    shutil.copy(PAIRS / "RoadScene" / "ir" / "FLIR_01022.jpg", ir_dir)  # no visible partner
    shutil.copy(PAIRS / "RoadScene" / "vi" / "FLIR_03909.jpg", vis_dir)  # no infrared partner
    result = run_cli("fuse", "ir", "vi", "--report", "r.json", "--batch", "2", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (workspace / "fused").iterdir()) == [f"{s}.png" for s in stems]
    report = json.loads((workspace / "r.json").read_text())
    assert report["frames"] == 3
    assert report["pairing"]["ir_only"] == ["FLIR_01022"] and report["pairing"]["vis_only"] == ["FLIR_03909"]
    assert "unpaired: 1 visible, 1 infrared" in result.stdout
    for stem in stems:  # each output has its own visible image's size
        vis = cv2.imread(str(vis_dir / f"{stem}.jpg"))
        assert cv2.imread(str(workspace / "fused" / f"{stem}.png")).shape == vis.shape


@pytest.mark.shared
def test_keep_going_skips_bad_pairs_and_says_so(workspace: Path) -> None:
    ir_dir, vis_dir = workspace / "ir", workspace / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    for stem in ("FLIR_00006", "FLIR_07504"):
        shutil.copy(PAIRS / "RoadScene" / "ir" / f"{stem}.jpg", ir_dir)
        shutil.copy(PAIRS / "RoadScene" / "vi" / f"{stem}.jpg", vis_dir)
    (ir_dir / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    shutil.copy(PAIRS / "RoadScene" / "vi" / "FLIR_00006.jpg", vis_dir / "broken.jpg")
    cv2.imwrite(str(ir_dir / "tiny.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(vis_dir / "tiny.png"), np.zeros((8, 8, 3), np.uint8))
    stopped = run_cli("fuse", "ir", "vi", "--batch", "2", cwd=workspace)
    one_line_error(stopped, "cannot decode infrared image", "broken.jpg")
    result = run_cli("fuse", "ir", "vi", "-o", "kept", "--batch", "2", "--keep-going", "--report", "r.json",
                     cwd=workspace)
    assert result.returncode == 8, result.stderr
    assert sorted(p.name for p in (workspace / "kept").iterdir()) == ["FLIR_00006.png", "FLIR_07504.png"]
    assert "failed: broken: cannot decode infrared image" in result.stderr
    assert "failed: tiny: frames of 8x8 are too small" in result.stderr
    assert "Traceback" not in result.stderr and "2 pair(s) failed and were skipped" in result.stdout
    assert {f["name"] for f in json.loads((workspace / "r.json").read_text())["failures"]} == {"broken", "tiny"}


def test_video_pair_writes_every_frame_and_reports_latency(workspace: Path, videos: dict[str, Path]) -> None:
    result = run_cli("fuse", str(videos["ir"]), str(videos["vis"]), "--report", "report.json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    out = workspace / "fused.mp4"
    frames = _frames(out)
    assert len(frames) == 20 and frames[0].shape == (120, 160, 3)
    report = json.loads((workspace / "report.json").read_text())
    assert report["frames"] == 20 and report["fps"] > 0
    assert report["pairing"]["mode"] == "index"
    assert report["pairing"]["vis_unpaired"] == 0 and report["pairing"]["ir_unpaired"] == 0
    stages = report["latency"]["stages"]
    assert list(stages) == ["decode", "prepare", "infer", "finish", "encode", "total"]
    assert stages["decode"]["count"] == 40 and stages["encode"]["count"] == 20
    for key in ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"):
        assert stages["infer"][key] > 0
    assert report["engine"]["backend"] == "onnxruntime" and report["engine"]["precision"] == "fp32"
    # On the FP32 export, the summary ends with the command to the fastest CPU engine.
    assert "faster on this CPU: " in result.stdout and "occo-deploy build --backend openvino --int8" in result.stdout
    assert "[onnxruntime cpu, fp32]" in result.stdout
    # -q: the one result line; no table, no hint; the report still has everything.
    quiet = run_cli("fuse", str(videos["ir"]), str(videos["vis"]), "-o", "q.mp4", "-q", "--report", "q.json",
                    cwd=workspace)
    assert quiet.returncode == 0, quiet.stderr
    assert [line for line in quiet.stdout.splitlines() if line.strip()] == [
        next(line for line in quiet.stdout.splitlines() if line.startswith("fused 20 frame(s)")), "report: q.json"]
    assert quiet.stderr.strip() == ""
    assert json.loads((workspace / "q.json").read_text())["latency"]["stages"]["infer"]["count"] == 20
    # The written frames are the fused frames (up to the video codec), not anything else.
    from occo_deploy import Fuser

    with Fuser(workspace / "export" / "occo.onnx") as fuser:
        direct = fuser.fuse(_frames(videos["ir"])[0], _frames(videos["vis"])[0])
    assert cv2.PSNR(direct, frames[0]) > 28


def test_sigterm_during_a_video_removes_the_partial_output(workspace: Path, videos: dict[str, Path]) -> None:
    # What docker stop, systemd, Kubernetes and timeout send: the same clean-up as Ctrl-C, exit 143.
    run = subprocess.Popen([sys.executable, "-m", "occo_deploy", "fuse", str(videos["ir"]), str(videos["vis"]),
                            "-o", "out.mp4", "-q"], cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.monotonic() + 120
    while not list(workspace.glob(".out.*")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "the job ended before it could be terminated"
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 143, stderr
    assert stderr.strip() == "terminated (SIGTERM): partial outputs were removed"
    assert not list(workspace.glob(".out.*")) and not (workspace / "out.mp4").exists()


def test_slower_smaller_infrared_is_resized_reused_and_said_once(workspace: Path, videos: dict[str, Path]) -> None:
    result = run_cli("fuse", str(videos["ir15_small"]), str(videos["vis"]), "-o", "out.avi",
                     "--report", "r.json", "--batch", "3", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("resized to the visible size") == 1
    report = json.loads((workspace / "r.json").read_text())
    assert report["pairing"]["mode"] == "timestamp"
    # Every visible frame finds an IR frame and every IR frame is used; visible frames exactly
    # between two IR frames go to either, so most (not always all) IR frames serve two.
    assert report["frames"] == 20 and report["pairing"]["vis_unpaired"] == 0
    assert report["pairing"]["ir_unpaired"] == 0 and 8 <= report["pairing"]["ir_reused"] <= 10
    assert len(_frames(workspace / "out.avi")) == 20  # the last, partial batch (20 = 6*3 + 2) is written


def test_frames_without_partner_are_counted_not_hidden(workspace: Path, videos: dict[str, Path]) -> None:
    result = run_cli("fuse", str(videos["ir_short"]), str(videos["vis"]), "--batch", "4", "--report", "r.json",
                     cwd=workspace)
    assert result.returncode == 0, result.stderr
    report = json.loads((workspace / "r.json").read_text())
    assert report["frames"] == 10 and report["pairing"]["vis_unpaired"] == 10
    assert "unpaired: 10 visible, 0 infrared" in result.stdout
    assert len(_frames(workspace / "fused.mp4")) == 10


def test_offset_pairs_later_infrared_frames(workspace: Path, videos: dict[str, Path]) -> None:
    result = run_cli("fuse", str(videos["ir"]), str(videos["vis"]), "--offset-ms", "100", "--report", "r.json",
                     cwd=workspace)
    assert result.returncode == 0, result.stderr
    report = json.loads((workspace / "r.json").read_text())
    assert report["frames"] == 17 and report["pairing"]["vis_unpaired"] == 3 and report["pairing"]["ir_unpaired"] == 3


# -- bad input: one line, non-zero exit, nothing lost or half-written ----------------------------

@pytest.mark.shared
def test_no_engine_says_which_command_makes_one(tmp_path: Path) -> None:
    ir = PAIRS / "MSRS" / "ir" / "00016N.png"
    result = run_cli("fuse", str(ir), str(PAIRS / "MSRS" / "vi" / "00016N.png"), cwd=tmp_path)
    one_line_error(result, "occo-deploy export")
    assert not (tmp_path / "fused.png").exists()


def test_missing_input(workspace: Path) -> None:
    one_line_error(run_cli("fuse", "nope.png", "vis.png", cwd=workspace), "not found", "nope.png")


@pytest.mark.shared
def test_unreadable_image(workspace: Path) -> None:
    (workspace / "ir.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    shutil.copy(PAIRS / "MSRS" / "vi" / "00016N.png", workspace / "vis.png")
    one_line_error(run_cli("fuse", "ir.png", "vis.png", cwd=workspace), "cannot decode", "ir.png")
    assert not (workspace / "fused.png").exists()


def test_video_without_frames(workspace: Path, videos: dict[str, Path]) -> None:
    (workspace / "empty.mp4").write_bytes(b"")
    one_line_error(run_cli("fuse", "empty.mp4", str(videos["vis"]), cwd=workspace), "empty.mp4")
    assert not (workspace / "fused.mp4").exists()
    assert not list(workspace.glob(".fused*"))


def test_aspect_ratios_of_different_scenes(workspace: Path, videos: dict[str, Path]) -> None:
    one_line_error(run_cli("fuse", str(videos["ir_wide"]), str(videos["vis"]), cwd=workspace),
                    "do not share a view", "--align rig.json")
    assert not (workspace / "fused.mp4").exists()


def test_existing_output_is_not_overwritten_without_force(workspace: Path, videos: dict[str, Path]) -> None:
    (workspace / "fused.mp4").write_bytes(b"precious")
    one_line_error(run_cli("fuse", str(videos["ir"]), str(videos["vis"]), cwd=workspace), "--force")
    assert (workspace / "fused.mp4").read_bytes() == b"precious"


def test_existing_report_is_not_overwritten_without_force(workspace: Path) -> None:
    (workspace / "r.json").write_text("mine")
    ir, vis = PAIRS / "TNO" / "ir" / "07.png", PAIRS / "TNO" / "vi" / "07.png"
    one_line_error(run_cli("fuse", str(ir), str(vis), "--report", "r.json", cwd=workspace), "--force")
    assert (workspace / "r.json").read_text() == "mine" and not (workspace / "fused.png").exists()


def test_folders_without_common_stems(workspace: Path) -> None:
    (workspace / "a").mkdir()
    (workspace / "b").mkdir()
    shutil.copy(PAIRS / "TNO" / "ir" / "07.png", workspace / "a" / "x.png")
    shutil.copy(PAIRS / "TNO" / "vi" / "07.png", workspace / "b" / "y.png")
    one_line_error(run_cli("fuse", "a", "b", cwd=workspace), "no image in", "same name")


def test_image_and_video_mixed(workspace: Path, videos: dict[str, Path]) -> None:
    ir = PAIRS / "TNO" / "ir" / "07.png"
    one_line_error(run_cli("fuse", str(ir), str(videos["vis"]), cwd=workspace), "must both be images")


def test_frames_too_small(workspace: Path) -> None:
    tiny = np.full((12, 12), 128, np.uint8)
    cv2.imwrite(str(workspace / "ir.png"), tiny)
    cv2.imwrite(str(workspace / "vis.png"), cv2.cvtColor(tiny, cv2.COLOR_GRAY2BGR))
    one_line_error(run_cli("fuse", "ir.png", "vis.png", cwd=workspace), "too small", ">= 16")


@pytest.mark.slow
@pytest.mark.shared
def test_two_batches_in_flight_give_the_same_video(workspace: Path, videos: dict[str, Path]) -> None:
    # Same batches, same engine calls: only the overlap differs, so the decoded frames are identical.
    for in_flight, out in (("1", "one.avi"), ("2", "two.avi")):
        result = run_cli("fuse", str(videos["ir"]), str(videos["vis"]), "-o", out, "--batch", "3",
                         "--in-flight", in_flight, "-q", cwd=workspace)
        assert result.returncode == 0, result.stderr
    one, two = _frames(workspace / "one.avi"), _frames(workspace / "two.avi")
    assert len(one) == len(two) == 20
    assert all(np.array_equal(a, b) for a, b in zip(one, two))


@pytest.mark.shared
def test_a_gpu_provider_that_is_not_there_is_one_line_not_a_cpu_run(workspace: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    ir = PAIRS / "MSRS" / "ir" / "00016N.png"
    vis = PAIRS / "MSRS" / "vi" / "00016N.png"
    result = run_cli("fuse", str(ir), str(vis), "--provider", "cuda", cwd=workspace)
    one_line_error(result, "CUDAExecutionProvider", "[ort-gpu]'")
    assert result.returncode == 6 and not (workspace / "fused.png").exists()


def test_videos_hold_the_stretch_steady_unless_told_frame(workspace: Path, videos: dict[str, Path]) -> None:
    # Lossless output, so the frames compare exactly: the default holds the range, so it equals
    # --stretch frame for the first frame and differs after; --stretch frame is Fuser.fuse of
    # each pair (up to the colour conversion of OpenCV's decoder here against PyAV's in the CLI); an
    # image pair refuses --stretch steady in one line.
    from occo_deploy import Fuser

    for stretch, out in (([], "steady.avi"), (["--stretch", "frame"], "frame.avi")):
        result = run_cli("fuse", str(videos["ir"]), str(videos["vis"]), "-o", out, "-q", *stretch, cwd=workspace)
        assert result.returncode == 0, result.stderr
    steady, frame = _frames(workspace / "steady.avi"), _frames(workspace / "frame.avi")
    with Fuser(workspace / "export" / "occo.onnx") as fuser:
        want = [fuser.fuse(i, v) for i, v in zip(_frames(videos["ir"]), _frames(videos["vis"]))]
    assert len(frame) == len(steady) == len(want) == 20
    assert max(np.abs(f.astype(int) - w.astype(int)).mean() for f, w in zip(frame, want)) < 0.2
    assert np.array_equal(steady[0], frame[0])
    assert any(not np.array_equal(s, f) for s, f in zip(steady[1:], frame[1:]))
    image = run_cli("fuse", str(PAIRS / "TNO" / "ir" / "07.png"), str(PAIRS / "TNO" / "vi" / "07.png"),
                    "--stretch", "steady", cwd=workspace)
    one_line_error(image, "--stretch steady holds the range across frames")
    assert image.returncode == 2


def test_eval_on_two_videos_measures_how_still_each_stretch_holds(workspace: Path, videos: dict[str, Path]) -> None:
    result = run_cli("eval", str(videos["ir"]), str(videos["vis"]), "--report", "t.json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "20 frame pairs" in result.stdout and "steady" in result.stdout
    assert max(len(line.rstrip()) for line in result.stdout.splitlines()) <= 80
    report = json.loads((workspace / "t.json").read_text())
    runs = {r["stretch"]: r for r in report["runs"]}
    assert report["frames"] == 20 and set(runs) == {"frame", "steady"}
    assert all(r["steps"] == 19 and len(r["per_step"]) == 19 for r in runs.values())
    assert runs["frame"]["psnr_vs_frame"] is None and runs["steady"]["psnr_vs_frame"] > 35
    assert runs["steady"]["mean_shift"] < runs["frame"]["mean_shift"]  # the held range pumps less
    refused = run_cli("eval", str(videos["ir"]), str(videos["vis"]), "--grid", "g.png", cwd=workspace)
    one_line_error(refused, "--grid is for image pairs")


def _file_size_limit(limit: int) -> None:
    """In the child: writes beyond ``limit`` bytes fail with EFBIG, as a full disk fails them with ENOSPC."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the error, not the signal that kills by default


@pytest.mark.slow
def test_a_full_disk_keeps_the_video_so_far_playable(workspace: Path, videos: dict[str, Path]) -> None:
    # A real limit of the operating system, not a mock: the process may write files of at most half
    # this video's size (the full disk of a recorder fails the same write with ENOSPC).
    # 60 frames at 10 fps: a keyframe, so a fragment, each second.
    ir = make_video(workspace / "ir.mp4", sequence_frames("ir") * 3, 10.0)
    vis = make_video(workspace / "vis.mp4", sequence_frames("vi") * 3, 10.0)
    whole = run_cli("fuse", str(ir), str(vis), "-o", "whole.mp4", "-q", cwd=workspace)
    assert whole.returncode == 0, whole.stderr
    size = (workspace / "whole.mp4").stat().st_size
    limit = size // 2
    result = subprocess.run([sys.executable, "-m", "occo_deploy", "fuse", str(ir), str(vis),
                             "-o", "cut.mp4", "-q"], cwd=workspace, capture_output=True, text=True, timeout=300,
                            preexec_fn=lambda: _file_size_limit(limit))
    one_line_error(result, "the disk filled after")
    assert result.returncode == 10 and "plays up to its last whole fragment" in result.stderr
    assert "--force" in result.stderr
    cut = workspace / "cut.mp4"
    assert cut.is_file() and not list(workspace.glob(".cut.*partial*"))
    frames = _frames(cut)
    assert 10 <= len(frames) < 60  # whole seconds of it, decodable
    whole_frames = _frames(workspace / "whole.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(frames[:-10], whole_frames))
