"""A fixed camera rig: how the infrared frame maps into the visible one, and what the engine sees.

Thermal and visible cameras side by side (or in one housing) differ in field of view, resolution and
offset; the network expects registered frames. A ``Rig`` holds the 3x3 transform from infrared
pixels to visible pixels and the output region: the part of the visible frame both cameras see,
scaled to the output size. ``apply`` gives the engine a registered pair: the visible frame cropped
and scaled, the infrared frame warped onto it (one ``warpPerspective`` per frame). ``rig.json`` is
what ``occo-deploy align`` writes and ``--align`` / ``Fuser(align=...)`` read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from occo_deploy.errors import InputError, ShapeError

FORMAT = "occo-deploy rig"
VERSION = 1
#: Transform models, from the fewest parameters: scale + translation (parallel cameras, same
#: orientation), similarity (+ rotation), affine (+ shear, unequal scales), homography (a plane seen
#: from two places: exact for distant scenes).
MODELS = ("scale", "similarity", "affine", "homography")


@dataclass
class Region:
    """A rectangle of the visible frame, in its pixels."""

    x: int
    y: int
    w: int
    h: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass
class Rig:
    ir_size: tuple[int, int]  # W, H
    vis_size: tuple[int, int]  # W, H
    ir_to_vis: np.ndarray  # 3 x 3, infrared pixel -> visible pixel
    region: Region
    output_size: tuple[int, int]  # W, H the engine sees
    model: str = "similarity"
    method: str = "points"
    #: How well it fits: residual in visible pixels (points), correlation (automatic), or the guess.
    quality: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ir_to_vis = np.asarray(self.ir_to_vis, dtype=np.float64).reshape(3, 3)
        # Infrared pixels -> output pixels: the transform, then the region's crop and scale.
        sx, sy = self.output_size[0] / self.region.w, self.output_size[1] / self.region.h
        to_output = np.array([[sx, 0, -sx * self.region.x], [0, sy, -sy * self.region.y], [0, 0, 1]])
        self._warp = to_output @ self.ir_to_vis
        self._affine = bool(np.allclose(self._warp[2], [0, 0, 1]))

    # -- the per-frame work ------------------------------------------------------------------
    def apply(self, ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(infrared warped onto the output region, visible cropped to it), both at ``output_size``."""
        self.check(ir.shape[:2], vis.shape[:2])
        r, size = self.region, self.output_size
        crop = vis[r.y:r.y + r.h, r.x:r.x + r.w]
        if (r.w, r.h) != size:
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if size[0] < r.w else cv2.INTER_LINEAR)
        if self._affine:
            warped = cv2.warpAffine(ir, self._warp[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = cv2.warpPerspective(ir, self._warp, size, flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
        return warped, np.ascontiguousarray(crop)

    def check(self, ir_hw: tuple[int, ...], vis_hw: tuple[int, ...]) -> None:
        """A ``ShapeError`` when the frames are not the sizes the rig was aligned for."""
        if (ir_hw[1], ir_hw[0]) != self.ir_size or (vis_hw[1], vis_hw[0]) != self.vis_size:
            raise ShapeError(
                f"the rig was aligned for infrared {self.ir_size[0]}x{self.ir_size[1]} and visible "
                f"{self.vis_size[0]}x{self.vis_size[1]}, these frames are {ir_hw[1]}x{ir_hw[0]} and "
                f"{vis_hw[1]}x{vis_hw[0]}; align these cameras with: occo-deploy align"
            )

    # -- files -------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "model": self.model, "method": self.method,
                "ir_size": list(self.ir_size), "vis_size": list(self.vis_size),
                "ir_to_vis": [[float(v) for v in row] for row in self.ir_to_vis],
                "region": self.region.as_dict(), "output_size": list(self.output_size), "quality": self.quality}

    @classmethod
    def from_dict(cls, data: Any, source: str = "the rig") -> Rig:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{source} is not an occo-deploy rig file; make one with: occo-deploy align IR VIS")
        if int(data.get("version", 0)) > VERSION:
            raise InputError(f"{source} was written by a newer occo-deploy (rig version {data['version']}); "
                             "upgrade occo-deploy")
        try:
            region = Region(**{k: int(data["region"][k]) for k in ("x", "y", "w", "h")})
            rig = cls(ir_size=_size(data["ir_size"]), vis_size=_size(data["vis_size"]),
                      ir_to_vis=np.array(data["ir_to_vis"], dtype=np.float64), region=region,
                      output_size=_size(data["output_size"]), model=str(data.get("model", "")),
                      method=str(data.get("method", "")), quality=dict(data.get("quality") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source} is incomplete or damaged ({type(exc).__name__}: {exc}); "
                             "align the rig again") from exc
        if rig.region.w < 16 or rig.region.h < 16 or rig.output_size[0] < 16 or rig.output_size[1] < 16:
            raise InputError(f"{source}: the region both cameras see is under 16 pixels wide or high")
        r, (w, h) = rig.region, rig.vis_size
        if r.x < 0 or r.y < 0 or r.x + r.w > w or r.y + r.h > h:
            raise InputError(f"{source}: its region ({r.x},{r.y} {r.w}x{r.h}) leaves the {w}x{h} visible frame; "
                             "align the rig again")
        return rig

    @classmethod
    def load(cls, path: str | Path) -> Rig:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"rig file not found: {path}; make one with: occo-deploy align IR VIS -o {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the rig file {path} ({exc})") from exc
        return cls.from_dict(data, str(path))


def _size(value: Any) -> tuple[int, int]:
    w, h = (int(v) for v in value)
    return w, h


def mapped_corners(ir_to_vis: np.ndarray, ir_size: tuple[int, int]) -> np.ndarray:
    """The infrared frame's corners (TL, TR, BR, BL) in visible pixels."""
    w, h = ir_size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(corners, ir_to_vis).reshape(4, 2)


def overlap_region(ir_to_vis: np.ndarray, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> Region:
    """The largest axis-aligned box of the visible frame inside the infrared frame's footprint (for the
    small rotations of a real rig, the box between the footprint's inner edges), on even pixels."""
    tl, tr, br, bl = mapped_corners(ir_to_vis, ir_size)
    x0, x1 = max(tl[0], bl[0], 0.0), min(tr[0], br[0], float(vis_size[0]))
    y0, y1 = max(tl[1], tr[1], 0.0), min(bl[1], br[1], float(vis_size[1]))
    x0, y0 = int(np.ceil(x0 / 2) * 2), int(np.ceil(y0 / 2) * 2)
    x1, y1 = int(np.floor(x1 / 2) * 2), int(np.floor(y1 / 2) * 2)
    if x1 - x0 < 16 or y1 - y0 < 16:
        raise InputError("the infrared frame, mapped into the visible one, shares less than 16x16 pixels with it: "
                         "the transform is wrong, or the cameras do not look at the same scene")
    return Region(x0, y0, x1 - x0, y1 - y0)
