"""Estimating a rig's infrared -> visible transform: from control points, from the two fields of view,
or automatically from the frames themselves.

* **Points** (``pairs.csv``: ``ir_x,ir_y,vis_x,vis_y``, each in its own image's pixels, at least 4):
  least squares; with more points than the model needs, RANSAC first, so one mis-clicked point is
  set aside (and reported) instead of bending the fit.
* **Fields of view**: pinhole cameras with parallel axes: the scale is the ratio of the focal
  lengths in pixels, the centres coincide, plus an optional offset (cameras side by side).
* **Automatic**: infrared and visible intensities are unrelated (hot is not bright), but edges
  mostly coincide: ECC (OpenCV's ``findTransformECC``, enhanced correlation) on gradient-magnitude
  images, coarse to fine, starting from the fields-of-view guess (or the cameras' centres aligned).
  Its correlation is the confidence; below ``min_confidence`` the fit is refused, not returned.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.registration.rig import MODELS

#: The fewest point pairs each model is solved from (the CLI asks at least 4 for any: a check).
MIN_POINTS = {"scale": 2, "similarity": 2, "affine": 3, "homography": 4}
#: Pixels (in the visible frame) past which RANSAC calls a point pair an outlier.
RANSAC_PX = 4.0
#: Correlation of the gradient images below which an automatic fit is refused: 0.2-0.3 is what
#: unrelated scenes reach on real pairs, 0.5 and above what registered ones do (tests/registration).
MIN_CONFIDENCE = 0.4
#: Scales tried around the starting guess before refining (a field of view guessed 30% off still
#: converges).
SCALE_TRIES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4)


@dataclass
class Fit:
    ir_to_vis: np.ndarray  # 3 x 3
    quality: dict[str, float | int | str]


def read_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(infrared N x 2, visible N x 2) from a CSV with the header ``ir_x,ir_y,vis_x,vis_y``."""
    if not path.is_file():
        raise InputError(f"points file not found: {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = ["ir_x", "ir_y", "vis_x", "vis_y"]
    if not rows or any(k not in rows[0] for k in header):
        raise InputError(f"{path} needs the header {','.join(header)} and one point pair a line (in each "
                         "image's own pixels)")
    try:
        values = np.array([[float(r[k]) for k in header] for r in rows], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: every value must be a number ({exc})") from exc
    if len(values) < 4:
        raise InputError(f"{path} holds {len(values)} point pair(s); give at least 4, spread over the frame")
    return values[:, :2], values[:, 2:]


def _scale_translation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """x' = s x + tx, y' = s y + ty by least squares."""
    n = len(src)
    a = np.zeros((2 * n, 3))
    a[0::2, 0], a[0::2, 1] = src[:, 0], 1
    a[1::2, 0], a[1::2, 2] = src[:, 1], 1
    s, tx, ty = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)[0]
    return np.array([[s, 0, tx], [0, s, ty], [0, 0, 1]])


def _project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def _solve(model: str, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The model by least squares on all the given pairs."""
    if model == "scale":
        return _scale_translation(src, dst)
    if model == "homography":
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None:
            raise InputError("the point pairs do not determine a homography (three or more on one line?)")
        return h
    solver = cv2.estimateAffinePartial2D if model == "similarity" else cv2.estimateAffine2D
    m, _ = solver(src, dst, method=cv2.LMEDS) if len(src) > MIN_POINTS[model] else (None, None)
    if m is None:  # exactly determined, or LMEDS gave up: plain least squares
        m = _affine_lstsq(src, dst, partial=model == "similarity")
    return np.vstack([m, [0, 0, 1]])


def _affine_lstsq(src: np.ndarray, dst: np.ndarray, partial: bool) -> np.ndarray:
    n = len(src)
    if partial:  # [a -b tx; b a ty]
        a = np.zeros((2 * n, 4))
        a[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)]
        a[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(n), np.ones(n)]
        p, q, tx, ty = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)[0]
        return np.array([[p, -q, tx], [q, p, ty]])
    a = np.c_[src, np.ones(n)]
    return np.linalg.lstsq(a, dst, rcond=None)[0].T


def from_points(ir_pts: np.ndarray, vis_pts: np.ndarray, model: str) -> Fit:
    """The model through the point pairs; RANSAC sets outliers aside when there are spare points."""
    if model not in MODELS:
        raise InputError(f"unknown model {model!r}; use {', '.join(MODELS)}")
    inliers = np.ones(len(ir_pts), dtype=bool)
    if len(ir_pts) > MIN_POINTS[model] + 1:
        best = 0
        rng = np.random.default_rng(0)
        for _ in range(500):
            pick = rng.choice(len(ir_pts), MIN_POINTS[model], replace=False)
            try:
                h = _solve(model, ir_pts[pick], vis_pts[pick])
            except (InputError, np.linalg.LinAlgError, cv2.error):
                continue
            close = np.linalg.norm(_project(h, ir_pts) - vis_pts, axis=1) < RANSAC_PX
            if close.sum() > best:
                best, inliers = int(close.sum()), close
        if inliers.sum() < max(4, MIN_POINTS[model]):
            raise InputError(f"no {model} fits at least 4 of the {len(ir_pts)} point pairs within "
                             f"{RANSAC_PX:g} px; check the points (ir_x,ir_y,vis_x,vis_y, each in its image's pixels)")
    h = _solve(model, ir_pts[inliers], vis_pts[inliers])
    errors = np.linalg.norm(_project(h, ir_pts) - vis_pts, axis=1)
    quality: dict[str, float | int | str] = {
        "residual_rms_px": round(float(np.sqrt(np.mean(errors[inliers] ** 2))), 3),
        "residual_max_px": round(float(errors[inliers].max()), 3), "points": len(ir_pts),
        "inliers": int(inliers.sum())}
    if not inliers.all():
        # Lines of the CSV as an editor numbers them: its header is line 1, the first pair line 2.
        quality["outliers"] = ", ".join(str(k + 2) for k in np.flatnonzero(~inliers))
    return Fit(h, quality)


def from_fov(ir_size: tuple[int, int], vis_size: tuple[int, int], ir_hfov: float, vis_hfov: float,
             offset: tuple[float, float] = (0.0, 0.0)) -> Fit:
    """Scale + translation from horizontal fields of view (degrees): parallel axes, centres together,
    then ``offset`` (visible pixels) for cameras side by side."""
    for name, fov in (("infrared", ir_hfov), ("visible", vis_hfov)):
        if not 1.0 <= fov < 179.0:
            raise InputError(f"{name} field of view {fov:g} degrees is not between 1 and 179")
    f_ir = ir_size[0] / 2 / math.tan(math.radians(ir_hfov) / 2)
    f_vis = vis_size[0] / 2 / math.tan(math.radians(vis_hfov) / 2)
    s = f_vis / f_ir
    tx = vis_size[0] / 2 - s * ir_size[0] / 2 + offset[0]
    ty = vis_size[1] / 2 - s * ir_size[1] / 2 + offset[1]
    return Fit(np.array([[s, 0, tx], [0, s, ty], [0, 0, 1]]), {"from": "fields of view", "scale": round(s, 5)})


def centred_guess(ir_size: tuple[int, int], vis_size: tuple[int, int]) -> Fit:
    """No field of view known: the infrared frame over the visible one's centre, as large as fits."""
    s = min(vis_size[0] / ir_size[0], vis_size[1] / ir_size[1])
    tx, ty = (vis_size[0] - s * ir_size[0]) / 2, (vis_size[1] - s * ir_size[1]) / 2
    return Fit(np.array([[s, 0, tx], [0, s, ty], [0, 0, 1]]), {"from": "centres aligned"})


def _edges(gray: np.ndarray) -> np.ndarray:
    """Gradient magnitude, normalised: what infrared and visible frames of one scene share."""
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.5)
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    return mag / (float(np.percentile(mag, 99)) + 1e-6)


def _to_gray8(image: np.ndarray) -> np.ndarray:
    gray = image if image.ndim == 2 else cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
    if gray.dtype != np.uint8:
        lo, hi = np.percentile(gray, (1, 99))
        gray = np.clip((gray.astype(np.float32) - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return gray


def automatic(ir: np.ndarray, vis: np.ndarray, model: str, start: Fit,
              min_confidence: float = MIN_CONFIDENCE) -> Fit:
    """ECC on gradient images from ``start``, coarse to fine; refused below ``min_confidence``."""
    if model not in MODELS:
        raise InputError(f"unknown model {model!r}; use {', '.join(MODELS)}")
    ir_g, vis_g = _edges(_to_gray8(ir)), _edges(_to_gray8(vis))
    motion = cv2.MOTION_HOMOGRAPHY if model == "homography" else cv2.MOTION_AFFINE
    # ECC's warp maps template (visible) pixels to input (infrared) pixels: the inverse of ours.
    levels = max(1, min(4, int(math.log2(min(vis_g.shape) / 64)) + 1))
    def ecc(level: int, warp: np.ndarray, motion: int, iterations: int) -> tuple[float, np.ndarray]:
        f = 2.0 ** -level
        down = np.diag([f, f, 1.0])
        w = down @ warp @ np.linalg.inv(down)  # the warp in this level's pixels
        v = cv2.resize(vis_g, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if level else vis_g
        i = cv2.resize(ir_g, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if level else ir_g
        w32 = (w if motion == cv2.MOTION_HOMOGRAPHY else w[:2]).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-6)
        cc, w32 = cv2.findTransformECC(v, i, w32, motion, criteria, None)  # Gaussian 5x5 by default
        w = w32.astype(np.float64) if motion == cv2.MOTION_HOMOGRAPHY else np.vstack([w32, [0, 0, 1]])
        return float(cc), np.linalg.inv(down) @ w @ down

    # The start may be off in scale (a guessed field of view): try scales around it at the coarsest
    # level (cheap), keep the best correlation, then refine level by level.
    top = levels - 1
    centre = np.array([vis.shape[1] / 2, vis.shape[0] / 2])
    best: tuple[float, np.ndarray] | None = None
    for k in SCALE_TRIES:
        around = np.array([[k, 0, (1 - k) * centre[0]], [0, k, (1 - k) * centre[1]], [0, 0, 1]])
        try:
            tried = ecc(top, np.linalg.inv(around @ start.ir_to_vis), cv2.MOTION_AFFINE, 60)
        except cv2.error:
            continue
        if best is None or tried[0] > best[0]:
            best = tried
    if best is None:
        raise InputError("the automatic alignment did not converge (the frames share too few edges); give "
                         "control points (--points) or the fields of view (--fov)")
    cc, warp = best
    for level in reversed(range(levels)):
        try:
            cc, warp = ecc(level, warp, motion, 100)
        except cv2.error as exc:
            raise InputError("the automatic alignment did not converge (the frames share too few edges); give "
                             "control points (--points) or the fields of view (--fov)") from exc
    ir_to_vis = np.linalg.inv(warp)
    ir_to_vis /= ir_to_vis[2, 2]
    if model in ("scale", "similarity"):  # the affine found, projected onto the model through a grid
        grid = np.stack(np.meshgrid(np.linspace(0, ir.shape[1], 5), np.linspace(0, ir.shape[0], 5)), -1).reshape(-1, 2)
        ir_to_vis = _solve(model, grid, _project(ir_to_vis, grid))
    scale = math.sqrt(abs(np.linalg.det(ir_to_vis[:2, :2])))
    quality: dict[str, float | int | str] = {"confidence": round(cc, 4), "start": str(start.quality.get("from", "")),
                                             "scale": round(scale, 5)}
    if not cc >= min_confidence:
        from_fov = start.quality.get("from") == "fields of view"
        ways = ("control points (--points pairs.csv), the fit from your fields of view alone (--no-refine)"
                if from_fov else "control points (--points pairs.csv) or the fields of view (--fov IR,VIS)")
        raise InputError(f"automatic alignment found no convincing fit (edge correlation {cc:.2f}, needs "
                         f"{min_confidence:g}): the cameras may not see the same scene here; give {ways}, or "
                         "another frame pair")
    return Fit(ir_to_vis, quality)
