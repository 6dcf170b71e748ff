"""The fused video's encoder: H.264 in fragmented MP4 by default (plays in browsers, and while it is
being written), FFV1 lossless, MPEG-4 Part 2 as the said fallback; real files, decoded by FFmpeg."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from occo_deploy.errors import InputError, OutputError
from occo_deploy.video import encode
from occo_deploy.video.encode import VideoEncoding
from occo_deploy.video.streams import write_video
from tests.support import logged


def _clip(count: int = 24, hw: tuple[int, int] = (120, 160)) -> list[np.ndarray]:
    """A moving gradient: frames that differ, so an encoder has something to do."""
    y, x = np.mgrid[0 : hw[0], 0 : hw[1]]
    return [np.dstack([(x + 4 * k) % 256, (y + 2 * k) % 256, (x + y + k) % 256]).astype(np.uint8)
            for k in range(count)]


def _decoded(path: Path) -> tuple[str, list[np.ndarray], list[float], dict[str, str]]:
    """(codec, frames as BGR, presentation times in s, container metadata), as FFmpeg reads the file;
    a file cut short gives the frames before the cut, as a player shows them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    frames.append(frame.to_ndarray(format="bgr24"))
                    times.append(float(frame.pts * stream.time_base))
        except av.InvalidDataError:
            pass  # the truncated last packet
        return stream.codec_context.name, frames, times, dict(container.metadata)


def test_mp4_is_h264_with_every_frame_at_its_time(tmp_path: Path) -> None:
    clip = _clip()
    write_video(tmp_path / "f.mp4", clip, 12.5, encoding=VideoEncoding(metadata={"comment": "occo test"}))
    codec, frames, times, meta = _decoded(tmp_path / "f.mp4")
    assert codec == "h264" and len(frames) == len(clip)
    assert np.allclose(times, [k / 12.5 for k in range(len(clip))], atol=1e-3)  # the input's rate, from 0
    assert meta.get("comment") == "occo test"
    worst = max(np.abs(f.astype(int) - c.astype(int)).mean() for f, c in zip(frames, clip))
    assert worst < 6  # lossy, but the same pictures


def test_a_cut_short_mp4_still_plays_what_was_written(tmp_path: Path) -> None:
    # Fragmented MP4: no index at the end to wait for. The first half of the file decodes on its own,
    # as a file still being written (or cut by a full disk) does.
    write_video(tmp_path / "f.mp4", _clip(60), 10.0, encoding=VideoEncoding(crf=18))
    data = (tmp_path / "f.mp4").read_bytes()
    assert b"moof" in data and b"mvex" in data  # movie fragments
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    _, frames, _, _ = _decoded(tmp_path / "half.mp4")
    assert 0 < len(frames) < 60


_WRITE_THEN_HANG = """
import sys, time
import numpy as np
from pathlib import Path
from occo_deploy.video.encode import VideoEncoding, open_encoder
live, count = sys.argv[2] == "live", int(sys.argv[3])
y, x = np.mgrid[0:120, 0:160]
encoder = open_encoder(Path(sys.argv[1]), 10.0, (160, 120), ".mp4", VideoEncoding(live=live))
for k in range(count):
    encoder.write(np.dstack([(x + 4 * k) % 256, (y + 2 * k) % 256, (x + k) % 256]).astype(np.uint8), at=k / 10)
print("written", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("live", [True, False])
def test_a_process_killed_outright_keeps_what_the_encoder_let_go(tmp_path: Path, live: bool) -> None:
    # A node that loses power: no close, no flush. Fragments (a second each, at 10 fps) reach the file
    # as they close; the live encoding (serve's recordings) holds 3 frames beyond the fragment being
    # filled, the default a second's worth more (libx264's lookahead).
    import subprocess
    import sys

    path = tmp_path / "cut.mp4"
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_THEN_HANG, str(path), "live" if live else "file", "35"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    _, frames, times, _ = _decoded(path)
    # 35 frames written: the fragments of frames 0-9 and 10-19 closed when frames 10 and 20 came out of
    # the encoder; live lets frame 30 go too (3 held: 32-34), the default only up to frame 23.
    assert len(frames) == (30 if live else 20), times
    assert np.allclose(times, [k / 10 for k in range(len(frames))], atol=1e-3)


def test_ffv1_is_lossless_and_keeps_an_odd_size(tmp_path: Path) -> None:
    clip = _clip(8, (121, 161))
    write_video(tmp_path / "f.mkv", clip, 10.0, encoding=VideoEncoding(codec="ffv1"))
    codec, frames, _, _ = _decoded(tmp_path / "f.mkv")
    assert codec == "ffv1" and all(np.array_equal(f, c) for f, c in zip(frames, clip)) and len(frames) == 8
    write_video(tmp_path / "f.avi", clip, 10.0)  # .avi's default is FFV1
    assert _decoded(tmp_path / "f.avi")[0] == "ffv1"


def test_h264_repeats_the_last_column_of_an_odd_frame_and_says_so(tmp_path: Path) -> None:
    clip = _clip(4, (121, 161))
    with logged() as said:
        write_video(tmp_path / "f.mp4", clip, 10.0)
    _, frames, _, _ = _decoded(tmp_path / "f.mp4")
    assert frames[0].shape == (122, 162, 3)
    assert any("even frame sides: the 161x121 frames are written at 162x122" in m for m in said), said


def test_quality_and_bitrate_steer_the_size(tmp_path: Path) -> None:
    clip = _clip(30)
    sizes = {}
    for name, encoding in (("crf10", VideoEncoding(crf=10)), ("crf40", VideoEncoding(crf=40)),
                           ("100k", VideoEncoding(bitrate="100k")), ("5M", VideoEncoding(bitrate="5M"))):
        write_video(tmp_path / f"{name}.mp4", clip, 10.0, encoding=encoding)
        sizes[name] = (tmp_path / f"{name}.mp4").stat().st_size
    assert sizes["crf10"] > 2 * sizes["crf40"], sizes
    # 3 s at 100 kbit/s is 37.5 kB: the target holds (within rate control's slack); 5 Mbit/s spends more.
    assert sizes["100k"] < 1.5 * 37_500 < sizes["5M"] * 1.5 and sizes["5M"] > sizes["100k"], sizes


def test_mp4v_on_request_and_as_the_said_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_video(tmp_path / "asked.mp4", _clip(6), 10.0, encoding=VideoEncoding(codec="mp4v"))
    assert _decoded(tmp_path / "asked.mp4")[0] == "mpeg4"
    # Where PyAV's FFmpeg has no H.264 encoder: the video is still written, and the log says why.
    monkeypatch.setattr(encode, "_pyav_unavailable", lambda codec: "PyAV's FFmpeg has no libx264 encoder (test)")
    with logged() as said:
        write_video(tmp_path / "fallback.mp4", _clip(6), 10.0)
    assert _decoded(tmp_path / "fallback.mp4")[0] == "mpeg4"
    assert any("writing MPEG-4 Part 2 (mp4v), which browsers do not play" in m for m in said), said
    # Asked for by name, a codec that cannot be had is an error naming the way out, not a quiet swap.
    with pytest.raises(OutputError, match=r"cannot encode h264 here: .*codec='mp4v'"):
        write_video(tmp_path / "named.mp4", _clip(6), 10.0, encoding=VideoEncoding(codec="h264"))
    assert not (tmp_path / "named.mp4").exists()


@pytest.mark.parametrize(("encoding", "suffix", "says"), [
    ({"codec": "vp9"}, ".mp4", "codec='vp9' is not one of h264, ffv1, mp4v"),
    ({"codec": "ffv1"}, ".mp4", "ffv1 video does not go in .mp4: name the output .mkv, .avi"),
    ({"crf": 60}, ".mp4", "crf=60 is out of range"),
    ({"crf": 20, "bitrate": "2M"}, ".mp4", "not both"),
    ({"bitrate": "fast"}, ".mp4", "bitrate='fast' is not a bitrate"),
    ({"codec": "ffv1", "crf": 20}, ".mkv", "H.264's; ffv1 takes neither"),
    ({}, ".gif", "cannot write video as .gif"),
])
def test_bad_encodings_are_one_line(tmp_path: Path, encoding: dict[str, object], suffix: str, says: str) -> None:
    with pytest.raises(InputError, match=says.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        write_video(tmp_path / f"f{suffix}", _clip(2), 10.0, encoding=VideoEncoding(**encoding))  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())
