"""Registration of a rig whose cameras do not share a view: a 640x512 thermal core beside a 1280x720
visible camera, made from a real registered TNO pair with a known transform (issue 24)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from occo_deploy import Fuser
from occo_deploy.engines.gate import psnr
from occo_deploy.errors import InputError, ShapeError
from occo_deploy.registration.align import AlignRequest, align
from occo_deploy.registration.estimate import from_fov
from occo_deploy.registration.rig import Rig, mapped_corners
from tests.conftest import PAIRS, run_cli
from tests.support import one_line_error, read_image

IR_WH, VIS_WH = (640, 512), (1280, 720)


def _world(name: str = "10") -> tuple[np.ndarray, np.ndarray]:
    folder = PAIRS / "TNO"
    return read_image(folder / "ir" / f"{name}.png", 0), read_image(folder / "vi" / f"{name}.png")


def _rig_frames(name: str = "10", roll_deg: float = 1.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(infrared 640x512, visible 1280x720, the true infrared -> visible transform): the visible camera
    sees the whole registered pair, the thermal one 85% of its width, rolled a little."""
    ir_w, vis_w = _world(name)
    h, w = ir_w.shape
    sv = VIS_WH[0] / w
    a_v = np.array([[sv, 0, 0], [0, sv, -(h * sv - VIS_WH[1]) / 2], [0, 0, 1]])
    c, s = np.cos(np.radians(roll_deg)), np.sin(np.radians(roll_deg))
    si = IR_WH[0] / (0.85 * w)
    a_i = (np.array([[1, 0, IR_WH[0] / 2], [0, 1, IR_WH[1] / 2], [0, 0, 1]]) @ np.diag([si, si, 1])
           @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]]))
    return (cv2.warpPerspective(ir_w, a_i, IR_WH), cv2.warpPerspective(vis_w, a_v, VIS_WH),
            a_v @ np.linalg.inv(a_i))


def _corner_error(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(mapped_corners(found, IR_WH) - mapped_corners(truth, IR_WH)).max())


def _points_csv(path: Path, truth: np.ndarray, outlier: bool = True) -> Path:
    rng = np.random.default_rng(1)
    ir_pts = np.array([[60, 50], [580, 60], [600, 470], [40, 450], [320, 250], [200, 380], [450, 150], [330, 60]],
                      dtype=np.float64)
    vis_pts = cv2.perspectiveTransform(ir_pts.reshape(-1, 1, 2), truth).reshape(-1, 2) + rng.normal(0, 0.3, (8, 2))
    rows = [*zip(ir_pts, vis_pts)]
    if outlier:  # a mis-clicked point, 40 px off
        bad = cv2.perspectiveTransform(np.array([[[100.0, 300.0]]]), truth)[0, 0] + 40
        rows.append((np.array([100.0, 300.0]), bad))
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ir_x", "ir_y", "vis_x", "vis_y"])
        for a, b in rows:
            out.writerow([f"{a[0]:.2f}", f"{a[1]:.2f}", f"{b[0]:.2f}", f"{b[1]:.2f}"])
    return path


@pytest.mark.parametrize("model", ["similarity", "affine", "homography"])
@pytest.mark.shared
def test_control_points_give_the_rig_and_set_a_bad_point_aside(tmp_path: Path, model: str) -> None:
    ir, vis, truth = _rig_frames()
    rig = align(AlignRequest(ir, vis, model=model, points=_points_csv(tmp_path / "p.csv", truth)))
    # The bad pair is the 9th, on line 10 of the file (its header is line 1), as an editor numbers it.
    assert rig.method == "points" and rig.quality["outliers"] == "10" and rig.quality["inliers"] == 8
    assert rig.quality["residual_rms_px"] < 1.0 and _corner_error(rig.ir_to_vis, truth) < 2.0


def test_fields_of_view_give_the_scale() -> None:
    # Parallel cameras: the scale is the ratio of focal lengths in pixels (1.7 here), centres together.
    f_vis = VIS_WH[0] / 2 / np.tan(np.radians(60) / 2)
    ir_hfov = float(np.degrees(2 * np.arctan(IR_WH[0] / 2 / (f_vis / 1.7))))
    fit = from_fov(IR_WH, VIS_WH, ir_hfov, 60.0, (12.0, -4.0))
    assert fit.ir_to_vis[0, 0] == pytest.approx(1.7) and fit.ir_to_vis[1, 1] == pytest.approx(1.7)
    centre = cv2.perspectiveTransform(np.array([[[320.0, 256.0]]]), fit.ir_to_vis)[0, 0]
    assert centre == pytest.approx([640 + 12, 360 - 4])
    with pytest.raises(InputError, match="between 1 and 179"):
        from_fov(IR_WH, VIS_WH, 0.0, 60.0)


@pytest.mark.shared
def test_automatic_alignment_finds_the_rig_or_refuses() -> None:
    ir, vis, truth = _rig_frames()
    rig = align(AlignRequest(ir, vis, model="similarity"))  # from the centres, no field of view given
    assert rig.method == "automatic" and rig.quality["confidence"] >= 0.4
    assert _corner_error(rig.ir_to_vis, truth) < 8.0  # of a 1280-pixel-wide frame
    other_ir, _, _ = _rig_frames("05")  # the thermal camera of another scene: refused, not fitted
    with pytest.raises(InputError, match=r"fields of view|no convincing fit"):
        align(AlignRequest(other_ir, vis, model="similarity"))


@pytest.mark.shared
def test_fuse_with_align_fuses_the_registered_pair(workspace: Path) -> None:
    ir, vis, truth = _rig_frames()
    cv2.imwrite(str(workspace / "ir.png"), ir)
    cv2.imwrite(str(workspace / "vis.png"), vis)
    # Without a rig: the aspect ratios differ, and the error names the fix.
    one_line_error(run_cli("fuse", "ir.png", "vis.png", cwd=workspace), "occo-deploy align", "--align rig.json")
    points = _points_csv(workspace / "pairs.csv", truth)
    done = run_cli("align", "ir.png", "vis.png", "--points", "pairs.csv", "--size", "256x176", cwd=workspace)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "similarity from points: residual" in text and "set aside as outliers: line(s) 10 of pairs.csv" in text
    rig = Rig.load(workspace / "rig.json")
    overlay = read_image(workspace / "rig.png")
    assert overlay.shape[:2] == (rig.region.h, rig.region.w) and rig.output_size == (256, 176)
    fused = run_cli("fuse", "ir.png", "vis.png", "--align", "rig.json", "-o", "f.png", "--report", "r.json",
                    cwd=workspace)
    assert fused.returncode == 0, fused.stderr
    got = read_image(workspace / "f.png")
    assert got.shape == (176, 256, 3)
    # The same as fusing the pair registered with the true transform, to the fit's error.
    exact = Rig(IR_WH, VIS_WH, truth, rig.region, rig.output_size)
    with Fuser(workspace / "export" / "occo.onnx") as fuser:
        want = fuser.fuse(*exact.apply(ir, vis))
    assert psnr(want, got) > 30
    assert "align" in json.loads((workspace / "r.json").read_text())["latency"]["stages"]
    assert points.is_file()


@pytest.mark.shared
def test_rig_inputs_that_cannot_work(tmp_path: Path, exported: Path) -> None:
    ir, vis, truth = _rig_frames()
    few = tmp_path / "few.csv"
    few.write_text("ir_x,ir_y,vis_x,vis_y\n1,2,3,4\n5,6,7,8\n9,10,11,12\n")
    with pytest.raises(InputError, match="at least 4"):
        align(AlignRequest(ir, vis, points=few))
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("ir_x,ir_y,vis_x,vis_y\n" + "".join(f"{1000 + k},{600},{k},{k}\n" for k in range(4)))
    with pytest.raises(InputError, match="outside the 640x512 infrared frame"):
        align(AlignRequest(ir, vis, points=swapped))
    rig = align(AlignRequest(ir, vis, points=_points_csv(tmp_path / "p.csv", truth)))
    with Fuser(exported, align=rig) as fuser, pytest.raises(ShapeError, match="occo-deploy align"):
        fuser.fuse(ir[:256], vis)  # another camera's size
    (tmp_path / "bad.json").write_text(json.dumps({"format": "occo-deploy rig", "version": 1}))
    with pytest.raises(InputError, match="incomplete or damaged"):
        Rig.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="occo-deploy align"):
        Fuser(exported, align=tmp_path / "none.json")


@pytest.mark.shared
def test_archive_and_live_take_the_rig(workspace: Path) -> None:
    ir, vis, truth = _rig_frames()
    for sub, image in (("ir", ir), ("vis", vis)):
        (workspace / sub / "cam1").mkdir(parents=True)
        cv2.imwrite(str(workspace / sub / "cam1" / "0001.png"), image)
    rig = align(AlignRequest(ir, vis, points=_points_csv(workspace / "p.csv", truth), output_size=(192, 128)))
    (workspace / "rig.json").write_text(json.dumps(rig.as_dict()))
    done = run_cli("archive", "ir", "vis", "-o", "out", "--align", "rig.json", "-q", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert read_image(workspace / "out" / "cam1" / "0001.png").shape == (128, 192, 3)
    # Live: the same rig for two sources (here recordings, played in real time).
    from tests.conftest import make_video

    make_video(workspace / "ir.mp4", [cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR)] * 3, 5.0)
    make_video(workspace / "vis.mp4", [vis] * 3, 5.0)
    live = run_cli("fuse", "ir.mp4", "vis.mp4", "--live", "--align", "rig.json", "-o", "live.mp4", "-q",
                   cwd=workspace)
    assert live.returncode == 0, live.stderr
    cap = cv2.VideoCapture(str(workspace / "live.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (128, 192, 3)
