"""Live pairing and fusion: always the newest visible frame, with the infrared frame nearest in time.

Real-time semantics, unlike the file mode, which fuses every frame: when the engine is slower than
the cameras, the visible frames that arrived while it worked are dropped (counted), so latency stays
bounded instead of growing with a queue. Pairs form by arrival time: the infrared frame nearest to
the visible frame's arrival (plus ``offset_ms``, a known lag of the infrared stream), within
``tolerance_ms``; when the newest infrared frame is older than that, the loop waits for the next one
up to the tolerance, then gives the visible frame up as unpaired.

Latency is capture-to-output as this process sees it: from the visible frame's arrival from its
reader to its fused frame being ready. The camera's and the network's own delays come before and
are not in it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from occo_deploy.errors import SourceError
from occo_deploy.live.sources import RATE_WINDOW_S, Source, pairing_tolerance_s
from occo_deploy.runtime.stats import LIVE_WINDOW, LatencyStats, summarize

if TYPE_CHECKING:
    from occo_deploy.fusing.fuser import Fuser


@dataclass(frozen=True)
class LiveFrame:
    index: int  # fused frames so far, from 0
    vis_index: int
    ir_index: int
    t_capture: float  # the visible frame's arrival, time.monotonic()
    t_output: float
    pair_dt_ms: float  # infrared arrival minus visible arrival minus the offset
    fused: np.ndarray
    ir: np.ndarray  # the inputs, as their sources decoded them
    vis: np.ndarray

    @property
    def latency_ms(self) -> float:
        return (self.t_output - self.t_capture) * 1e3


class LiveFusion:
    """Iterate fused ``LiveFrame``s from two live sources until ``stop``, ``duration_s`` or a source's end.

    A source that fails (down past its reconnect timeout) ends the iteration with ``SourceError``;
    ``figures()`` is valid throughout and after.
    """

    def __init__(self, fuser: Fuser, ir: Source, vis: Source, *, offset_ms: float = 0.0,
                 tolerance_ms: float | None = None, duration_s: float | None = None) -> None:
        self.fuser, self.ir, self.vis = fuser, ir, vis
        self.offset_s = offset_ms / 1e3
        self.tolerance_ms = tolerance_ms
        self.duration_s = duration_s
        self.latency = LatencyStats(window=LIVE_WINDOW)  # a live run may last for days
        self.fused = 0
        self.dropped = 0  # visible frames that arrived while the engine was busy, never fused
        self.unpaired = 0  # visible frames no infrared frame matched within the tolerance
        self._outputs: deque[float] = deque()
        self._stop = threading.Event()
        self.started = time.monotonic()
        self.stopped_because = ""
        self._fuse_s = 0.0  # how long the last fuse took: a frame that cannot end by --duration is not begun
        #: A fuse left running when Ctrl-C or SIGTERM came (``_fuse``); None when none is.
        self.abandoned: threading.Thread | None = None
        #: The range this rig's frames are stretched over, held steady unless ``Fuser(stretch="frame")``.
        self.stretch = fuser.steady(fuser.stretch or "steady")

    def stop(self, why: str = "stopped") -> None:
        self.stopped_because = self.stopped_because or why
        self._stop.set()

    def tolerance_s(self) -> float:
        if self.tolerance_ms is not None:
            return self.tolerance_ms / 1e3
        return pairing_tolerance_s(self.ir, self.vis)

    def _fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """``fuser.fuse`` on a thread of its own, waited for in short steps: Ctrl-C (or SIGTERM) reaches
        this thread at once instead of after a fuse that may take seconds; the abandoned fuse ends
        by itself (a daemon thread, so it never holds the process open)."""
        result: list[np.ndarray] = []
        failed: list[BaseException] = []
        done = threading.Event()

        def work() -> None:
            try:
                result.append(self.fuser.fuse(ir, vis, self.stretch))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                failed.append(exc)
            finally:
                done.set()

        worker = threading.Thread(target=work, name="live-fuse", daemon=True)
        worker.start()
        try:
            while not done.wait(0.1):
                pass
        except BaseException:
            self.abandoned = worker  # still fusing: the caller must not tear the process down under it
            raise
        if failed:
            raise failed[0]
        return result[0]

    def __iter__(self) -> Iterator[LiveFrame]:
        last = -1
        self.started = time.monotonic()
        while not self._stop.is_set():
            if self.duration_s is not None and time.monotonic() - self.started >= self.duration_s:
                self.stop(f"{self.duration_s:g} s elapsed")
                break
            for source in (self.vis, self.ir):
                if source.state == "failed":
                    self.stop("a source failed")
                    raise SourceError(source.error or f"{source.what} source failed")
            vis = self.vis.newest(last, timeout=0.2)
            if vis is None:
                if self.vis.state == "ended" and self.vis.newest(last, 0) is None:
                    self.stop("the visible input ended")
                continue
            if last >= 0:
                self.dropped += vis.index - last - 1
            last = vis.index
            target = vis.t + self.offset_s
            tolerance = self.tolerance_s()
            self.ir.wait_until(target, timeout=max(0.0, target + tolerance - time.monotonic()))
            ir = self.ir.nearest(target)
            if ir is None or abs(ir.t - target) > tolerance:
                self.unpaired += 1
                if self.ir.state == "ended" and (ir is None or ir.t < target):
                    self.stop("the infrared input ended")
                continue
            if self.duration_s is not None and self._fuse_s and \
                    time.monotonic() + self._fuse_s > self.started + self.duration_s:
                # This frame would end past --duration (a fuse takes seconds on a slow engine): the run
                # ends now rather than as much as a whole fuse late.
                self.stop(f"{self.duration_s:g} s elapsed")
                break
            began = time.monotonic()
            fused = self._fuse(ir.image, vis.image)
            now = time.monotonic()
            self._fuse_s = now - began
            frame = LiveFrame(self.fused, vis.index, ir.index, vis.t, now, (ir.t - target) * 1e3, fused, ir.image,
                              vis.image)
            self.fused += 1
            self._outputs.append(now)
            yield frame
            # Latency counts what the consumer did with the frame too (writing, publishing).
            self.latency.add("capture_to_output", time.monotonic() - vis.t)

    def figures(self) -> dict[str, Any]:
        """Rates (over the last few seconds and overall), counts and latency percentiles."""
        now = time.monotonic()
        while self._outputs and now - self._outputs[0] > RATE_WINDOW_S:
            self._outputs.popleft()
        elapsed = max(1e-9, now - self.started)
        window = min(RATE_WINDOW_S, elapsed)
        latency = summarize(self.latency.samples("capture_to_output"))
        return {
            "elapsed_s": elapsed, "fused": self.fused, "dropped": self.dropped, "unpaired": self.unpaired,
            "fps_out": len(self._outputs) / window, "fps_out_overall": self.fused / elapsed,
            "fps_in": {"visible": self.vis.figures()["fps_in"], "infrared": self.ir.figures()["fps_in"]},
            "latency_ms": latency, "tolerance_ms": self.tolerance_s() * 1e3, "offset_ms": self.offset_s * 1e3,
            "sources": {"visible": self.vis.figures(), "infrared": self.ir.figures()},
            "stopped_because": self.stopped_because or None,
        }
