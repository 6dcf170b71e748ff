"""A live source: frames read on a thread of its own, the newest few kept, reconnecting when it drops.

A source is a stream URL OpenCV's FFmpeg opens (``rtsp://`` over TCP or UDP, ``udp://``, ``tcp://``,
``http(s)://``, ``srt://`` when the build has it), ``camera:N`` for a local device, or a video file,
which is played at its own frame rate, as a camera would deliver it. Each frame is stamped with its
arrival time on this machine's monotonic clock: two independent cameras share no other clock, so
frames pair by arrival time (see ``fusion``).

The reader never waits for the consumer: it keeps the newest ``keep`` frames and lets older ones go
(``fusion`` counts the visible frames it never fused). When the stream fails (read error, end of a
network stream) it reopens it with a growing back-off; a source down for longer than
``reconnect_timeout_s`` is failed, with a one-line reason. A file ends at its end.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from occo_deploy import log
from occo_deploy.errors import SourceError
from occo_deploy.urls import mask_credentials

_log = log.get("live")

#: Seconds over which rates (a source's frames in, a run's or a rig's frames out) are measured.
RATE_WINDOW_S = 5.0
#: Pairing tolerance when the streams report no frame rate (ms).
DEFAULT_TOLERANCE_MS = 50.0
#: Seconds between reconnection attempts: doubling from the first, capped at the last.
BACKOFF_S = (0.25, 2.0)
#: Seconds between attempts while the camera answers 401: many cameras lock an account after a few
#: failed logins, so a wrong password is tried at most this often.
AUTH_RETRY_S = 30.0
#: How long OpenCV may wait to open a network stream, and for one frame of it (ms).
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 3000
#: How long the server of a source that did not open is asked why (``probe``): a refused connection
#: answers at once, a dead host takes this long.
PROBE_TIMEOUT_S = 2.0
_URL = re.compile(r"^(rtsp|rtsps|rtmp|udp|tcp|http|https|srt|rtp)://", re.IGNORECASE)


@dataclass(frozen=True)
class Captured:
    index: int  # 0, 1, 2... in arrival order, across reconnections
    t: float  # arrival, time.monotonic() seconds
    image: np.ndarray


class Capture(Protocol):
    """What a source kind opens: the part of ``cv2.VideoCapture`` a ``Source`` uses."""

    def isOpened(self) -> bool: ...  # OpenCV's name
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


@dataclass(frozen=True)
class SourceKind:
    """One kind of live source: which strings name it, and how to open one (a new kind is one entry
    in ``SOURCE_KINDS``; see DEVELOPERS.md)."""

    name: str
    #: The form users write, for the error that lists what is accepted.
    form: str
    #: The source string -> the target to open (a device number, a URL, a path), or None when not this kind.
    match: Callable[[str], Any]
    #: Open the target for a ``Source``; a ``Capture`` or None when it cannot be opened now.
    open: Callable[[Source], Capture | None]
    #: Recorded, not live: played at its own frame rate, ended at its end, never reconnected.
    recorded: bool = False


def _camera(source: Source) -> Capture | None:
    import cv2

    capture: Capture = cv2.VideoCapture(source.target)
    return capture


def _stream(source: Source) -> Capture | None:
    import os

    import cv2

    from occo_deploy.video.streams import open_capture

    if str(source.target).lower().startswith("rtsp"):
        # Read by OpenCV's FFmpeg backend when it opens a capture; process-wide, hence set per open.
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{source.rtsp_transport}"
    capture: Capture = open_capture(source.target, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS,
                                                    *_threads(source)])
    return capture


def _file(source: Source) -> Capture | None:
    from occo_deploy.video.streams import open_capture

    capture: Capture = open_capture(str(source.target), _threads(source) or None)
    return capture


def _threads(source: Source) -> list[int]:
    """The decoder's thread count as an open parameter; none: FFmpeg's own (one per core, per stream)."""
    import cv2

    return [cv2.CAP_PROP_N_THREADS, source.decoder_threads] if source.decoder_threads else []


def _camera_number(spec: str) -> int | None:
    found = re.fullmatch(r"camera:(\d+)", spec.strip())
    return int(found.group(1)) if found else None


#: Every kind of live source, tried in order.
SOURCE_KINDS: list[SourceKind] = [
    SourceKind("url", "a stream URL (rtsp://, udp://, tcp://, http(s)://, srt://)",
               lambda spec: spec if _URL.match(spec) else None, _stream),
    SourceKind("camera", "camera:N", _camera_number, _camera),
    SourceKind("file", "an existing video file", lambda spec: Path(spec) if Path(spec).is_file() else None, _file,
               recorded=True),
]


def describe(spec: str) -> tuple[SourceKind, Any]:
    """(kind, target) for a source string, or an error saying what is accepted."""
    for kind in SOURCE_KINDS:
        target = kind.match(spec)
        if target is not None:
            return kind, target
    forms = [k.form for k in SOURCE_KINDS]
    raise SourceError(f"live source {mask_credentials(spec)!r} is neither {', '.join(forms[:-1])} nor {forms[-1]}")


class Source:
    """One live stream, read on a background thread; use as a context manager or call ``close``."""

    def __init__(self, spec: str, what: str, *, keep: int = 4, reconnect_timeout_s: float = 10.0,
                 rtsp_transport: str = "tcp", decoder_threads: int | None = None) -> None:
        self.spec, self.what = spec, what
        #: The source as messages, reports and pages show it: its password masked.
        self.label = mask_credentials(spec)
        self._kind, self.target = describe(spec)
        #: Which of ``SOURCE_KINDS`` it is: "camera", "url", "file", ...
        self.kind = self._kind.name
        self.reconnect_timeout_s = reconnect_timeout_s
        self.rtsp_transport = rtsp_transport
        #: Threads of this stream's decoder; None: FFmpeg's default, one per core (serve's
        #: ``decoder_threads`` bounds it for machines of many cores and many streams).
        self.decoder_threads = decoder_threads
        self._frames: deque[Captured] = deque(maxlen=keep)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: "connecting" | "live" | "reconnecting" | "ended" (a file's end) | "failed" | "closed"
        self.state = "connecting"
        self.error: str | None = None
        self.fps: float | None = None  # as the stream reports it
        self.size_wh: tuple[int, int] | None = None
        self.received = 0
        #: Times the stream came back after it had been live and went down; ``attempts`` counts the
        #: tries to open it again (several per outage).
        self.reconnects = 0
        self.attempts = 0
        self._was_live = False
        #: Why it is not live (refused, 401, 404, no answer, stopped...), and since when (monotonic).
        self.cause: str | None = None
        self.down_since: float | None = None
        self.started = time.monotonic()
        self._said: str | None = None  # the cause last logged, so a retry with the same one stays quiet
        self._arrived: deque[float] = deque(maxlen=2048)  # arrival times, for the rate of the last seconds

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Source:
        self._thread = threading.Thread(target=self._run, name=f"live-{self.what}", daemon=True)
        self._thread.start()
        return self

    def close(self, wait_s: float = 1.0) -> None:
        """Stop reading; wait up to ``wait_s`` for the reader (it may be inside an open or a read that
        only the stream's timeout ends: it is a daemon thread, and stops by itself after it)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=wait_s)
        if self.state not in ("failed", "ended"):
            self.state = "closed"

    def __enter__(self) -> Source:
        return self if self._thread else self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def reading(self) -> bool:
        """Whether the reader thread still runs (inside an open or a read only its timeout ends)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self.state in ("ended", "failed", "closed")

    # -- consumer side ----------------------------------------------------------------------------
    def newest(self, after: int, timeout: float) -> Captured | None:
        """The newest frame with an index above ``after``, waiting up to ``timeout`` s for one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._frames and self._frames[-1].index > after:
                    return self._frames[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.done:
                    return None
                self._cond.wait(remaining)

    def nearest(self, t: float) -> Captured | None:
        """The kept frame whose arrival is nearest to ``t``."""
        with self._cond:
            return min(self._frames, key=lambda f: abs(f.t - t), default=None)

    def wait_until(self, t: float, timeout: float) -> None:
        """Block until a frame that arrived at or after ``t`` is here, or ``timeout`` s passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._frames and self._frames[-1].t >= t) and not self.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def arrivals(self, since: float) -> list[float]:
        """Arrival times (monotonic) of the frames that came after ``since``."""
        with self._cond:
            return [t for t in self._arrived if t > since]

    def figures(self) -> dict[str, Any]:
        """Counters for reports: state, frames received, reconnections, rate (over the last seconds: a
        camera that died shows 0, not its average since the start)."""
        now = time.monotonic()
        window = min(RATE_WINDOW_S, max(1e-9, now - self.started))
        return {"source": self.label, "state": self.state, "status": self.status(), "cause": self.cause,
                "error": self.error, "received": self.received,
                "reconnects": self.reconnects, "reconnect_attempts": self.attempts, "fps_nominal": self.fps,
                "fps_in": len(self.arrivals(now - window)) / window,
                "size_wh": list(self.size_wh) if self.size_wh else None}

    # -- reader thread -----------------------------------------------------------------------------
    def _open(self) -> Capture | None:
        import cv2

        cap = self._kind.open(self)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if 0.0 < fps < 1000.0:
            self.fps = fps
        return cap

    def _push(self, image: np.ndarray) -> None:
        with self._cond:
            now = time.monotonic()
            self._frames.append(Captured(self.received, now, image))
            self._arrived.append(now)
            self.received += 1
            self.size_wh = (image.shape[1], image.shape[0])
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = BACKOFF_S[0]
        while not self._stop.is_set():
            cap = self._open()
            if cap is None:
                self.cause = self._diagnose() or "it could not be opened"
                if not self._stop.is_set():
                    self._say_down(self.cause)
            else:
                if self.state == "reconnecting" and self._was_live:
                    self.reconnects += 1  # back after an outage: a reconnection, not an attempt
                self._say_up()
                self.state, self._was_live, self.cause = "live", True, None
                self.down_since, backoff = None, BACKOFF_S[0]
                self.cause = self._read(cap)
                cap.release()
                if self.state == "ended" or self._stop.is_set():
                    break
                self._say_down(self.cause)
            now = time.monotonic()
            self.down_since = down_since = self.down_since or now
            last_error = self.cause
            if self._kind.recorded and cap is None:
                self._fail(f"{self.what} file {self.label} cannot be read as a video")
                break
            if now - down_since > self.reconnect_timeout_s:
                self._fail(f"{self.what} source {self.label} down for more than {self.reconnect_timeout_s:g} s "
                           f"({last_error}); check the camera or stream, or raise --reconnect-timeout")
                break
            self.state = "reconnecting"
            wait = backoff
            if _refused_login(self.cause):
                # Not before the next try is due, and not past the time this run gives the source.
                wait = min(AUTH_RETRY_S, max(0.0, self.reconnect_timeout_s - (now - down_since)) + 0.05)
            self._stop.wait(wait)
            backoff = min(BACKOFF_S[1], backoff * 2)
            self.attempts += 1

    # -- state changes, one log record each (a service's stdout is a log, not a status line) -----------
    def _say_down(self, cause: str) -> None:
        """A source that is not live, with why: once per cause, not once per retry."""
        if cause == self._said:
            return
        self._said = cause
        since = self.down_since or time.monotonic()
        retry = f"retrying every {AUTH_RETRY_S:g} s (cameras lock accounts after failed logins)" \
            if _refused_login(cause) else "retrying"
        _log.warning("%s source %s %s: %s; %s", self.what, self.label,
                     "went down" if self._was_live else "is not live", cause, retry,
                     extra={"fields": {"event": "source_down", "source": self.what, "url": self.label,
                                       "cause": cause, "after_s": round(since - self.started, 2)}})

    def _say_up(self) -> None:
        after = time.monotonic() - self.down_since if self.down_since is not None else None
        back = self._was_live and after is not None
        text = f"back after {after:.0f} s" if back and after is not None else "live"
        _log.info("%s source %s is %s", self.what, self.label, text,
                  extra={"fields": {"event": "source_up" if back else "source_live", "source": self.what,
                                    "url": self.label, "down_s": round(after, 2) if back and after else None}})
        self._said = None

    def _diagnose(self) -> str:
        """Why a network source does not open, asked of its server (``probe``); "" elsewhere."""
        if self._kind.name != "url":
            return ""
        from occo_deploy.live.probe import diagnose

        return diagnose(str(self.target), timeout=PROBE_TIMEOUT_S)

    def status(self) -> str:
        """The source's state in a few words: "live", or "reconnecting (3 s, connection refused ...)"."""
        if self.state in ("live", "ended", "closed"):
            return self.state
        since, cause = self.down_since, self.cause  # read once: the reader thread changes them
        parts = [f"{time.monotonic() - since:.0f} s"] if since is not None else []
        parts += [cause] if cause else []
        return f"{self.state} ({', '.join(parts)})" if parts else self.state

    def _read(self, cap: Capture) -> str:
        """Read until the stream fails (returns why) or, for a recording, ends (state "ended")."""
        start, first = time.monotonic(), None
        while not self._stop.is_set():
            asked = time.monotonic()
            ok, image = cap.read()
            if not ok or image is None:
                if self._kind.recorded:
                    self.state = "ended"
                    with self._cond:
                        self._cond.notify_all()
                if time.monotonic() - asked < 0.9 * READ_TIMEOUT_MS / 1000:
                    return "the stream ended (the camera or server closed it)"
                return f"the stream stopped (no frame within {READ_TIMEOUT_MS / 1000:g} s)"
            if self._kind.recorded:
                # A recording plays at its own rate, as the camera that recorded it delivered it.
                first = self.received if first is None else first
                due = start + (self.received - first) / (self.fps or 30.0)
                self._stop.wait(max(0.0, due - time.monotonic()))
            self._push(image)
        return "closed"

    def _fail(self, message: str) -> None:
        _log.error("%s", message, extra={"fields": {"event": "source_failed", "source": self.what, "url": self.label}})
        self.error = message
        self.state = "failed"
        with self._cond:
            self._cond.notify_all()


def pairing_tolerance_s(ir: Source, vis: Source) -> float:
    """How far apart in arrival a visible frame and its infrared partner may be: half the longer
    frame period, so every visible frame can find its nearest infrared partner."""
    rates = [f for f in (ir.fps, vis.fps) if f]
    return 0.5 / min(rates) + 1e-3 if rates else DEFAULT_TOLERANCE_MS / 1e3


def _refused_login(cause: str | None) -> bool:
    return bool(cause) and str(cause).startswith("401")


def open_source(spec: str, what: str, **kw: Any) -> Source:
    """A started ``Source`` (``with open_source(...) as s:`` closes it)."""
    return Source(spec, what, **kw).start()
