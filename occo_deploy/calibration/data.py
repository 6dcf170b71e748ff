"""Calibration and validation pairs: discovery, hashing, a seeded split, runtime-identical preprocessing.

A calibration folder holds ``ir/`` and ``vi/`` (pairs matched by file name, images or videos), or
sub-folders that each do (``pairs/MSRS/{ir,vi}``, ``pairs/TNO/{ir,vi}``...). Every pair becomes one or
more frames at the profile's opt size: the same conversions as the runtime (``visible_bgr``,
``infrared_gray``), then scaled to cover the size and centre-cropped, so the aspect ratio is kept.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.files import sha256_file
from occo_deploy.runtime.frames import infrared_gray, visible_bgr
from occo_deploy.runtime.irscale import IrScale, IrScaler
from occo_deploy.video.media import VIS_DIR_NAMES, pair_folders, read_image
from occo_deploy.video.streams import probe, read_frame

FRAMES_PER_VIDEO = 8  # evenly spaced frames taken from each video pair


@dataclass(frozen=True)
class CalibItem:
    """One calibration frame: an image pair, or frame ``frame`` of a video pair."""

    name: str
    ir: Path
    vis: Path
    frame: int | None = None


def _pair_dirs(root: Path) -> list[tuple[str, Path, Path]]:
    """(prefix, ir_dir, vis_dir) for ``root`` itself or each of its sub-folders."""

    def vis_dir(folder: Path) -> Path | None:
        return next((folder / n for n in VIS_DIR_NAMES if (folder / n).is_dir()), None)

    here = vis_dir(root)
    if (root / "ir").is_dir() and here is not None:
        return [("", root / "ir", here)]
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        v = vis_dir(sub)
        if (sub / "ir").is_dir() and v:
            found.append((f"{sub.name}/", sub / "ir", v))
    return found


def _video_frames(ir: Path, vis: Path, name: str) -> list[CalibItem]:
    count = min(probe(ir, "infrared").frame_count, probe(vis, "visible").frame_count)
    if count <= 0:
        raise InputError(f"calibration video pair {name} reports no frames; re-encode it or use images")
    picks = sorted({int(k * count / FRAMES_PER_VIDEO) for k in range(FRAMES_PER_VIDEO)})
    return [CalibItem(f"{name}#{k}", ir, vis, k) for k in picks]


def discover(root: Path) -> list[CalibItem]:
    """Every calibration frame under ``root``; an ``InputError`` that says what a folder needs."""
    if not root.is_dir():
        raise InputError(
            f"calibration folder {root} not found; it needs ir/ and vi/ folders of pairs matched by file name"
        )
    dirs = _pair_dirs(root)
    if not dirs:
        raise InputError(
            f"calibration folder {root} has no ir/ and vi/ folders (itself or one level down); "
            "put pairs matched by file name in them, or pass --calib DIR"
        )
    items: list[CalibItem] = []
    for prefix, ir_dir, vis_dir in dirs:
        pairs = pair_folders(ir_dir, vis_dir, allow_empty=True).pairs
        videos = pair_folders(ir_dir, vis_dir, videos=True, allow_empty=True).pairs
        for stem, ir, vis in pairs:
            items.append(CalibItem(f"{prefix}{stem}", ir, vis))
        for stem, ir, vis in videos:
            items.extend(_video_frames(ir, vis, f"{prefix}{stem}"))
    if not items:
        raise InputError(f"calibration folder {root} holds no pairs with matching names in ir/ and vi/")
    return items


def split(items: list[CalibItem], *, calib_size: int | None, val_size: int, seed: int
          ) -> tuple[list[CalibItem], list[CalibItem]]:
    """A seeded shuffle; the first ``val_size`` frames validate, the next ``calib_size`` calibrate.

    Frames of one video pair stay together (all calibration or all validation), so validation
    never sees a near-duplicate of a calibration frame.
    """
    groups: dict[str, list[CalibItem]] = {}
    for item in items:
        groups.setdefault(item.name.split("#")[0], []).append(item)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    val: list[CalibItem] = []
    rest: list[CalibItem] = []
    for key in keys:
        (val if len(val) < val_size else rest).extend(groups[key])
    if calib_size is not None and calib_size > len(rest):
        raise InputError(
            f"--calib-size {calib_size} asks for more pairs than there are: {len(items)} found, "
            f"{len(val)} kept apart for the quality check, {len(rest)} left; add pairs or lower --calib-size"
        )
    if not rest:
        raise InputError(
            f"{len(items)} calibration frames are too few: {len(val)} are kept apart for the quality check "
            "and none are left to calibrate on; add pairs"
        )
    return rest[: calib_size or len(rest)], val


def fit(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Scale to cover ``hw`` (keeping the aspect ratio), then centre-crop to exactly ``hw``."""
    h, w = image.shape[:2]
    scale = max(hw[0] / h, hw[1] / w)
    size = (max(hw[1], round(w * scale)), max(hw[0], round(h * scale)))
    if size != (w, h):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top = (image.shape[0] - hw[0]) // 2
    left = (image.shape[1] - hw[1]) // 2
    return np.ascontiguousarray(image[top : top + hw[0], left : left + hw[1]])


def load_pair(item: CalibItem, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(infrared gray, visible BGR) of ``item`` at ``hw``, preprocessed as the runtime does."""
    if item.frame is None:
        ir_raw, vis_raw = read_image(item.ir, "infrared"), read_image(item.vis, "visible")
    else:
        ir_raw, vis_raw = read_frame(item.ir, item.frame, "infrared"), read_frame(item.vis, item.frame, "visible")
    # 16-bit and float infrared: the runtime's default scaling (uint8 passes unchanged), frame by frame.
    ir, vis = IrScaler(IrScale())(infrared_gray(ir_raw)), visible_bgr(vis_raw)
    if ir.shape[:2] != vis.shape[:2]:
        raise InputError(
            f"calibration pair {item.name}: infrared {ir.shape[1]}x{ir.shape[0]} and visible "
            f"{vis.shape[1]}x{vis.shape[0]} differ in size; calibration needs registered pairs of one size"
        )
    return fit(ir, hw), fit(vis, hw)


def iter_pairs(items: list[CalibItem], hw: tuple[int, int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for item in items:
        yield load_pair(item, hw)


def set_hash(items: list[CalibItem], hw: tuple[int, int]) -> str:
    """sha256 over the chosen frames' contents, frame indices and the preprocessing size."""
    digest = hashlib.sha256(f"fit {hw[0]}x{hw[1]}\n".encode())
    for item in items:
        digest.update(f"{item.name}|{item.frame}|{sha256_file(item.ir)}|{sha256_file(item.vis)}\n".encode())
    return digest.hexdigest()


def sample_pairs(folder: Path | None, hw: tuple[int, int], count: int, seed: int = 0
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` real pairs at ``hw``: a seeded choice from ``folder``, or frames of the bundled clip."""
    if folder is None:
        from occo_deploy import demo

        return [(fit(ir, hw), fit(vis, hw)) for ir, vis in demo.clip_pairs(count)]
    items = discover(folder)
    random.Random(seed).shuffle(items)
    return [load_pair(item, hw) for item in items[:count]]
