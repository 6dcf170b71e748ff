"""What ``fuse --live`` runs: two sources, the fusion loop, an optional video, an optional preview.

The output video keeps real time: it runs at the visible stream's frame rate, and a fused frame is
repeated for as many frame periods as passed since the previous one (frames the engine could not
keep up with were dropped, not slowed down). It is finalised (complete and playable) however the run
ends: its duration, Ctrl-C, a source that ended or failed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from occo_deploy import log
from occo_deploy.errors import InputError, OutputError, SourceError, Terminated, option
from occo_deploy.fusing.jobs import stamped
from occo_deploy.live.fusion import LiveFrame, LiveFusion
from occo_deploy.live.preview import PreviewServer
from occo_deploy.live.sources import Source
from occo_deploy.runtime.stats import LIVE_WINDOW, LatencyStats

if TYPE_CHECKING:
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.video.encode import VideoEncoding
    from occo_deploy.video.streams import ThreadedWriter

_log = log.get("live")

#: Called about every half second with the live figures (the CLI's progress line).
OnFigures = Callable[[dict[str, Any]], None]
FIGURES_EVERY_S = 0.5
DEFAULT_OUTPUT_FPS = 30.0


@dataclass(frozen=True)
class LiveOptions:
    """How a live run treats its sources: ``fuse --live``'s own options, as ``run_live`` takes them."""

    #: Stop after this many seconds (None: until Ctrl-C, SIGTERM or a source's end).
    duration_s: float | None = None
    #: Known lag of the infrared stream behind the visible one (ms).
    offset_ms: float = 0.0
    #: Largest gap between paired arrivals (ms; None: half the longer frame period).
    tolerance_ms: float | None = None
    #: End the run when a source stays down this long (s).
    reconnect_timeout_s: float = 10.0
    rtsp_transport: str = "tcp"

    def __post_init__(self) -> None:
        if self.rtsp_transport not in ("tcp", "udp"):
            raise InputError(f"{option('rtsp_transport')} is tcp or udp (got {self.rtsp_transport!r})")


@dataclass
class LiveReport:
    figures: dict[str, Any]
    output: Path | None
    frames_written: int = 0
    ended_by: str = ""
    engine: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    #: Why the run failed (a source that stayed down), None when it ended normally.
    error: str | None = None
    #: A fuse or a camera's reader still running on its own thread when the run ended: everything is
    #: written, but a process should end with ``os._exit`` rather than tear its runtime down under it.
    fuse_in_flight: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "live", "output": str(self.output) if self.output else None,
                "frames_written": self.frames_written, "ended_by": self.ended_by, "error": self.error,
                "engine": self.engine,
                "live": self.figures, "latency": self.latency, "notices": self.notices}


def run_live(fuser: Fuser, ir_spec: str, vis_spec: str, output: Path | None = None, *,
             options: LiveOptions | None = None, preview: PreviewServer | None = None, force: bool = False,
             on_figures: OnFigures | None = None, encoding: VideoEncoding | None = None) -> LiveReport:
    """Fuse two live sources until ``duration_s``, Ctrl-C or a source's end; ``SourceError`` when one
    stays down, after the output is finalised. State changes and notices are logged as they happen
    (``occo_deploy.live``), so a service's log has them at once."""
    from occo_deploy.files import check_writable

    opts = options or LiveOptions()
    if output is not None:
        check_writable(output, force)
    fuser.stats = LatencyStats(window=LIVE_WINDOW)  # a live run may last for days: the last calls' timings
    with contextlib.ExitStack() as stack:
        ir = stack.enter_context(Source(ir_spec, "infrared", reconnect_timeout_s=opts.reconnect_timeout_s,
                                        rtsp_transport=opts.rtsp_transport))
        vis = stack.enter_context(Source(vis_spec, "visible", reconnect_timeout_s=opts.reconnect_timeout_s,
                                         rtsp_transport=opts.rtsp_transport))
        live = LiveFusion(fuser, ir, vis, offset_ms=opts.offset_ms, tolerance_ms=opts.tolerance_ms,
                          duration_s=opts.duration_s)
        video = RealTimeVideo(stack, output, force, fuser, stamped(encoding, fuser)) if output is not None else None
        early: list[str] = []  # notices logged while it runs, kept for the report
        failure: SourceError | None = None
        _tick_figures(stack, live, on_figures, preview)
        try:
            for frame in live:
                if frame.index == SLOW_JUDGED_AT:
                    slow = slow_notice(frame, vis.fps, fuser.max_side, fuser.info())
                    if slow is not None:
                        early.append(slow)  # logged now, not only in the summary: the user decides at once
                        said = {"event": "slow", "fused_fps": 1000 / frame.latency_ms, "camera_fps": vis.fps}
                        _log.warning("%s", slow, extra={"fields": said})
                if video is not None:
                    video.add(frame.fused, frame.t_capture, vis.fps)
                if preview is not None:
                    preview.publish(frame.fused, live.figures())
        except KeyboardInterrupt:
            live.stop("Ctrl-C")
        except Terminated:
            live.stop("SIGTERM")
        except SourceError as exc:
            failure = exc
        if video is not None:
            end = time.monotonic()
            if opts.duration_s is not None and live.stopped_because.endswith("s elapsed"):
                end = live.started + opts.duration_s  # a run stopped short of --duration still covers it
            video.hold_until(end)
        report = _report(live, fuser, output, video, early)
        if video is not None and video.frames_written == 0 and failure is None:
            if report.ended_by in ("Ctrl-C", "SIGTERM"):  # stopped early on purpose: said, not an error
                report.notices.append(f"no pair was fused before {report.ended_by}; nothing written to {output}")
            else:
                failure = SourceError(f"no pair was fused before the run ended ({report.ended_by}); nothing "
                                      f"written to {output}")
    # Leaving the stack closes the writer and renames the output into place: complete and playable.
    # A camera's reader still inside an open or a read (up to its timeout) is left to end by itself.
    report.fuse_in_flight = report.fuse_in_flight or ir.reading or vis.reading
    if failure is not None:
        report.error = str(failure)
        raise LiveRunError(str(failure), report) from failure
    return report


class RealTimeVideo:
    """The live output video, in real time: at the visible stream's frame rate, a fused frame repeated
    for as many frame periods as passed since the one before (frames the engine could not keep up
    with were dropped, not slowed down). Opened at the first frame (its size and rate are known
    then), under a temporary name the run's exit stack renames into place."""

    def __init__(self, stack: contextlib.ExitStack, output: Path, force: bool, fuser: Fuser,
                 encoding: VideoEncoding | None = None) -> None:
        self.stack, self.output, self.force, self.fuser = stack, output, force, fuser
        self.encoding = encoding
        self.writer: ThreadedWriter | None = None
        self.tmp = output
        self.fps, self.t0 = DEFAULT_OUTPUT_FPS, 0.0
        self.last: np.ndarray | None = None  # the last fused frame written
        self.frames_written = 0

    def add(self, fused: np.ndarray, t_capture: float, camera_fps: float | None) -> None:
        if self.writer is None:
            from occo_deploy.files import atomic_output
            from occo_deploy.video.streams import ThreadedWriter

            self.fps, self.t0 = camera_fps or DEFAULT_OUTPUT_FPS, t_capture
            tmp = self.tmp = self.stack.enter_context(atomic_output(self.output, self.force))
            h, w = fused.shape[:2]
            self.writer = self.stack.enter_context(ThreadedWriter(
                tmp, self.fps, (w, h), self.output.suffix, on_encode=lambda s: self.fuser.stats.add("encode", s),
                encoding=self.encoding))
        # A gap (slow fusion, an outage) holds the frame before it; the new one comes at its time.
        self._hold(round((t_capture - self.t0) * self.fps))
        self._write(fused)

    def hold_until(self, end: float) -> None:
        """The last frame held to ``end`` (monotonic seconds): the video covers the whole run."""
        self._hold(round((end - self.t0) * self.fps))

    def _hold(self, frames: int) -> None:
        while self.last is not None and self.frames_written < frames:
            self._write(self.last)

    def _write(self, fused: np.ndarray) -> None:
        assert self.writer is not None
        try:
            self.writer.write(fused)
        except OutputError as exc:
            from occo_deploy.video.streams import cut_short

            failure = cut_short(self.writer, self.tmp, self.output, self.force, exc)
            if failure is exc:
                raise
            raise failure from exc
        self.frames_written += 1
        self.last = fused


def _tick_figures(stack: contextlib.ExitStack, live: LiveFusion, on_figures: OnFigures | None,
                  preview: PreviewServer | None) -> None:
    """The figures every half second, fused frames or not (until the stack closes): while a source is
    down, the status line and the preview say so (and why) instead of freezing on the last frame's."""
    ticking = threading.Event()

    def tick() -> None:
        while not ticking.wait(FIGURES_EVERY_S):
            figures = live.figures()
            if on_figures is not None:
                on_figures(figures)
            if preview is not None:
                preview.publish_figures(figures)

    ticker = threading.Thread(target=tick, name="live-figures", daemon=True)
    ticker.start()
    stack.callback(ticker.join)
    stack.callback(ticking.set)


def _report(live: LiveFusion, fuser: Fuser, output: Path | None, video: RealTimeVideo | None,
            early: list[str]) -> LiveReport:
    """What the run measured, however it ended."""
    stretch = live.stretch.describe() if live.stretch is not None else {"mode": "frame"}
    report = LiveReport(live.figures(), output, video.frames_written if video is not None else 0,
                        ended_by=live.stopped_because or "stopped", engine={**fuser.info(), "stretch": stretch},
                        notices=[*early, *fuser.notices])
    report.fuse_in_flight = live.abandoned is not None and live.abandoned.is_alive()
    report.latency = fuser.stats.summary()
    report.latency["stages"]["capture_to_output"] = report.figures["latency_ms"]
    return report


#: Fused frames slower than this per second are worth a word at the start of a live run.
SLOW_FPS = 1.0


#: The fused frame whose time decides the slow notice: the first pays for warm-up (an OpenVINO
#: compile, first allocations: 1.7 s against a steady 0.69 s on a Zen 4), the second does not.
SLOW_JUDGED_AT = 1


def slow_notice(frame: LiveFrame, camera_fps: float | None, max_side: int | None,
                engine: dict[str, Any] | None = None) -> str | None:
    """At the second fused frame: when fusion runs under ``SLOW_FPS`` at this frame size, how fast it
    is against the cameras, and the ways out this engine does not take already (a smaller size, a
    faster engine, a GPU)."""
    seconds = frame.latency_ms / 1000
    if seconds <= 1 / SLOW_FPS:
        return None
    h, w = frame.fused.shape[:2]
    cameras = f" against the cameras' {camera_fps:.0f} fps" if camera_fps else ""
    ways = [option("max_side", 640)] if max(h, w) > 640 and not max_side else []
    engine = engine or {}
    if engine.get("backend") == "tensorrt" or engine.get("provider") in ("cuda", "ort-tensorrt"):
        if engine.get("precision") not in ("fp16", "int8"):
            ways.append("a reduced-precision engine (occo-deploy build --backend tensorrt --fp16)")
    else:
        if not (engine.get("backend") == "openvino" and engine.get("precision") == "int8"):
            ways.append("a faster engine (occo-deploy build --backend openvino --int8)")
        ways.append("a GPU")
    return (f"fusing {w}x{h} frames takes {seconds:.1f} s each here ({1 / seconds:.2f} fps{cameras}): most frames "
            f"will be dropped; faster with {' or '.join(ways)}")


class LiveRunError(SourceError):
    """The run ended on a source that stayed down, or with nothing fused; ``report`` holds what the run
    measured until then, so a ``--report`` is written however the run ends."""

    def __init__(self, message: str, report: LiveReport) -> None:
        super().__init__(message)
        self.report = report
