"""16-bit and float infrared, frames of any size, inputs the wrong way round: real thermal counts."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from occo_deploy import Fuser, InputError, ShapeError
from occo_deploy.errors import cli_context
from occo_deploy.runtime.irscale import IrScale, IrScaler
from tests.conftest import PAIRS, SHARED, run_cli
from tests.support import one_line_error

THERMAL16 = SHARED / "data" / "thermal16"


def _thermal(name: str) -> np.ndarray:
    frame = cv2.imread(str(THERMAL16 / name), cv2.IMREAD_UNCHANGED)
    assert frame.dtype == np.uint16 and frame.shape == (240, 320)
    return frame


def _visible(hw: tuple[int, int] = (240, 320)) -> np.ndarray:
    # The thermal frames have no visible partner: any real visible frame of their size stands in
    # (the fused images are not scenes; these tests check the scaling, not the fusion's look).
    return cv2.resize(cv2.imread(str(PAIRS / "MSRS" / "vi" / "00537D.png")), (hw[1], hw[0]))


def _ir8() -> np.ndarray:
    return cv2.resize(cv2.imread(str(PAIRS / "MSRS" / "ir" / "00537D.png"), cv2.IMREAD_GRAYSCALE), (320, 240))


@pytest.mark.shared
def test_real_16_bit_thermal_frames_fuse_with_the_default_percentile_stretch(exported: Path) -> None:
    with Fuser(exported) as fuser:
        for name in ("sc640_floor_heating.png", "e60_moving_car.png", "e60_moving_mercedes.png"):
            counts = _thermal(name)
            fused = fuser.fuse(counts, _visible())
            assert fused.shape == (240, 320, 3) and fused.dtype == np.uint8
            low, high = fuser.ir_scaler.last_range
            assert counts.min() <= low < high <= counts.max()  # percentiles 1 and 99 of the counts
            gray = fuser.ir_scaler(counts)
            assert np.mean(gray == 0) < 0.02 and np.mean(gray == 255) < 0.02 and gray.std() > 30
        info = fuser.info()["ir_scale"]
    assert info["input_dtypes"] == ["uint16"] and info["description"].endswith("by percentile 1..99")


@pytest.mark.shared
def test_a_linear_map_of_an_8_bit_frame_fuses_identically_under_minmax(exported: Path) -> None:
    ir8 = _ir8()
    ir16 = ir8.astype(np.uint16) * 37 + 12345  # exact: counts = a x + b
    ir32 = ir8.astype(np.float32) * 0.25 - 40.0  # float: temperatures, say
    vis = _visible()
    with Fuser(exported, ir_scale="minmax") as fuser:
        want = fuser.fuse(ir8, vis)
        assert np.array_equal(fuser.fuse(ir16, vis), want)
        assert np.array_equal(fuser.fuse(ir32, vis), want)
    # Unnamed, an 8-bit frame passes unchanged: fidelity to the reference is untouched.
    scaler = IrScaler(IrScale())
    assert scaler(ir8) is ir8 and scaler.frames == 0


@pytest.mark.shared
def test_fixed_counts_give_the_same_grey_in_every_frame() -> None:
    scaler = IrScaler(IrScale.parse("fixed:12000,21000"))
    a, b = _thermal("e60_moving_mercedes.png"), _thermal("e60_moving_car.png")  # overlapping counts
    ga, gb = scaler(a), scaler(b)
    shared = np.intersect1d(a, b)
    assert shared.size > 100
    for count in shared[:: max(1, shared.size // 50)]:
        assert set(np.unique(ga[a == count])) == set(np.unique(gb[b == count])), count
    assert scaler(np.full((4, 4), 21000, np.uint16)).max() == 255
    assert scaler(np.full((4, 4), 9000, np.uint16)).max() == 0


@pytest.mark.shared
def test_smoothing_bounds_the_range_change_between_frames() -> None:
    base = _thermal("e60_moving_car.png")
    frames = [base.copy() for _ in range(12)]
    for f in frames[6:]:
        f[:60, :80] = 30000  # a hot object enters: the 99th percentile jumps
    jumpy, smooth = IrScaler(IrScale.parse("percentile")), IrScaler(IrScale.parse("percentile", 0.2))
    steps = {}
    for name, scaler in (("jumpy", jumpy), ("smooth", smooth)):
        highs = []
        for f in frames:
            scaler(f)
            highs.append(scaler.last_range[1])
        steps[name] = np.abs(np.diff(highs))
    jump = steps["jumpy"].max()
    assert jump > 5000
    assert steps["smooth"].max() <= 0.2 * jump + 1  # each frame moves the range by at most a of the jump


@pytest.mark.shared
def test_bad_values_are_documented_results_or_one_line_errors(exported: Path, workspace: Path) -> None:
    scaler = IrScaler(IrScale.parse("percentile"))
    assert np.all(scaler(np.full((8, 8), 15000, np.uint16)) == 128)  # one count: mid-grey, as documented
    hot = np.linspace(20.0, 40.0, 64, dtype=np.float32).reshape(8, 8)
    hot[0, 0], hot[1, 1] = np.nan, np.inf
    out = scaler(hot)
    assert out[0, 0] == 0 and out[1, 1] == 0 and out.max() == 255
    with pytest.raises(InputError, match="no finite value"):
        scaler(np.full((8, 8), np.nan, np.float32))
    with Fuser(exported) as fuser, pytest.raises(InputError, match="no finite value"):
        fuser.check_pair(np.full((240, 320), np.nan, np.float32), _visible())
    with pytest.raises(ShapeError, match="visible frame must be uint8"):
        Fuser(exported).fuse(_ir8(), _visible().astype(np.uint16))
    one_line_error(run_cli("fuse", "a", "b", "--ir-scale", "fixed", cwd=workspace), "fixed:MIN,MAX")
    one_line_error(run_cli("fuse", "a", "b", "--ir-smooth", "2", cwd=workspace), "0 < a <= 1")


@pytest.mark.shared
def test_16_bit_video_is_read_whole_and_scaled(workspace: Path) -> None:
    av = pytest.importorskip("av")
    counts = [_thermal(n) for n in ("e60_moving_car.png", "e60_moving_mercedes.png")] * 3
    container = av.open(str(workspace / "ir16.mkv"), "w")
    stream = container.add_stream("ffv1", rate=10)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "gray16le"
    for k, c in enumerate(counts):
        frame = av.VideoFrame.from_ndarray(c, format="gray16le")
        frame.pts = k
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    from occo_deploy.video.streams import probe, write_video

    info = probe(workspace / "ir16.mkv", "infrared")
    assert info.first_frame.dtype == np.uint16 and np.array_equal(info.first_frame, counts[0])
    write_video(workspace / "vis.mp4", [_visible()] * len(counts), 10.0)
    result = run_cli("fuse", "ir16.mkv", "vis.mp4", "-o", "out.mp4", "--ir-smooth", "0.3", "--report", "r.json",
                     "-q", cwd=workspace)
    assert result.returncode == 0, result.stderr
    import json

    scale = json.loads((workspace / "r.json").read_text())["engine"]["ir_scale"]
    assert scale["input_dtypes"] == ["uint16"] and scale["frames_scaled"] == len(counts)
    assert "smoothed (a=0.3)" in scale["description"]


@pytest.mark.shared
def test_inputs_the_wrong_way_round_are_noticed_and_swap_fixes_them(workspace: Path) -> None:
    ir, vis = workspace / "ir.png", workspace / "vis.png"  # a real MSRS pair at half size (CI time)
    for src, dst in ((PAIRS / "MSRS" / "ir" / "00537D.png", ir), (PAIRS / "MSRS" / "vi" / "00537D.png", vis)):
        cv2.imwrite(str(dst), cv2.resize(cv2.imread(str(src), cv2.IMREAD_UNCHANGED), (320, 240),
                                         interpolation=cv2.INTER_AREA))
    swapped = run_cli("fuse", str(vis), str(ir), "-o", "swapped.png", cwd=workspace)
    assert swapped.returncode == 0
    assert "note: the visible input looks infrared and vice versa" in swapped.stderr and "--swap" in swapped.stderr
    fixed = run_cli("fuse", str(vis), str(ir), "-o", "fixed.png", "--swap", cwd=workspace)
    right = run_cli("fuse", str(ir), str(vis), "-o", "right.png", cwd=workspace)
    assert fixed.returncode == right.returncode == 0 and "looks infrared" not in fixed.stderr + right.stderr
    assert np.array_equal(cv2.imread(str(workspace / "fixed.png")), cv2.imread(str(workspace / "right.png")))


@pytest.mark.shared
def test_max_side_fuses_smaller_and_returns_the_visible_size(exported: Path) -> None:
    ir = cv2.imread(str(PAIRS / "MSRS" / "ir" / "00537D.png"), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(PAIRS / "MSRS" / "vi" / "00537D.png"))
    with Fuser(exported, max_side=320) as small, Fuser(exported) as full:
        got = small.fuse(ir, vis)
        assert got.shape == vis.shape and any("fused at 320x240" in n for n in small.notices)
        want = cv2.resize(full.fuse(cv2.resize(ir, (320, 240), interpolation=cv2.INTER_AREA),
                                    cv2.resize(vis, (320, 240), interpolation=cv2.INTER_AREA)), (640, 480))
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_a_size_that_cannot_fit_fails_in_seconds_with_the_ways_out(exported: Path) -> None:
    from occo_deploy.runtime.memory import available_bytes, current_rss

    vis = np.zeros((2160, 3840, 3), np.uint8)
    vis[::7] = 200
    ir = np.zeros((2160, 3840), np.uint8)
    with Fuser(exported) as fuser:
        assert fuser.memory is not None and fuser.memory.label == "onnxruntime fp32"
        # A batch of 4K frames just past what this machine has free, however much that is (the frames
        # themselves are 8 views of one array: the check runs before any buffer is allocated).
        free = (available_bytes() or 0) + current_rss()
        n = max(2, math.ceil(free / fuser.memory.estimate(2160 * 3840)) + 1)
        assert fuser.memory.estimate(n * 2160 * 3840) > free
        start = time.perf_counter()
        with pytest.raises(ShapeError, match=r"needs about .* GB; .* GB is free: use max_side=\d+ .*OpenVINO .*"
                                             r"fewer frames per batch \(batch="):
            fuser.fuse_batch([ir] * n, [vis] * n)
        assert time.perf_counter() - start < 5
        with cli_context(), pytest.raises(ShapeError, match=r"use --max-side \d+ .*\(--batch \d+\)"):
            fuser.fuse_batch([ir] * n, [vis] * n)  # the same, named for the command line


def test_the_memory_check_needs_no_particular_machine() -> None:
    """The estimate against a given budget: fits, or fails naming a side that would fit."""
    from occo_deploy import backends

    model = backends.memory_model(backends.get("onnxruntime"), "fp32")
    one = model.estimate(480 * 640)
    model.check(1, 480, 640, free=one)  # exactly enough
    with pytest.raises(ShapeError, match=r"max_side=(\d+)") as caught:
        model.check(1, 2160, 3840, free=one)
    side = int(re.search(r"max_side=(\d+)", str(caught.value)).group(1))  # type: ignore[union-attr]
    model.check(1, side * 9 // 16, side, free=one)  # the side it names fits
    lean = backends.memory_model(backends.get("openvino"), "int8")
    assert lean.leaner is None and lean.estimate(2160 * 3840) < 0.6 * model.estimate(2160 * 3840)
