"""Image files and folders of image pairs: reading with clear errors, writing atomically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.files import write_bytes_atomic

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
# ANYCOLOR keeps gray as gray and applies EXIF orientation; ANYDEPTH keeps 16-bit as 16-bit so the
# runtime can refuse it with advice instead of silently dividing it by 256.
_READ_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def read_image(path: str | Path, what: str) -> np.ndarray:
    """Decode an image file as OpenCV does (BGR or gray), or raise an ``InputError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} image not found: {path}")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # also handles non-ASCII paths, unlike cv2.imread
    except OSError as exc:
        raise InputError(f"cannot read {what} image {path}: {exc.strerror}") from exc
    image = cv2.imdecode(data, _READ_FLAGS) if data.size else None
    if image is None:
        raise InputError(f"cannot decode {what} image {path}: not an image OpenCV reads, or truncated")
    return image


def write_image(path: str | Path, image: np.ndarray, force: bool = False) -> None:
    """Encode by suffix and write atomically (never a half-written file, never over one without force)."""
    path = Path(path)
    if not is_image(path):
        raise InputError(f"cannot write an image to {path}: use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    ok, encoded = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise InputError(f"OpenCV cannot encode {path.suffix} images here; write .png instead")
    write_bytes_atomic(path, encoded.tobytes(), force)


@dataclass
class FolderPairs:
    """Image pairs of two folders matched by file stem, and the stems that have no partner."""

    pairs: list[tuple[str, Path, Path]]  # (stem, ir, vis)
    ir_only: list[str] = field(default_factory=list)
    vis_only: list[str] = field(default_factory=list)


def _files_by_stem(folder: Path, what: str, kind: Callable[[Path], bool] = is_image) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and kind(path):
            if path.stem in found:
                raise InputError(f"{what} folder {folder} holds two files named {path.stem} "
                                 f"({found[path.stem].name}, {path.name}); keep one")
            found[path.stem] = path
    return found


#: Names a folder of visible frames goes by beside ``ir/`` (data sets and calibration folders).
VIS_DIR_NAMES = ("vi", "vis", "visible")


def split_folders(folder: Path) -> tuple[Path, Path] | None:
    """(``folder/ir``, ``folder/vi``) when ``folder`` holds a data set's two folders (TNO/ir, TNO/vi),
    else None: what to suggest to someone who gave the data set's folder itself."""
    vis = next((folder / n for n in VIS_DIR_NAMES if (folder / n).is_dir()), None)
    return (folder / "ir", vis) if (folder / "ir").is_dir() and vis is not None else None


def pair_folders(ir_dir: Path, vis_dir: Path, *, videos: bool = False, allow_empty: bool = False) -> FolderPairs:
    """Pairs by stem (``ir/0001.png`` with ``vi/0001.jpg``), sorted; an error when none match.

    ``videos`` pairs video files instead of images; ``allow_empty`` returns no pairs instead of failing.
    """
    kind = is_video if videos else is_image
    ir = _files_by_stem(ir_dir, "infrared", kind)
    vis = _files_by_stem(vis_dir, "visible", kind)
    common = sorted(ir.keys() & vis.keys())
    if not common and not allow_empty:
        inside = split_folders(ir_dir) if not ir else split_folders(vis_dir) if not vis else None
        if inside is not None:
            raise InputError(f"{inside[0].parent} holds the pairs in {inside[0].name}/ and {inside[1].name}/; "
                             f"give those: {inside[0]} {inside[1]}")
        raise InputError(
            f"no image in {ir_dir} ({len(ir)} images) has a partner with the same name in {vis_dir} "
            f"({len(vis)} images); pairs are matched by file name without extension"
        )
    return FolderPairs(
        pairs=[(s, ir[s], vis[s]) for s in common],
        ir_only=sorted(ir.keys() - vis.keys()),
        vis_only=sorted(vis.keys() - ir.keys()),
    )
