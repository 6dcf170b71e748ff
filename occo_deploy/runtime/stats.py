"""Latency statistics per pipeline stage, with the same names and JSON shape everywhere.

Stages: ``decode``, ``prepare``, ``h2d``, ``infer``, ``d2h``, ``finish``, ``encode``, ``total``. Each
records one duration per call (a batch for the engine stages, a frame for decode/encode). Live runs
add ``capture_to_output``: from a visible frame's arrival in the process to its fused frame being
ready (written or published).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

STAGES = ("decode", "align", "prepare", "h2d", "infer", "d2h", "finish", "encode", "total", "capture_to_output")
PERCENTILES = (50, 90, 95, 99)


def summarize(durations_s: list[float] | np.ndarray) -> dict[str, float | int]:
    """count, mean, min, p50/p90/p95/p99 and max, in milliseconds."""
    ms = np.asarray(durations_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"count": 0}
    # "linear" interpolation is numpy's default and what most latency tools report.
    pct = np.percentile(ms, PERCENTILES)
    out: dict[str, float | int] = {"count": int(ms.size), "mean_ms": float(ms.mean()), "min_ms": float(ms.min())}
    out.update({f"p{p}_ms": float(v) for p, v in zip(PERCENTILES, pct)})
    out["max_ms"] = float(ms.max())
    return out


#: Samples per stage a service or a live run keeps: the last 10 000 calls (0.4 MB a stage).
LIVE_WINDOW = 10_000


class LatencyStats:
    """Thread-safe collector of per-stage durations (decode and encode run on their own threads).

    A job keeps every sample; a service or a live run that lasts for days keeps the last ``window``
    of each stage (its percentiles are then those of the last ``window`` calls), so that memory
    stays flat.
    """

    def __init__(self, window: int | None = None) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._samples: dict[str, deque[float]] = {}
        self.frames = 0

    def add(self, stage: str, seconds: float) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=self._window)).append(seconds)

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def count_frames(self, n: int) -> None:
        with self._lock:
            self.frames += n

    def samples(self, stage: str) -> list[float]:
        with self._lock:
            return list(self._samples.get(stage, []))

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
            self.frames = 0

    def summary(self) -> dict[str, Any]:
        """``{"frames": n, "stages": {stage: {count, mean_ms, p50_ms, ...}}}`` in pipeline order."""
        with self._lock:
            stages = {s: summarize(list(self._samples[s])) for s in STAGES if self._samples.get(s)}
            return {"frames": self.frames, "stages": stages}
