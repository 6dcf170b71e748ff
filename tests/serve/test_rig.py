"""A rig's recording: segments that play, named by time, kept within a size."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from occo_deploy.demo import clip_pairs
from occo_deploy.serve.rig import Recorder


def test_segments_rotate_play_and_the_oldest_go_beyond_the_size_kept(tmp_path: Path) -> None:
    frames = [vis for _, vis in clip_pairs(8)]
    whole = Recorder(tmp_path / "all", "gate", segment_s=0.15, keep_hours=24)
    kept = Recorder(tmp_path / "kept", "gate", segment_s=0.15, keep_hours=24, keep_gb=1e-9)  # 1 byte
    for k in range(24):
        for recorder in (whole, kept):
            recorder.write(frames[k % len(frames)], 10.0)
        time.sleep(0.02)
    whole.close()
    kept.close()
    segments = sorted((tmp_path / "all").glob("gate-*.mp4"))
    assert len(segments) >= 3 and whole.segments == len(segments)
    for segment in segments:  # each plays on its own
        cap = cv2.VideoCapture(str(segment))
        assert cap.read()[0], segment
        cap.release()
    # Beyond keep_gb the oldest are deleted as each new segment starts; the one being written never is.
    left = sorted((tmp_path / "kept").glob("gate-*.mp4"))
    assert len(left) <= 2 and left[-1].name == kept.current_name and kept.segments >= 3
