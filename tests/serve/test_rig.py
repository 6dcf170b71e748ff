"""A rig's recording: segments that play, named by time, kept within a size."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

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


def test_a_recording_behind_drops_frames_and_counts_them_instead_of_waiting(tmp_path: Path) -> None:
    # 1080p frames handed over as fast as a loop can: libx264 takes tens of ms each, so a queue of 2
    # fills; the engine loop must get its answer at once, and what was taken must play.
    frame = cv2.resize(clip_pairs(1)[0][1], (1920, 1080))
    recorder = Recorder(tmp_path, "gate", segment_s=60, keep_hours=24, depth=2)
    taken = sum(recorder.write(frame, 10.0) for _ in range(40))
    recorder.close()
    assert recorder.dropped == 40 - taken and 0 < recorder.dropped < 40
    (segment,) = tmp_path.glob("gate-*.mp4")
    cap = cv2.VideoCapture(str(segment))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == taken
    cap.release()


_FULL_DISK_CHILD = """
import logging, resource, signal, sys, time
from pathlib import Path
from occo_deploy.demo import clip_pairs
from occo_deploy.serve.rig import Recorder
# A real limit of the operating system: files beyond it fail with EFBIG, as a full disk's with ENOSPC.
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(message)s")
recorder = Recorder(Path(sys.argv[1]), "gate", segment_s=0.2, keep_hours=24)
frames = [vis for _, vis in clip_pairs(8)]
for k in range(40):
    recorder.write(frames[k % 8], 10.0)
    time.sleep(0.025)
recorder.close()
print(recorder.segments)
"""


@pytest.mark.slow
def test_a_disk_that_fails_every_segment_is_said_once_and_each_segment_tries_again(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", _FULL_DISK_CHILD, str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "each new segment tries again" in warnings[0], result.stderr
    assert "Traceback" not in result.stderr
    segments = sorted(tmp_path.glob("gate-*.mp4"))
    assert int(result.stdout) == len(segments) >= 3  # it went on opening segments
    assert all(segment.stat().st_size == 20_000 for segment in segments)  # each one met the limit


def test_a_recording_plays_in_real_time_however_slowly_its_frames_came(tmp_path: Path) -> None:
    # Cameras at 10 fps, an engine fusing 2 a second: the segment is stamped by when each frame was
    # taken (a VMS plays it in real time), with a keyframe, so a fragment, each second of it.
    import av

    frames = [vis for _, vis in clip_pairs(4)]
    recorder = Recorder(tmp_path, "gate", segment_s=60, keep_hours=24)
    t0 = time.monotonic()
    for k in range(20):
        assert recorder.write(frames[k % 4], 10.0, t0 + 0.5 * k)
    recorder.close()
    (segment,) = tmp_path.glob("gate-*.mp4")
    with av.open(str(segment)) as container:
        stream = container.streams.video[0]
        decoded = [(float(f.pts * stream.time_base), f.key_frame) for f in container.decode(stream)]
    times = [t for t, _ in decoded]
    assert len(decoded) == 20 and abs(times[-1] - 9.5) < 0.01 and abs(times[1] - 0.5) < 0.01
    keys = [t for t, key in decoded if key]
    assert len(keys) >= 9 and all(b - a <= 1.01 for a, b in itertools.pairwise(keys))


def test_a_grey_rig_is_recorded(tmp_path: Path) -> None:
    # A grey visible camera fuses to grey frames; the recording takes them as they come.
    grey = cv2.cvtColor(clip_pairs(1)[0][1], cv2.COLOR_BGR2GRAY)
    recorder = Recorder(tmp_path, "gate", segment_s=60, keep_hours=24)
    for _ in range(5):
        assert recorder.write(grey, 10.0)
    recorder.close()
    (segment,) = tmp_path.glob("gate-*.mp4")
    cap = cv2.VideoCapture(str(segment))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (*grey.shape, 3)
    assert np.abs(frame[..., 1].astype(int) - grey).mean() < 4  # H.264: lossy, the same picture
