"""``Fuser``: the runtime users embed; the CLI is built on it too."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.contract import read_sidecar
from occo_deploy.errors import EngineError, ShapeError
from occo_deploy.runtime.backend import Backend, open_backend
from occo_deploy.runtime.frames import infrared_gray, match_size, visible_bgr
from occo_deploy.runtime.stats import LatencyStats

Frames = Sequence[np.ndarray] | np.ndarray


class Fuser:
    """Fuses infrared + visible frames with an exported model or a built engine.

    >>> with Fuser("export/occo.onnx") as fuser:          # doctest: +SKIP
    ...     fused = fuser.fuse(ir_frame, vis_frame)       # H x W x 3 uint8 BGR
    ...     print(fuser.stats.summary()["stages"]["infer"]["p50_ms"])

    Frames are uint8 as OpenCV gives them: visible BGR (or gray, or BGRA), infrared gray (or 3-channel).
    An infrared frame of another size is resized to the visible one (``ir_resized_from`` records it);
    one of another aspect ratio is refused. The output has the visible frame's size.
    """

    def __init__(self, engine: str | Path, *, provider: str | None = None, threads: int | None = None) -> None:
        self.engine = Path(engine)
        if not self.engine.is_file():
            raise EngineError(
                f"engine not found: {self.engine}; make one with: occo-deploy export CHECKPOINT"
            )
        self.sidecar = read_sidecar(self.engine)
        self.backend: Backend = open_backend(self.engine, self.sidecar, provider, threads)
        self.stats = LatencyStats()
        #: (H, W) of the last infrared frame that had to be resized to the visible size, else None.
        self.ir_resized_from: tuple[int, int] | None = None
        self._vis_buf: np.ndarray | None = None
        self._ir_buf: np.ndarray | None = None

    # -- public API -------------------------------------------------------------------------
    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """One pair -> one fused H x W x 3 uint8 BGR frame."""
        return self.fuse_batch([ir], [vis])[0]

    def fuse_batch(self, ir: Frames, vis: Frames) -> np.ndarray:
        """N pairs of one size -> N x H x W x 3; per-image normalisation, so equal to N ``fuse`` calls."""
        start = time.perf_counter()
        with self.stats.time("prepare"):
            visible, infrared = self._prepare(ir, vis)
        with self.stats.time("infer"):
            fused = self.backend.run(visible, infrared)
        with self.stats.time("finish"):
            fused = np.asarray(fused)
            if fused.shape != visible.shape or fused.dtype != np.uint8:
                raise EngineError(
                    f"{self.engine} returned {fused.dtype} {fused.shape} for {visible.shape}; "
                    "re-export or rebuild it with this occo-deploy"
                )
        self.stats.add("total", time.perf_counter() - start)
        self.stats.count_frames(len(fused))
        return fused

    def info(self) -> dict[str, Any]:
        """Backend, provider, precision and artifact: what a report says about this engine."""
        return self.backend.describe()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Fuser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _prepare(self, ir: Frames, vis: Frames) -> tuple[np.ndarray, np.ndarray]:
        """Contract-shaped contiguous batches, written into reused buffers (no per-call allocation)."""
        n = len(vis)
        if n == 0 or len(ir) != n:
            raise ShapeError(f"need as many infrared as visible frames, and at least one (got {len(ir)} and {n})")
        first = visible_bgr(vis[0])
        h, w = first.shape[:2]
        self.backend.shapes.check(n, h, w)
        if n == 1 and first.flags.c_contiguous:
            # A lone contiguous frame is already in contract layout: a view, no copy.
            ir0 = self._ir_frame(ir[0], (h, w))
            return first[None], np.ascontiguousarray(ir0)[None]
        if self._vis_buf is None or self._vis_buf.shape != (n, h, w, 3):
            self._vis_buf = np.empty((n, h, w, 3), np.uint8)
            self._ir_buf = np.empty((n, h, w), np.uint8)
        assert self._ir_buf is not None
        for k in range(n):
            frame = first if k == 0 else visible_bgr(vis[k])
            if frame.shape[:2] != (h, w):
                raise ShapeError(
                    f"visible frames in one batch must share a size ({h}x{w} and {frame.shape[0]}x{frame.shape[1]}); "
                    "fuse them one by one"
                )
            self._vis_buf[k] = frame
            self._ir_buf[k] = self._ir_frame(ir[k], (h, w))
        return self._vis_buf, self._ir_buf

    def _ir_frame(self, frame: np.ndarray, vis_hw: tuple[int, int]) -> np.ndarray:
        gray = infrared_gray(frame)
        if gray.shape != vis_hw:
            self.ir_resized_from = gray.shape  # type: ignore[assignment]
            gray = match_size(gray, vis_hw)
        return gray
