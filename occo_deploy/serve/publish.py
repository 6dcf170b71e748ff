"""A rig's fused frames pushed to an RTSP server (MediaMTX, GStreamer's, a VMS's ingest), as H.264.

The VMS, VLC or ffmpeg then pull the stream from that server: ``rtsp://server:8554/gate``. Frames are
encoded (libx264, no B-frames, a keyframe each second, tuned for latency) and sent by a thread of
their own; the engine loop only hands a frame over and never waits. When the server is away the
publisher tries again every few seconds, said once per cause, and frames in between are dropped
(counted): a live stream has no use for old frames.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from fractions import Fraction
from typing import Any

import numpy as np

from occo_deploy import log
from occo_deploy.urls import mask_credentials

_log = log.get("serve")

#: Seconds between attempts to reach the server again.
RETRY_S = 3.0


class Publisher:
    def __init__(self, url: str, rig: str) -> None:
        self.url, self.rig = url, rig
        self.label = mask_credentials(url)
        self.sent = 0
        self.dropped = 0
        self.state = "connecting"
        self.cause: str | None = None
        self._queue: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"publish-{rig}", daemon=True)
        self._thread.start()

    def offer(self, frame: np.ndarray, fps: float) -> None:
        """Hand a fused frame over; the oldest waiting one goes when the encoder is behind."""
        try:
            self._queue.put_nowait((frame, fps))
        except queue.Full:
            self.dropped += 1

    def figures(self) -> dict[str, Any]:
        return {"url": self.label, "state": self.state, "cause": self.cause, "sent": self.sent,
                "dropped": self.dropped}

    def close(self, wait_s: float = 2.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):  # a full queue: the thread sees the stop after its frame
            self._queue.put_nowait(None)
        self._thread.join(timeout=wait_s)

    # -- the publishing thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            try:
                self._publish(item)
            except Exception as exc:  # noqa: BLE001 - FFmpeg's errors: the server away, a refusal
                self._down(str(exc))
                self._stop.wait(RETRY_S)
                self._drain()

    def _publish(self, first: tuple[np.ndarray, float]) -> None:
        import av

        frame, fps = first
        h, w = frame.shape[:2]
        container = av.open(self.url, "w", format="rtsp", options={"rtsp_transport": "tcp"}, timeout=5.0)
        try:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
            stream.options = {"bf": "0", "g": str(max(1, round(fps))), "tune": "zerolatency", "preset": "veryfast"}
            self._up()
            start, pts = time.monotonic(), 0
            item: tuple[np.ndarray, float] | None = first
            while item is not None and not self._stop.is_set():
                image = item[0]
                if image.shape[:2] != (stream.height, stream.width):
                    import cv2

                    image = cv2.resize(image, (stream.width, stream.height), interpolation=cv2.INTER_AREA)
                video = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
                # Stamped by when it was fused: a stream that fuses slower than the cameras plays in real time.
                pts = max(pts + 1, round((time.monotonic() - start) * fps))
                video.pts = pts
                for packet in stream.encode(video):
                    container.mux(packet)
                self.sent += 1
                item = self._queue.get()
        finally:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing more to do
                container.close()

    def _drain(self) -> None:
        while True:
            try:
                if self._queue.get_nowait() is None:
                    self._stop.set()
                    return
                self.dropped += 1
            except queue.Empty:
                return

    def _up(self) -> None:
        if self.state != "live":
            self.state, self.cause = "live", None
            _log.info("rig %s: publishing to %s", self.rig, self.label,
                      extra={"fields": {"event": "publish_up", "rig": self.rig, "url": self.label}})

    def _down(self, cause: str) -> None:
        if cause != self.cause:
            _log.warning("rig %s: cannot publish to %s: %s; retrying every %g s", self.rig, self.label, cause,
                         RETRY_S, extra={"fields": {"event": "publish_down", "rig": self.rig, "url": self.label,
                                                    "cause": cause}})
        self.state, self.cause = "down", cause
