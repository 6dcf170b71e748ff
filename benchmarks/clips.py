"""Test clips made from real frames, for what the shared sequences do not show.

``crossing_clip``: a lit car crossing a still night scene. The scene is the first frame of the shared
static-camera LLVIP sequence, held; the car, in infrared and visible, is cut from the real MSRS night
pair 00012N (a lit silver car) and slid across the scene's foreground, entering after ``enter``
frames and gone ``cross`` frames later. Every pixel is a real camera pixel; only the car's position
is made up. With the reference's per-frame stretch the still scene pumps (the car raises the
network's maximum by 17% here); a stretch held steady should not.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: The car's box in MSRS 00012N (x0, y0, x1, y1), at the pair's 640x480.
CAR_BOX = (0, 140, 370, 360)


def crossing_clip(data: Path, size_wh: tuple[int, int] = (640, 512), frames: int = 60, enter: int = 10,
                  cross: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    """(infrared gray, visible BGR) frames of the crossing car, from ``data`` (``../shared/data``)."""
    scene = data / "sequence_llvip"
    pair = data / "pairs" / "MSRS"
    w, h = size_wh
    read = [cv2.imread(str(folder / kind / name), flag)
            for folder, name in ((scene, "010001.jpg"), (pair, "00012N.png"))
            for kind, flag in (("ir", cv2.IMREAD_GRAYSCALE), ("vi", cv2.IMREAD_COLOR))]
    images = [image for image in read if image is not None]
    if len(images) != 4:
        raise FileNotFoundError(f"the crossing clip needs {scene}/{{ir,vi}}/010001.jpg and {pair}/{{ir,vi}}/00012N.png")
    background, car = images[:2], images[2:]
    bg_ir, bg_vis = (cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA) for image in background)
    x0, y0, x1, y1 = CAR_BOX
    # The car takes about a third of the frame's width, on the lower third (the LLVIP scene's pavement).
    car_w = w * 35 // 100
    car_h = car_w * (y1 - y0) // (x1 - x0)
    car_ir, car_vis = (cv2.resize(image[y0:y1, x0:x1], (car_w, car_h), interpolation=cv2.INTER_AREA)
                       for image in car)
    top = h * 2 // 3
    clip = []
    for t in range(frames):
        ir, vis = bg_ir.copy(), bg_vis.copy()
        k = t - enter
        if 0 <= k < cross:
            left = int(-car_w + (w + car_w) * (k + 0.5) / cross)
            a, b = max(0, left), min(w, left + car_w)
            if b > a:
                rows = slice(top, min(h, top + car_h))
                ir[rows, a:b] = car_ir[: rows.stop - top, a - left:b - left]
                vis[rows, a:b] = car_vis[: rows.stop - top, a - left:b - left]
        clip.append((ir, vis))
    return clip
