"""Frames as users have them -> frames as the engine contract wants them.

The visible frame may be colour (BGR, or BGRA) or gray; the infrared frame gray or 3-channel (most
thermal cameras and data sets store gray as three equal channels). Sizes may differ when the two
cameras differ; the infrared frame is then resized to the visible one, which fixes the output size.
"""

from __future__ import annotations

import cv2
import numpy as np

from occo_deploy.errors import ShapeError

#: Largest relative difference of aspect ratio still taken for the same scene (e.g. 640x512 thermal
#: beside 640x480 visible is 6%); beyond it the pair is almost surely not registered.
MAX_ASPECT_MISMATCH = 0.15


#: Infrared frames may be 16-bit counts or floats (``irscale`` maps them to 8 bits); visible ones are 8-bit.
INFRARED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def check_frame_type(frame: object, what: str) -> None:
    """A ``ShapeError`` for anything but a numpy array; None (a file ``cv2.imread`` could not read, a
    capture's failed ``read``) says so."""
    if frame is None:
        raise ShapeError(f"{what} frame is None, not an image: the file could not be read (cv2.imread returns "
                         "None for a missing or unreadable file) or the capture returned no frame")
    if not isinstance(frame, np.ndarray):
        raise ShapeError(f"{what} frame must be a numpy array, got {type(frame).__name__}")


def _check_dtype(frame: np.ndarray, what: str, allowed: tuple[type, ...] = (np.uint8,)) -> None:
    check_frame_type(frame, what)
    if frame.dtype not in allowed:
        if what == "visible":
            raise ShapeError(f"visible frame must be uint8 (0..255), got {frame.dtype}; scale it to 8 bits first")
        raise ShapeError(f"{what} frame of {frame.dtype}: occo-deploy takes uint8, uint16 or float infrared frames")


def visible_bgr(frame: np.ndarray) -> np.ndarray:
    """H x W x 3 BGR from BGR, BGRA or gray (gray repeats into three channels, as PIL's RGB does)."""
    _check_dtype(frame, "visible")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    raise ShapeError(f"visible frame of shape {frame.shape} is neither H x W, H x W x 3 nor H x W x 4")


def infrared_gray(frame: np.ndarray) -> np.ndarray:
    """H x W gray from gray, H x W x 1, BGR or BGRA (ITU-R 601 luma, as PIL's convert('L')), in the
    frame's own dtype (16-bit and float frames are scaled to 8 bits after, by ``irscale``)."""
    _check_dtype(frame, "infrared", INFRARED_DTYPES)
    if frame.dtype == np.float64 and frame.ndim == 3:
        frame = frame.astype(np.float32)  # OpenCV's colour conversions take no float64
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise ShapeError(f"infrared frame of shape {frame.shape} is neither H x W, H x W x 1, x 3 nor x 4")


def looks_swapped(ir: np.ndarray, vis: np.ndarray) -> bool:
    """A "visible" frame without colour beside an "infrared" frame with real colour: most likely the two
    inputs were given the wrong way round (thermal frames are grey; false-colour palettes are rare)."""

    def colourful(frame: np.ndarray) -> bool:
        if frame.ndim != 3 or frame.shape[2] < 3:
            return False
        step = max(1, frame.shape[0] * frame.shape[1] // 100_000)  # a subsample is enough
        pixels = frame.reshape(-1, frame.shape[2])[::step, :3].astype(np.int16)
        return float(np.abs(pixels[:, 0] - pixels[:, 1]).mean() + np.abs(pixels[:, 1] - pixels[:, 2]).mean()) > 4.0

    return not colourful(vis) and colourful(ir)


def check_same_scene(ir_hw: tuple[int, int], vis_hw: tuple[int, int]) -> None:
    """Refuse pairs whose aspect ratios are too far apart to show the same, registered scene."""
    ir_aspect = ir_hw[1] / ir_hw[0]
    vis_aspect = vis_hw[1] / vis_hw[0]
    if abs(ir_aspect - vis_aspect) / vis_aspect > MAX_ASPECT_MISMATCH:
        raise ShapeError(
            f"infrared {ir_hw[1]}x{ir_hw[0]} and visible {vis_hw[1]}x{vis_hw[0]} (WxH) have aspect ratios "
            f"{ir_aspect:.2f} and {vis_aspect:.2f}: the cameras do not share a view; register them once with "
            "occo-deploy align IR VIS -o rig.json, then fuse with --align rig.json"
        )


def match_size(ir: np.ndarray, vis_hw: tuple[int, int]) -> np.ndarray:
    """The infrared frame at the visible frame's size (bilinear), after the same-scene check."""
    if ir.shape[:2] == vis_hw:
        return ir
    check_same_scene(ir.shape[:2], vis_hw)
    return cv2.resize(ir, (vis_hw[1], vis_hw[0]), interpolation=cv2.INTER_LINEAR)
