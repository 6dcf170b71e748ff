"""Video encoders for fused outputs: H.264 by default (PyAV's FFmpeg with libx264), FFV1 for lossless
analysis, MPEG-4 Part 2 (OpenCV's ``mp4v``) as the fallback.

OpenCV's wheels carry no H.264 encoder, and MPEG-4 Part 2 plays in no browser and few video
management systems. PyAV's wheels carry FFmpeg with libx264: H.264 in yuv420p (what every browser
decodes), in fragmented MP4 (``frag_keyframe+empty_moov``), so a file still being written already
plays and one cut short by a full disk or a kill keeps what was written. When H.264 cannot be had
here, the writer falls back to ``mp4v`` and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from occo_deploy import log
from occo_deploy.errors import InputError, OutputError, option

_log = log.get("video")

#: Codec -> the containers it goes in. h264: libx264, yuv420p, plays in browsers, VLC and video
#: management systems; ffv1: lossless, for analysis; mp4v: OpenCV's MPEG-4 Part 2, the fallback.
CODECS: Mapping[str, tuple[str, ...]] = {
    "h264": (".mp4", ".mkv", ".mov"),
    "ffv1": (".mkv", ".avi"),
    "mp4v": (".mp4", ".avi", ".mkv", ".mov"),
}
#: The codec a suffix gets when none is asked for.
DEFAULT_CODEC = {".mp4": "h264", ".mov": "h264", ".mkv": "h264", ".avi": "ffv1"}
#: libx264's own default constant quality (lower is better, 0 lossless, 51 worst).
DEFAULT_CRF = 23
#: The live encoding's (``VideoEncoding.live``) default: its short lookahead spends fewer bits at the
#: same CRF, and 21 brings back the default's size and PSNR (benchmarks/video_encoders.py).
LIVE_CRF = 21
_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
#: Fragmented MP4: a file being written (or cut short) plays up to its last fragment. Each fragment
#: goes to the file as it closes (flush_packets, and an unbuffered file below): a process killed
#: outright (a node that loses power) leaves every fragment but the one being filled and the frames
#: the encoder still holds (``VideoEncoding.live`` holds fewer).
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


@dataclass(frozen=True)
class VideoEncoding:
    """How fused video is encoded: ``--codec``, ``--crf``, ``--bitrate``; the metadata the container
    carries (the engine and precision that made it)."""

    codec: str | None = None  # None: the suffix's default (H.264 for .mp4)
    crf: int | None = None
    bitrate: str | None = None  # "4M", "800k": a target bitrate instead of a constant quality
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: A recording a power loss may cut: libx264 holds 3 frames instead of a second's worth plus one
    #: (its lookahead, capped at the keyframe interval), so the loss is the fragment being filled and
    #: little more, even at the few frames a second a CPU engine fuses. Same size and quality class
    #: as the default at ``LIVE_CRF``; ``tune=zerolatency`` holds none but turns off the lookahead's
    #: bit allocation, which still scenes need most.
    live: bool = False

    def __post_init__(self) -> None:
        if self.codec is not None and self.codec not in CODECS:
            raise InputError(f"{option('codec', self.codec)} is not one of {', '.join(CODECS)}")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise InputError(f"{option('crf', self.crf)} is out of range: 0 (lossless) to 51")
        if self.crf is not None and self.bitrate is not None:
            raise InputError(f"give {option('crf')} or {option('bitrate')}, not both")
        if self.bitrate is not None:
            _bits(self.bitrate)
        if (self.crf is not None or self.bitrate is not None) and self.codec not in (None, "h264"):
            raise InputError(f"{option('crf')} and {option('bitrate')} are H.264's; {self.codec} takes neither")

    def for_suffix(self, suffix: str) -> str:
        """The codec for a file of this suffix, or an ``InputError`` naming the ones that fit."""
        suffix = suffix.lower()
        if suffix not in DEFAULT_CODEC:
            raise InputError(f"cannot write video as {suffix or 'no extension'}: use {', '.join(DEFAULT_CODEC)}")
        codec = self.codec or DEFAULT_CODEC[suffix]
        if suffix not in CODECS[codec]:
            fits = ", ".join(CODECS[codec])
            raise InputError(f"{codec} video does not go in {suffix}: name the output {fits}")
        return codec

    def with_metadata(self, **metadata: str) -> VideoEncoding:
        return dataclasses.replace(self, metadata={**self.metadata, **metadata})


def _bits(text: str) -> int:
    """"4M" -> 4000000, "800k" -> 800000, "2500000" -> 2500000."""
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        value = 0.0
    if value < 10_000:
        raise InputError(f"{option('bitrate', text)} is not a bitrate: give bits per second, e.g. 4M or 800k")
    return int(value)


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """A fused frame as the encoders take it: grey ones (a grey visible camera's) made BGR. OpenCV's
    writer skips grey frames with only a log line, and PyAV's is told BGR."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    return frame


class Encoder(Protocol):
    """What a writer thread drives: ``write`` BGR frames in order, then ``close``. ``at`` (seconds from
    the first frame) stamps a frame by when it was taken, for a stream whose frames come unevenly."""

    def write(self, frame: np.ndarray, at: float | None = None) -> None: ...

    def close(self) -> None: ...


def open_encoder(path: Path, fps: float, size_wh: tuple[int, int], suffix: str, encoding: VideoEncoding) -> Encoder:
    """An encoder writing ``path`` (whose name may be temporary: ``suffix`` says the container)."""
    codec = encoding.for_suffix(suffix)
    if codec != "mp4v":
        reason = _pyav_unavailable(codec)
        if reason is None:
            return PyAvEncoder(path, fps, size_wh, suffix, codec, encoding)
        if codec == "ffv1" or encoding.codec is not None:
            raise OutputError(f"cannot encode {codec} here: {reason}; choose {option('codec', 'mp4v')}")
        _log.warning("H.264 cannot be encoded here (%s): writing MPEG-4 Part 2 (mp4v), which browsers do not "
                     "play; pip install av for H.264", reason, extra={"fields": {"event": "codec_fallback"}})
    return OpenCvEncoder(path, fps, size_wh, suffix)


def _pyav_unavailable(codec: str) -> str | None:
    """None when PyAV can encode ``codec`` here, else why not."""
    try:
        import av
    except ImportError:
        return "PyAV is not installed"
    name = "libx264" if codec == "h264" else codec
    try:
        av.codec.Codec(name, "w")
    except Exception as exc:  # noqa: BLE001 - PyAV raises its own UnknownCodecError
        return f"PyAV's FFmpeg has no {name} encoder ({type(exc).__name__})"
    return None


class PyAvEncoder:
    """H.264 or FFV1 through PyAV, frames stamped at ``fps`` from zero (the visible stream's rate)."""

    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int], suffix: str, codec: str,
                 encoding: VideoEncoding) -> None:
        import av

        fmt = _FORMATS[suffix.lower()]
        options = dict(_FRAGMENTED) if fmt in ("mp4", "mov") else {}
        try:
            self._file = _CheckedFile(path)
        except OSError as exc:
            raise OutputError(f"cannot open {path} for {codec} video: {exc}") from exc
        try:
            self._container: Any = av.open(self._file, mode="w", format=fmt, options=options)
        except (OSError, av.FFmpegError) as exc:
            self._file.close()
            raise OutputError(f"cannot open {path} for {codec} video: {exc}") from exc
        try:
            self._set_up(fps, size_wh, codec, encoding)
        except BaseException:
            # SIGTERM or Ctrl-C while the encoder opens included: a container left to the garbage
            # collector would write into its Python file while the interpreter shuts down, and abort.
            self.abandon()
            raise

    def _set_up(self, fps: float, size_wh: tuple[int, int], codec: str, encoding: VideoEncoding) -> None:
        for key, value in encoding.metadata.items():
            self._container.metadata[key] = value
        rate = Fraction(fps).limit_denominator(1001)
        w, h = size_wh
        if codec == "h264" and (w % 2 or h % 2):
            # yuv420p halves chroma in both directions, so libx264 takes even sides only: the last
            # column or row is repeated rather than a real one dropped.
            _log.warning("H.264 takes even frame sides: the %dx%d frames are written at %dx%d, the last "
                         "column or row repeated (%s keeps the size)", w, h, w + w % 2, h + h % 2,
                         option("codec", "ffv1"))
            w, h = w + w % 2, h + h % 2
        if codec == "h264":
            stream = self._container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            # No B-frames: each frame is decodable when it arrives (live, a file still being written)
            # and the fragments need no edit list, so the first frame shows at 0, as in the input.
            # A keyframe each second: fragments (one per keyframe) of a second, so a file still being
            # written plays up to a second behind, and a disk that fills loses at most the last second.
            x264: dict[str, object] = {"bf": "0", "g": str(max(1, round(fps)))}
            if encoding.live:
                x264.update({"rc-lookahead": "2", "sync-lookahead": "0"})
            if encoding.bitrate is not None:
                stream.bit_rate = _bits(encoding.bitrate)
            else:
                default_crf = LIVE_CRF if encoding.live else DEFAULT_CRF
                x264["crf"] = str(default_crf if encoding.crf is None else encoding.crf)
            stream.options = x264
        else:
            stream = self._container.add_stream("ffv1", rate=rate)
            stream.pix_fmt = "bgr0"  # lossless for BGR frames: no chroma conversion
        stream.width, stream.height = w, h
        self._stream = stream
        self._size = (w, h)
        self._pts = 0
        self._rate = float(rate)
        self._gop = max(1, round(fps))
        self._last_key = -self._gop

    def write(self, frame: np.ndarray, at: float | None = None) -> None:
        import av
        from av.video.frame import PictureType

        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.copyMakeBorder(frame, 0, self._size[1] - frame.shape[0], 0, self._size[0] - frame.shape[1],
                                       cv2.BORDER_REPLICATE)
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        # Frames in order at the stream's rate, or stamped by ``at`` (a gap stays a gap: the file
        # plays in real time however unevenly the frames came), never two at one time.
        pts = self._pts if at is None else max(self._pts, round(at * self._rate))
        if at is not None and pts - self._last_key >= self._gop:
            # A keyframe (so a fragment) each second of the stream's time, not each ``fps`` frames:
            # frames that come slowly would otherwise make fragments of many seconds.
            video_frame.pict_type = PictureType.I
        if video_frame.pict_type == PictureType.I:
            self._last_key = pts
        video_frame.pts = pts
        self._pts = pts + 1
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self._file.check()

    def close(self) -> None:
        if self._container is None:
            return  # closed already
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            try:
                self._container.close()
            finally:
                self._file.close()
                # Closed once: a second close (after a failure) is a no-op, and the encoder's
                # objects go now rather than with this one.
                self._stream = self._container = None
        self._file.check()

    def abandon(self) -> None:
        """Close without caring whether the file is whole (it is being removed)."""
        with contextlib.suppress(Exception):
            if self._container is not None:
                self._container.close()
        self._file.close()
        self._stream = self._container = None


class _CheckedFile:
    """The output file as FFmpeg writes it, through Python: FFmpeg's own file I/O drops a failed write
    (a full disk) and the muxer goes on, so a cut-short video looked whole. Here the first error is
    kept and raised at the next frame or at close."""

    def __init__(self, path: Path) -> None:
        # Unbuffered: FFmpeg's own buffer holds the bytes until a fragment is whole, then writes it here.
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close(), after the container
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as exc:
            self.error = self.error or exc


class OpenCvEncoder:
    """MPEG-4 Part 2 (``mp4v``) through OpenCV: the fallback every OpenCV wheel can write."""

    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int], suffix: str) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size_wh)
        if not self._writer.isOpened():
            raise OutputError(f"OpenCV cannot write {suffix} video (mp4v) at {path.parent}")

    def write(self, frame: np.ndarray, at: float | None = None) -> None:
        self._writer.write(frame)  # mp4v through OpenCV: a constant rate only, ``at`` is not kept

    def close(self) -> None:
        self._writer.release()
