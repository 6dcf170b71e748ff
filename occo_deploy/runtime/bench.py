"""Engine-only timing on real frames: warm-up, then a fixed duration, as trtexec measures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from occo_deploy.runtime.fuser import Fuser
from occo_deploy.runtime.stats import summarize

#: The measurement is flagged unstable when the latency's coefficient of variation exceeds this
#: (trtexec warns about an unstable throughput in the same spirit; a shared 2-core machine often is).
UNSTABLE_COV = 0.10


@dataclass
class BenchResult:
    engine: dict[str, Any]
    shape: tuple[int, int, int]  # N, H, W per call
    calls: int
    seconds: float
    latency: dict[str, Any]  # per call, ms
    stages: dict[str, Any]  # per stage, as Fuser records them
    samples_ms: list[float]

    @property
    def fps(self) -> float:
        return self.calls * self.shape[0] / self.seconds if self.seconds > 0 else 0.0

    @property
    def cov(self) -> float:
        ms = np.asarray(self.samples_ms)
        return float(ms.std() / ms.mean()) if ms.size > 1 and ms.mean() > 0 else 0.0

    @property
    def unstable(self) -> bool:
        return self.calls < 3 or self.cov > UNSTABLE_COV

    def as_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "shape_nhw": list(self.shape), "calls": self.calls, "seconds": self.seconds,
                "throughput_fps": self.fps, "latency_ms": self.latency, "stages": self.stages,
                "coefficient_of_variation": self.cov, "unstable": self.unstable}


def run(fuser: Fuser, pairs: list[tuple[np.ndarray, np.ndarray]], *, batch: int = 1, warmup_s: float = 2.0,
        duration_s: float = 10.0) -> BenchResult:
    """Time ``fuser.fuse_batch`` on batches cycled from ``pairs`` (real frames, all one size)."""
    if not pairs:
        raise ValueError("bench needs at least one pair")
    batches = []
    for k in range(max(1, len(pairs) // batch)):  # fewer pairs than a batch: they repeat
        chosen = [pairs[(k * batch + i) % len(pairs)] for i in range(batch)]
        batches.append((np.stack([p[0] for p in chosen]), np.stack([p[1] for p in chosen])))
    start = time.perf_counter()
    k = 0
    while True:  # warm-up: at least one call, so first-call allocation never counts
        fuser.fuse_batch(*batches[k % len(batches)])
        k += 1
        if time.perf_counter() - start >= warmup_s:
            break
    fuser.stats.reset()
    samples = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fuser.fuse_batch(*batches[len(samples) % len(batches)])
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() - start >= duration_s:
            break
    seconds = time.perf_counter() - start
    n, h, w = batches[0][0].shape
    stats = fuser.stats.summary()["stages"]
    return BenchResult(engine=fuser.info(), shape=(n, h, w), calls=len(samples), seconds=seconds,
                       latency=summarize(samples), stages=stats, samples_ms=[s * 1e3 for s in samples])
