"""``occo-deploy align``: one frame pair -> ``rig.json`` (transform, output region, how well it fits)
and an overlay picture to check it by eye. Library code: the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.registration import estimate
from occo_deploy.registration.rig import MODELS, Rig, overlap_region


@dataclass
class AlignRequest:
    ir: np.ndarray
    vis: np.ndarray
    model: str = "similarity"
    points: Path | None = None
    fov: tuple[float, float] | None = None  # horizontal, degrees: infrared, visible
    offset: tuple[float, float] = (0.0, 0.0)  # visible pixels, with ``fov``
    automatic: bool = True  # refine the fields-of-view (or centred) guess from the frames
    output_size: tuple[int, int] | None = None  # W, H [default: the region's own size]
    min_confidence: float = estimate.MIN_CONFIDENCE


def align(req: AlignRequest) -> Rig:
    """The rig from control points, or from the fields of view refined automatically (or not)."""
    if req.model not in MODELS:
        raise InputError(f"unknown model {req.model!r}; use {', '.join(MODELS)}")
    ir_size = (req.ir.shape[1], req.ir.shape[0])
    vis_size = (req.vis.shape[1], req.vis.shape[0])
    if req.points is not None:
        ir_pts, vis_pts = estimate.read_points(req.points)
        for name, pts, (w, h) in (("infrared", ir_pts, ir_size), ("visible", vis_pts, vis_size)):
            outside = ~((pts[:, 0] >= 0) & (pts[:, 0] <= w) & (pts[:, 1] >= 0) & (pts[:, 1] <= h))
            if outside.any():
                k = int(np.flatnonzero(outside)[0])
                raise InputError(f"{req.points}: point pair {k + 1} lies outside the {w}x{h} {name} frame "
                                 f"({pts[k, 0]:g}, {pts[k, 1]:g}); are ir_x,ir_y and vis_x,vis_y swapped?")
        fit, method = estimate.from_points(ir_pts, vis_pts, req.model), "points"
    else:
        start = estimate.from_fov(ir_size, vis_size, *req.fov, req.offset) if req.fov else \
            estimate.centred_guess(ir_size, vis_size)
        if req.automatic:
            fit, method = estimate.automatic(req.ir, req.vis, req.model, start, req.min_confidence), "automatic"
        else:
            if req.fov is None:
                raise InputError("without --points or automatic refinement, give the fields of view: --fov IR,VIS")
            fit, method = start, "fields of view"
    region = overlap_region(fit.ir_to_vis, ir_size, vis_size)
    size = req.output_size or (region.w, region.h)
    return Rig(ir_size, vis_size, fit.ir_to_vis, region, size, req.model, method, dict(fit.quality))


def overlay(rig: Rig, ir: np.ndarray, vis: np.ndarray, tile: int = 48) -> np.ndarray:
    """A checkerboard of the visible crop and the warped infrared, with the infrared's edges in red:
    lines that continue across tile borders mean a good fit. At the region's own resolution."""
    full = Rig(rig.ir_size, rig.vis_size, rig.ir_to_vis, rig.region, (rig.region.w, rig.region.h))
    warped, crop = full.apply(ir, vis)
    ir8 = estimate._to_gray8(warped)
    vis_bgr = crop if crop.ndim == 3 else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    ir_bgr = cv2.cvtColor(ir8, cv2.COLOR_GRAY2BGR)
    yy, xx = np.mgrid[0:crop.shape[0], 0:crop.shape[1]]
    board = ((yy // tile + xx // tile) % 2 == 0)[..., None]
    picture = np.where(board, vis_bgr[:, :, :3], ir_bgr).astype(np.uint8)
    edges = cv2.Canny(cv2.GaussianBlur(ir8, (5, 5), 0), 40, 120) > 0
    picture[edges] = (0, 0, 255)
    return picture
