"""Engine-only timing on real frames: warm-up, then a fixed duration, as trtexec measures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from occo_deploy.fusing.fuser import Fuser
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


def _feed(pairs: list[tuple[np.ndarray, np.ndarray]], batch: int, seconds: float
          ) -> Iterator[tuple[None, np.ndarray, np.ndarray]]:
    """Pairs cycled for ``seconds``, ending on a whole batch (at least one)."""
    start = time.perf_counter()
    k = 0
    while True:
        ir, vis = pairs[k % len(pairs)]
        yield None, ir, vis
        k += 1
        if k % batch == 0 and time.perf_counter() - start >= seconds:
            return


def run(fuser: Fuser, pairs: list[tuple[np.ndarray, np.ndarray]], *, batch: int = 1, warmup_s: float = 2.0,
        duration_s: float = 10.0) -> BenchResult:
    """Time ``fuser.fuse_stream`` on ``(ir, vis)`` pairs (real frames, all one size) in batches of ``batch``.

    The same pipelined path ``fuse`` takes: with a backend that keeps several batches in flight,
    throughput counts the overlap, and a batch's latency runs from its submit to its frames coming
    out (``total``), queueing included, as a stream of frames sees it.
    """
    if not pairs:
        raise ValueError("bench needs at least one pair")
    for _ in fuser.fuse_stream(_feed(pairs, batch, warmup_s), batch):
        pass  # warm-up: at least one batch, so first-call allocation never counts
    fuser.stats.reset()
    start = time.perf_counter()
    for _ in fuser.fuse_stream(_feed(pairs, batch, duration_s), batch):
        pass
    seconds = time.perf_counter() - start
    samples = fuser.stats.samples("total")
    h, w = pairs[0][1].shape[:2]
    stats = fuser.stats.summary()["stages"]
    return BenchResult(engine=fuser.info(), shape=(batch, h, w), calls=len(samples), seconds=seconds,
                       latency=summarize(samples), stages=stats, samples_ms=[s * 1e3 for s in samples])
