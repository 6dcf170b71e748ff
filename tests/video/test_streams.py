"""Video writing: what goes in comes out, gray frames included."""

from __future__ import annotations

from pathlib import Path

import cv2

from occo_deploy.video.streams import probe, write_video
from tests.conftest import sequence_frames


def test_gray_frames_make_a_readable_colour_video(tmp_path: Path) -> None:
    # Infrared frames are gray; OpenCV's colour writer used to skip them with only a log line.
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in sequence_frames("ir")[:5]]
    assert write_video(tmp_path / "ir.mp4", gray, 10.0) == 5
    info = probe(tmp_path / "ir.mp4", "infrared")
    assert (info.width, info.height) == (160, 120) and info.first_frame.shape == (120, 160, 3)
    cap = cv2.VideoCapture(str(tmp_path / "ir.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 5
