"""One camera rig inside ``serve``: its two sources, its pairing, its held stretch and its outputs.

The rig never calls the engine: it offers its newest pair (``take``) to the service's engine loop,
which batches the pairs of all rigs into one call and hands each rig its fused frame back
(``deliver``). A camera that drops is reconnected for as long as the service runs.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from occo_deploy import log
from occo_deploy.live.sources import RATE_WINDOW_S, Source, pairing_tolerance_s
from occo_deploy.serve.config import RigConfig
from occo_deploy.serve.metrics import DROP_REASONS

if TYPE_CHECKING:
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.registration.rig import Rig
    from occo_deploy.runtime.stretch import SteadyStretch
    from occo_deploy.serve.metrics import Metrics
    from occo_deploy.video.encode import Encoder

_log = log.get("serve")

JPEG_QUALITY = 80
#: Fused frames a recording may be behind before it drops them (a few seconds at camera rates).
RECORD_QUEUE = 30


@dataclass
class Pending:
    """A pair a rig offers the engine: the frames as the engine takes them, and when the visible one came."""

    rig: RigRunner
    ir: np.ndarray
    vis: np.ndarray
    t_capture: float

    @property
    def hw(self) -> tuple[int, int]:
        return self.vis.shape[0], self.vis.shape[1]


class RigRunner:
    def __init__(self, config: RigConfig, fuser: Fuser, metrics: Metrics, *, recordings: Path | None,
                 segment_s: float = 60.0, keep_hours: float = 24.0, keep_gb: float | None = None,
                 decoder_threads: int = 0,
                 on_state: Callable[[str, str, str, dict[str, str]], None] | None = None) -> None:
        self.config, self.name, self.metrics = config, config.name, metrics
        self.align: Rig | None = None
        if config.align is not None:
            from occo_deploy.registration.rig import Rig

            self.align = Rig.load(config.align)
        #: The range this rig's frames are stretched over, held across its frames (and reconnections).
        self.stretch: SteadyStretch | None = fuser.steady("steady")
        # Cameras reboot: a service retries for as long as it runs (a 401 at most every 30 s).
        threads = decoder_threads or None
        self.ir = Source(config.infrared, "infrared", reconnect_timeout_s=math.inf, decoder_threads=threads)
        self.vis = Source(config.visible, "visible", reconnect_timeout_s=math.inf, decoder_threads=threads)
        self.recorder = Recorder(recordings / config.name, config.name, segment_s, keep_hours, keep_gb) \
            if config.record and recordings is not None else None
        self._on_state = on_state
        self.publisher = None
        if config.publish:
            from occo_deploy.serve.publish import Publisher

            self.publisher = Publisher(config.publish, config.name)
        self.fused = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self._failure: str | None = None
        self._last_vis = -1
        self._last_fused_t = -math.inf
        self._outputs: deque[float] = deque()
        self._latency: deque[float] = deque(maxlen=200)
        self._reconnects = {"infrared": 0, "visible": 0}
        self.state = "connecting"
        self.started = time.monotonic()
        self._preview = threading.Condition()
        self._newest: np.ndarray | None = None  # the newest fused frame, for the previews
        self._seq = 0  # fused frames published; the JPEG of the newest is made when a viewer asks
        self._jpeg: tuple[int, bytes] = (0, b"")
        self.closed = False

    def start(self) -> RigRunner:
        self.ir.start()
        self.vis.start()
        self.metrics.set_state(self.name, self.state)
        _log.info("rig %s: starting (%s + %s)", self.name, self.ir.label, self.vis.label,
                  extra={"fields": {"event": "rig_started", "rig": self.name}})
        return self

    # -- the engine loop's side ------------------------------------------------------------------------
    def take(self) -> Pending | None:
        """The newest visible frame not offered yet, with its infrared partner, or None: none is new,
        or its partner has not come yet. Frames passed over are counted as dropped."""
        self._update_state()
        vis = self.vis.newest(self._last_vis, timeout=0)
        if vis is None:
            return None
        tolerance = pairing_tolerance_s(self.ir, self.vis)
        ir = self.ir.nearest(vis.t)
        if ir is None or abs(ir.t - vis.t) > tolerance:
            if time.monotonic() - vis.t <= tolerance:
                return None  # its partner may still come
            self._drop("unpaired", 1)
            self._consume(vis.index)
            return None
        cap = self.config.fps
        if cap and vis.t - self._last_fused_t < 1.0 / cap - 1e-3:
            self._drop("fps_cap", 1)
            self._consume(vis.index)
            return None
        self._consume(vis.index)
        self._last_fused_t = vis.t
        ir_image, vis_image = ir.image, vis.image
        if self.align is not None:
            ir_image, vis_image = self.align.apply(ir_image, vis_image)
        return Pending(self, ir_image, vis_image, vis.t)

    def failed(self, cause: str) -> None:
        """A pair of this rig the engine could not take (cameras that do not share a view, say): counted,
        and said once per cause, not once per frame."""
        self._drop("failed", 1)
        if cause != self._failure:
            self._failure = cause
            _log.warning("rig %s: its frames cannot be fused: %s", self.name, cause,
                         extra={"fields": {"event": "frames_failed", "rig": self.name, "cause": cause}})

    def deliver(self, fused: np.ndarray, t_capture: float) -> None:
        """A fused frame of this rig, from the engine loop: count it, record it, publish it."""
        self._failure = None
        now = time.monotonic()
        self.fused += 1
        self._outputs.append(now)
        while now - self._outputs[0] > RATE_WINDOW_S:  # flat memory when nobody reads the figures
            self._outputs.popleft()
        self._latency.append(now - t_capture)
        self.metrics.fused.labels(self.name).inc()
        self.metrics.latency.labels(self.name).observe(now - t_capture)
        fps = self.config.fps or self.vis.fps or 10.0
        if self.recorder is not None and not self.recorder.write(fused, fps, t_capture):
            self.metrics.recording_dropped.labels(self.name).inc()
        if self.publisher is not None:
            self.publisher.offer(fused, fps)
        with self._preview:  # handed over only: the engine loop encodes nothing for viewers
            self._newest, self._seq = fused, self._seq + 1
            self._preview.notify_all()

    def next_preview(self, after: int, timeout: float) -> tuple[int, bytes | None]:
        """The newest fused frame after ``after`` as JPEG, waiting up to ``timeout`` s; encoded on the
        viewer's thread, once per frame whatever the number of viewers."""
        import cv2

        with self._preview:
            self._preview.wait_for(lambda: self._seq > after or self.closed, timeout)
            seq, frame = self._seq, self._newest
            if frame is None or self._jpeg[0] == seq:
                return seq, self._jpeg[1] or None
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return seq, None
        jpeg = data.tobytes()
        with self._preview:
            if seq >= self._jpeg[0]:
                self._jpeg = (seq, jpeg)
        return seq, jpeg

    # -- state -----------------------------------------------------------------------------------------
    def _consume(self, index: int) -> None:
        if self._last_vis >= 0 and index - self._last_vis > 1:
            self._drop("busy", index - self._last_vis - 1)
        self._last_vis = index

    def _drop(self, reason: str, count: int) -> None:
        self.dropped[reason] += count
        self.metrics.dropped.labels(self.name, reason).inc(count)

    def _update_state(self) -> None:
        for source, camera in ((self.ir, "infrared"), (self.vis, "visible")):
            if source.reconnects > self._reconnects[camera]:
                self.metrics.reconnections.labels(self.name, camera).inc(source.reconnects - self._reconnects[camera])
                self._reconnects[camera] = source.reconnects
        states = (self.ir.state, self.vis.state)
        if self.closed:
            state = "stopped"
        elif states == ("live", "live"):
            state = "live"
        elif "connecting" in states and all(s in ("connecting", "live") for s in states):
            state = "connecting"  # a first open still under way, none failed yet
        else:
            state = "down"
        if state != self.state:
            previous, self.state = self.state, state
            self.metrics.set_state(self.name, state)
            causes = {s.what: s.cause for s in (self.ir, self.vis) if state == "down" and s.state != "live" and s.cause}
            said = "; ".join(f"{what}: {cause}" for what, cause in causes.items())
            _log.info("rig %s: %s%s", self.name, state, f" ({said})" if said else "",
                      extra={"fields": {"event": "rig_state", "rig": self.name, "state": state, "was": previous,
                                        "causes": causes}})
            if self._on_state is not None:
                self._on_state(self.name, state, previous, {k: str(v) for k, v in causes.items()})

    def figures(self) -> dict[str, Any]:
        now = time.monotonic()
        while self._outputs and now - self._outputs[0] > RATE_WINDOW_S:
            self._outputs.popleft()
        window = min(RATE_WINDOW_S, max(1e-9, now - self.started))
        fps_in = len(self.vis.arrivals(now - window)) / window
        fps_out = len(self._outputs) / window
        self.metrics.fps_in.labels(self.name).set(fps_in)
        self.metrics.fps_out.labels(self.name).set(fps_out)
        latency = sorted(self._latency)
        return {
            **self.config.public(), "state": self.state, "fused": self.fused, "dropped": dict(self.dropped),
            "fps_in": round(fps_in, 2), "fps_out": round(fps_out, 2),
            "latency_ms_p50": round(latency[len(latency) // 2] * 1e3, 1) if latency else None,
            "cameras": {s.what: {"url": s.label, "state": s.state, "cause": s.cause, "reconnects": s.reconnects,
                                 "size_wh": list(s.size_wh) if s.size_wh else None} for s in (self.ir, self.vis)},
            "recording": {"file": self.recorder.current_name, "segments": self.recorder.segments,
                          "dropped": self.recorder.dropped} if self.recorder is not None else None,
            "publishing": self.publisher.figures() if self.publisher is not None else None,
        }

    def close(self, wait_s: float = 1.0) -> None:
        """Stop the rig: its recording is closed whole; its cameras' readers are given ``wait_s``."""
        self.closed = True
        with self._preview:
            self._preview.notify_all()
        if self.recorder is not None:  # first: the engine loop has stopped, so its last frames are in
            self.recorder.close()
        for source in (self.ir, self.vis):
            source.close(wait_s)
        if self.publisher is not None:
            self.publisher.close()
        self._update_state()
        _log.info("rig %s: stopped after %d fused frame(s)", self.name, self.fused,
                  extra={"fields": {"event": "rig_stopped", "rig": self.name, "fused": self.fused}})


class Recorder:
    """A rig's H.264 recording in segments of ``segment_s`` (fragmented MP4, each playable while it
    is written), named by their start time (UTC); segments older than ``keep_hours`` are deleted, and
    the oldest beyond ``keep_gb`` in all.

    One thread per rig encodes, rotates and deletes: the engine loop only hands a frame over and never
    waits for an encoder, a flush or a file system. A frame that finds the queue full is dropped and
    counted (``dropped``): the recording then skips it, the live outputs do not wait.
    """

    def __init__(self, folder: Path, name: str, segment_s: float, keep_hours: float,
                 keep_gb: float | None = None, depth: int = RECORD_QUEUE) -> None:
        self.folder, self.name = folder, name
        self.segment_s, self.keep_s = segment_s, keep_hours * 3600.0
        self.keep_bytes = None if keep_gb is None else keep_gb * 1e9
        self.current_name: str | None = None
        self.segments = 0
        self.dropped = 0
        self._failure: str | None = None
        self._queue: queue.Queue[tuple[np.ndarray, float, float] | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name=f"record-{name}", daemon=True)
        self._thread.start()

    def write(self, frame: np.ndarray, fps: float, t: float | None = None) -> bool:
        """Hand a fused frame over, taken at ``t`` (monotonic s; default now): the recording is stamped
        by it, so it plays in real time however slowly the engine fused. False (and counted) when the
        encoder is behind by a full queue."""
        try:
            self._queue.put_nowait((frame, fps, time.monotonic() if t is None else t))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, wait_s: float = 2.0) -> None:
        """Encode what was handed over and finish the segment whole; waits at most ``wait_s``."""
        end = time.monotonic() + wait_s
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=wait_s)
        self._thread.join(timeout=max(0.0, end - time.monotonic()))
        if self._thread.is_alive():
            _log.warning("rig %s: recording %s still closing after %g s", self.name, self.current_name, wait_s,
                         extra={"fields": {"event": "segment_slow", "rig": self.name}})

    # -- the recording thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        from occo_deploy.video.encode import as_bgr

        encoder: Encoder | None = None
        opened = -math.inf  # when the segment's first frame was taken
        while True:
            item = self._queue.get()
            if item is None:
                break
            frame, fps, taken = item
            if taken - opened >= self.segment_s:
                self._finish(encoder)
                encoder, opened = self._open(frame, fps), taken  # a failed open is tried again next segment
            if encoder is None:
                continue
            try:
                encoder.write(as_bgr(frame), at=taken - opened)
            except Exception as exc:  # noqa: BLE001 - a full disk, say: this segment ends, the next tries again
                self._failed(f"writing {self.current_name} failed: {exc}")
                self._finish(encoder)
                encoder = None
        self._finish(encoder)

    def _open(self, frame: np.ndarray, fps: float) -> Encoder | None:
        from occo_deploy.video.encode import VideoEncoding, open_encoder

        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
        path = self.folder / f"{self.name}-{stamp}.mp4"
        h, w = frame.shape[:2]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            encoder = open_encoder(path, fps, (w, h), ".mp4", VideoEncoding(live=True))
        except Exception as exc:  # noqa: BLE001 - OSError or OutputError: said once, tried next segment
            self._failed(f"cannot start a segment in {self.folder}: {exc}")
            return None
        self.current_name = path.name
        self.segments += 1
        self._expire()
        return encoder

    def _finish(self, encoder: Encoder | None) -> None:
        if encoder is None:
            return
        try:
            encoder.close()
        except Exception as exc:  # noqa: BLE001 - the segment so far stays (fragmented MP4); the next tries
            self._failed(f"recording {self.current_name} ended with an error: {exc}")
        else:
            if self._failure is not None:
                _log.info("rig %s: recording again (%s ended whole)", self.name, self.current_name,
                          extra={"fields": {"event": "segment_recovered", "rig": self.name}})
            self._failure = None

    def _failed(self, cause: str) -> None:
        """A failure, said once until a segment ends whole again: a full disk fails every segment."""
        if self._failure is None:
            _log.warning("rig %s: %s; each new segment tries again", self.name, cause,
                         extra={"fields": {"event": "segment_failed", "rig": self.name, "cause": cause}})
        self._failure = cause

    def _expire(self) -> None:
        cutoff = time.time() - self.keep_s
        # Oldest first (names sort by their UTC start time); the segment being written is never deleted.
        kept = sorted(p for p in self.folder.glob(f"{self.name}-*.mp4") if p.name != self.current_name)
        sizes = {}
        for path in kept:
            with contextlib.suppress(OSError):
                sizes[path] = path.stat()
        total = sum(st.st_size for st in sizes.values())
        for path, st in sizes.items():
            too_old = st.st_mtime < cutoff
            too_much = self.keep_bytes is not None and total > self.keep_bytes
            if not (too_old or too_much):
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= st.st_size
                _log.info("rig %s: recording %s deleted (%s)", self.name, path.name,
                          "older than keep_hours" if too_old else "beyond keep_gb",
                          extra={"fields": {"event": "segment_expired", "rig": self.name, "file": path.name}})
