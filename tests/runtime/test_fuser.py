"""Fuser: the Python API on real pairs through the exported ONNX on ONNX Runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from occo_deploy import EngineError, Fuser, ShapeError
from occo_deploy.sidecar import sidecar_path
from tests.conftest import PAIRS, bgr, load_case


def _pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    case = load_case(name)
    return case["ir"], bgr(case["vis"])


@pytest.mark.shared
def test_fuse_matches_reference_and_reports_stages(fuser: Fuser) -> None:
    fuser.stats.reset()
    ir, vis = _pair("roadscene_FLIR_07504")
    fused = fuser.fuse(ir, vis)
    want = bgr(load_case("roadscene_FLIR_07504")["fused"])
    assert fused.shape == vis.shape and fused.dtype == np.uint8
    assert np.abs(fused.astype(int) - want.astype(int)).max() <= 1
    summary = fuser.stats.summary()
    assert summary["frames"] == 1
    assert {"prepare", "infer", "finish", "total"} <= summary["stages"].keys()
    infer = summary["stages"]["infer"]
    assert infer["count"] == 1 and infer["p50_ms"] > 0 and infer["p99_ms"] >= infer["p50_ms"]


@pytest.mark.shared
def test_batch_equals_single_calls(fuser: Fuser) -> None:
    # Three different real scenes cropped to one size: per-sample min-max keeps them independent.
    # ONNX Runtime may sum in another order for N=3 than for N=1, which can flip the final
    # truncation of a rare pixel by one level (the same tolerance as against the reference).
    names = ["msrs_00016N", "msrs_00537D", "tno_05"]
    pairs = [_pair(n) for n in names]
    irs = [ir[:96, :128] for ir, _ in pairs]
    viss = [vis[:96, :128] for _, vis in pairs]
    batch = fuser.fuse_batch(irs, viss)
    assert batch.shape == (3, 96, 128, 3)
    for k in range(3):
        diff = np.abs(batch[k].astype(int) - fuser.fuse(irs[k], viss[k]).astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    # A min-max over the whole batch would have changed every frame; per-sample keeps them apart.
    assert np.abs(batch[0].astype(int) - batch[1].astype(int)).mean() > 5


def test_three_channel_infrared_and_gray_visible_are_accepted(fuser: Fuser) -> None:
    ir, vis = _pair("tno_07")  # TNO: gray scenes
    gray_vis = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(fuser.fuse(ir, vis), fuser.fuse(cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR), vis))
    assert np.array_equal(fuser.fuse(ir, vis), fuser.fuse(ir, gray_vis[..., None]))
    assert np.array_equal(fuser.fuse(ir, vis), fuser.fuse(ir, gray_vis))


@pytest.mark.shared
def test_infrared_of_another_size_is_resized_and_recorded(exported: Path) -> None:
    ir, vis = _pair("msrs_00016N")
    small_ir = cv2.resize(ir, (320, 240), interpolation=cv2.INTER_AREA)
    with Fuser(exported) as f:
        fused = f.fuse(small_ir, vis)
        assert f.ir_resized_from == (240, 320)
        expected = f.fuse(cv2.resize(small_ir, (640, 480), interpolation=cv2.INTER_LINEAR), vis)
    assert fused.shape == (480, 640, 3)
    assert np.array_equal(fused, expected)


@pytest.mark.parametrize(
    ("ir", "vis", "message"),
    [
        (np.zeros((480, 200), np.uint8), np.zeros((480, 640, 3), np.uint8), "occo-deploy align"),
        (np.zeros((15, 40), np.uint8), np.zeros((15, 40, 3), np.uint8), "too small"),
        (np.zeros((32, 32), np.int32), np.zeros((32, 32, 3), np.uint8), "takes uint8, uint16 or float"),
        (np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.uint16), "visible frame must be uint8"),
        (np.zeros((32, 32), np.uint8), np.zeros((32, 32, 5), np.uint8), "neither"),
    ],
)
def test_bad_frames_raise_shape_errors(fuser: Fuser, ir: np.ndarray, vis: np.ndarray, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        fuser.fuse(ir, vis)


def test_mixed_sizes_in_one_batch_are_refused(fuser: Fuser) -> None:
    a, b = np.zeros((32, 32, 3), np.uint8), np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ShapeError, match="share a size"):
        fuser.fuse_batch([a[..., 0], b[..., 0]], [a, b])


def test_engine_changed_after_export_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "occo.onnx"
    shutil.copy(exported, copy)
    shutil.copy(sidecar_path(exported), sidecar_path(copy))
    with open(copy, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(EngineError, match="does not match its sidecar"):
        Fuser(copy)


def test_foreign_onnx_is_refused(tmp_path: Path) -> None:
    x = onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["images"], ["out"])], "g", [x], [y])
    path = tmp_path / "yolo.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), path)
    with pytest.raises(EngineError, match="not an occo-deploy model"):
        Fuser(path)


def test_missing_engine_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="occo-deploy export"):
        Fuser(tmp_path / "none.onnx")


def test_unreadable_sidecar_is_an_engine_error(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "occo.onnx"
    shutil.copy(exported, copy)
    sidecar_path(copy).write_text("{not json")
    with pytest.raises(EngineError, match="cannot read"):
        Fuser(copy)


def test_newer_sidecar_format_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "occo.onnx"
    shutil.copy(exported, copy)
    meta = json.loads(sidecar_path(exported).read_text())
    meta["format_version"] = 99
    sidecar_path(copy).write_text(json.dumps(meta))
    with pytest.raises(EngineError, match="newer occo-deploy"):
        Fuser(copy)


@pytest.mark.shared
def test_real_pair_from_files_of_different_modes(fuser: Fuser) -> None:
    # MSRS day: IR stored as 3-channel gray PNG, visible RGB PNG.
    ir = cv2.imread(str(PAIRS / "MSRS" / "ir" / "00055D.png"), cv2.IMREAD_UNCHANGED)
    vis = cv2.imread(str(PAIRS / "MSRS" / "vi" / "00055D.png"), cv2.IMREAD_UNCHANGED)
    assert ir.ndim == 3
    fused = fuser.fuse(ir, vis)
    assert fused.shape == vis.shape
    assert fused.std() > 10  # a real picture, not a flat frame


def _shared_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Real pairs of two sizes (slots get reshaped and regrown while threads race for them)."""
    from occo_deploy.calibration import data as calib_data

    items = calib_data.discover(PAIRS)[:6]
    return [calib_data.load_pair(item, (96, 128) if k % 2 else (120, 160)) for k, item in enumerate(items)]


@pytest.mark.parametrize("in_flight", [pytest.param(1, marks=pytest.mark.slow), 2])
@pytest.mark.shared
def test_one_fuser_shared_by_many_threads(exported: Path, in_flight: int) -> None:
    """A web server or camera callbacks share one Fuser: every caller gets its own correct frame.
    (Before, 3 of 4 threads got 'all staging slots are in flight'.)"""
    from concurrent.futures import ThreadPoolExecutor

    pairs = _shared_pairs()
    with Fuser(exported, in_flight=in_flight) as fuser:
        want = [fuser.fuse(ir, vis) for ir, vis in pairs]

        def call(k: int) -> tuple[int, np.ndarray]:
            ir, vis = pairs[k % len(pairs)]
            return k, fuser.fuse(ir, vis)

        def stream(_: int) -> list[np.ndarray]:
            return [f for _, f in fuser.fuse_stream(((k, *pairs[k]) for k in range(len(pairs))), batch=2)]

        with ThreadPoolExecutor(6) as pool:
            streamed = pool.submit(stream, 0)
            got = list(pool.map(call, range(30)))
            streamed_frames = streamed.result()
    for k, frame in got:
        assert np.array_equal(frame, want[k % len(pairs)]), k
    assert len(streamed_frames) == len(pairs)
    for frame, ref in zip(streamed_frames, want):  # batched: summation order may flip a truncation
        assert np.abs(frame.astype(int) - ref.astype(int)).max() <= 1
    assert fuser.stats.summary()["frames"] >= len(pairs) + 30
