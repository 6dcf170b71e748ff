"""Make the bundled demo clips (``occo_deploy/assets/demo/{ir,vis}.mp4``) from one TNO pair.

    python tools/demo_clips.py [--shared ../shared] [--force]

TNO Image Fusion Dataset (A. Toet, figshare 10.6084/m9.figshare.1008029, CC BY 4.0): the registered
768x576 pair ``01.png`` of ``../shared/data/pairs/TNO``. Each frame is a 640x480 window of the pair,
moved 128 pixels right and 96 up over 20 frames, eased at both ends: real pixels, a camera's motion.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

from occo_deploy.demo import IR_CLIP, VIS_CLIP
from occo_deploy.video.streams import write_video

FRAMES, FPS = 20, 30.0
WINDOW_WH = (640, 480)


def pan(image: np.ndarray) -> list[np.ndarray]:
    """The clip's frames: a window moving from the lower left to the upper right of ``image``."""
    travel_x, travel_y = image.shape[1] - WINDOW_WH[0], image.shape[0] - WINDOW_WH[1]
    frames = []
    for k in range(FRAMES):
        t = 0.5 - 0.5 * math.cos(math.pi * k / (FRAMES - 1))
        x, y = round(travel_x * t), round(travel_y * (1 - t))
        frames.append(np.ascontiguousarray(image[y:y + WINDOW_WH[1], x:x + WINDOW_WH[0]]))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--force", action="store_true", help="Replace the clips that are there.")
    args = parser.parse_args()
    pair = args.shared / "data" / "pairs" / "TNO"
    for side, clip in (("ir", IR_CLIP), ("vi", VIS_CLIP)):
        image = cv2.imread(str(pair / side / "01.png"))
        if image is None or image.shape[:2] != (576, 768):
            raise SystemExit(f"{pair / side / '01.png'}: not the 768x576 TNO frame")
        write_video(clip, pan(image), FPS, force=args.force)
        print(f"{clip}: {FRAMES} frames, {clip.stat().st_size} bytes")


if __name__ == "__main__":
    main()
