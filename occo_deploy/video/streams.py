"""Video files in and out: decoding on a background thread, encoding on another, atomic output."""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from occo_deploy.errors import InputError, OutputError, option
from occo_deploy.files import disk_full, keep_partial
from occo_deploy.video.encode import VideoEncoding, as_bgr, open_encoder

DEFAULT_FPS = 30.0  # for streams that report no frame rate


@dataclass(frozen=True)
class Frame:
    index: int
    t_ms: float  # presentation time
    image: np.ndarray


@dataclass(frozen=True, eq=False)
class VideoInfo:
    path: Path
    fps: float
    frame_count: int  # as the container says; may be approximate or 0
    width: int
    height: int
    fps_guessed: bool
    first_frame: np.ndarray  # decoded while probing; handy for checks and previews


def _gray16(cap: cv2.VideoCapture) -> bool:
    code = int(cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT) or 0)
    tag = code.to_bytes(4, "little") if code > 0 else b""
    return (tag[:2] == b"Y1" and tag[3:] == b"\x10") or tag == b"Y16 "


def open_capture(source: str | int, params: list[int] | None = None) -> cv2.VideoCapture:
    """An OpenCV capture; a 16-bit grey stream (FFV1 ``gray16le`` in MKV, say, as radiometric thermal
    cameras record) is reopened without OpenCV's conversion to 8-bit BGR, so its counts arrive whole
    (uint16, ``runtime.irscale`` maps them)."""
    cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params) if params else cv2.VideoCapture(source)
    if cap.isOpened() and _gray16(cap):
        cap.release()
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [*(params or []), cv2.CAP_PROP_CONVERT_RGB, 0])
    return cap


def read_frame(path: Path, index: int, what: str) -> np.ndarray:
    """Frame ``index`` of a video file (calibration picks, ``align --frame``), or an ``InputError``."""
    cap = open_capture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        raise InputError(f"cannot decode frame {index} of {what} video {path}")
    return frame


def probe(path: Path, what: str) -> VideoInfo:
    """Open ``path`` once to read its rate and size; an ``InputError`` when it is no readable video."""
    if not path.is_file():
        raise InputError(f"{what} video not found: {path}")
    cap = open_capture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"cannot open {what} video {path}: not a video OpenCV/FFmpeg can read")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(f"{what} video {path} has no frames, or its first frame cannot be decoded")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        guessed = not (math.isfinite(fps) and 0.0 < fps < 1000.0)
        return VideoInfo(
            path=path,
            fps=DEFAULT_FPS if guessed else fps,
            frame_count=max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
            width=frame.shape[1],
            height=frame.shape[0],
            fps_guessed=guessed,
            first_frame=frame,
        )
    finally:
        cap.release()


_END = object()


class ThreadedReader:
    """Decodes a video on a background thread into a small bounded queue of ``Frame``.

    Timestamps come from the container (``CAP_PROP_POS_MSEC``) while they increase; a stream whose
    timestamps stall or go back continues at the nominal rate. With ``synthetic_time`` every frame is
    stamped index / fps, which makes pairing of equal-rate streams pair by index.
    """

    def __init__(self, info: VideoInfo, what: str, on_decode: Callable[[float], None] | None = None,
                 synthetic_time: bool = False, depth: int = 8) -> None:
        self.info = info
        self.what = what
        self._on_decode = on_decode
        self._synthetic = synthetic_time
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"decode-{what}", daemon=True)
        self.frames_read = 0

    def __enter__(self) -> ThreadedReader:
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        cap = open_capture(str(self.info.path))
        period = 1000.0 / self.info.fps
        last_t = -math.inf
        index = 0
        try:
            while not self._stop.is_set():
                start = time.perf_counter()
                ok, image = cap.read()
                if not ok or image is None:
                    break
                if self._on_decode:
                    self._on_decode(time.perf_counter() - start)
                t = index * period
                if not self._synthetic:
                    pos = float(cap.get(cv2.CAP_PROP_POS_MSEC))
                    t = pos if math.isfinite(pos) and pos > last_t else last_t + period
                last_t = t
                if not self._put(Frame(index, t, image)):
                    return
                index += 1
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it on its own thread
            self._put(exc)
        finally:
            cap.release()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise InputError(f"decoding {self.what} video {self.info.path} failed: {item}") from item
            assert isinstance(item, Frame)
            self.frames_read += 1
            yield item


class ThreadedWriter:
    """Encodes frames on a background thread, so encoding overlaps inference: H.264 by default
    (``video.encode``), or the codec ``encoding`` names."""

    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int], suffix: str,
                 on_encode: Callable[[float], None] | None = None, depth: int = 8,
                 encoding: VideoEncoding | None = None) -> None:
        self._encoder = open_encoder(path, fps, size_wh, suffix, encoding or VideoEncoding())
        try:
            self._on_encode = on_encode
            self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
            self._error: BaseException | None = None
            self.frames_written = 0
            self._thread = threading.Thread(target=self._run, name="encode", daemon=True)
            self._thread.start()
        except BaseException:  # SIGTERM while starting: the encoder is closed here, not by the collector
            with contextlib.suppress(Exception):
                self._encoder.close()
            raise

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is not None:
                continue  # drain after a failure so the producer never blocks
            try:
                assert isinstance(item, np.ndarray)
                start = time.perf_counter()
                self._encoder.write(item)
                if self._on_encode:
                    self._on_encode(time.perf_counter() - start)
                self.frames_written += 1
            except BaseException as exc:  # noqa: BLE001 - re-raised on the producer's thread
                self._error = exc

    @property
    def error(self) -> BaseException | None:
        """The encoder's failure, once one happened (a full disk, say); frames after it are dropped."""
        return self._error

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise OutputError(f"encoding the output video failed: {self._error}") from self._error
        self._queue.put(as_bgr(frame))

    def __enter__(self) -> ThreadedWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if et is None:
            self.close()
            return
        # Already failing: finish the file, but the first error is the one worth reporting.
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Flush, finish the file and re-raise an encoding failure."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        try:
            self._encoder.close()
        except Exception as exc:  # noqa: BLE001 - PyAV raises its own FFmpegError types: re-raised below
            self._error = self._error or exc
        if self._error is not None:
            raise OutputError(f"encoding the output video failed: {self._error}") from self._error


def cut_short(writer: ThreadedWriter, tmp: Path, output: Path, force: bool, exc: OutputError) -> OutputError:
    """What to raise when ``writer`` (into ``tmp``, for ``output``) failed with ``exc``: on a full disk,
    after putting the video so far in place (fragmented MP4 plays up to its last whole fragment), an
    error that says where it is; any other failure as it came."""
    if not disk_full(exc) or writer.frames_written == 0:
        return exc
    with contextlib.suppress(Exception):
        writer.close()  # finishes what can be finished; the error is known
    keep_partial(tmp, output, force)
    return OutputError(f"the disk filled after {writer.frames_written} frame(s) were encoded; the video so far is in "
                       f"{output} and plays up to its last whole fragment; free space and start again with "
                       f"{option('force', True)}")


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, force: bool = False,
                encoding: VideoEncoding | None = None) -> int:
    """Encode ``frames`` (all one size) into a new video at ``path``, atomically; returns the count."""
    from occo_deploy.files import atomic_output

    path = Path(path)
    count = 0
    with atomic_output(path, force) as tmp:
        frames = iter(frames)
        first = next(frames, None)
        if first is not None:
            with ThreadedWriter(tmp, fps, (first.shape[1], first.shape[0]), path.suffix, encoding=encoding) as writer:
                for frame in (first, *frames):
                    writer.write(frame)
                    count += 1
        if count == 0:
            raise InputError(f"no frames to write to {path}")
    return count
