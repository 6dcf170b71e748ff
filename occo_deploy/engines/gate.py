"""The quality gate: a new engine against the FP32 ONNX on real pairs it was not calibrated on."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from occo_deploy.errors import EngineError
from occo_deploy.progress import Progress
from occo_deploy.runtime.backend import Backend
from occo_deploy.sidecar import Gate

#: Default --min-psnr per precision (dB, fused uint8 frames against the FP32 ONNX).
DEFAULT_MIN_PSNR = {"fp32": 40.0, "fp16": 40.0, "bf16": 40.0, "int8": 35.0}


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255); inf when identical."""
    return psnr_from_mse(_mse(a, b))


@dataclass
class GateResult:
    pairs: int
    psnr_min: float  # the worst pair: what the gate enforces
    psnr_all: float  # over all pixels of all pairs (from the pooled squared error)
    max_abs: int
    min_psnr: float
    largest_hw: tuple[int, int] = (0, 0)  # the largest frame checked (H, W)
    #: Seconds the FP32 reference and the candidate took on the same frames, the first of each size
    #: left out (compiles, allocations): how much faster the engine is on this machine.
    reference_s: float = 0.0
    candidate_s: float = 0.0
    #: The CPU class (``runtime.cpu.cpu_class``) and model it ran on, for a CPU backend whose results
    #: depend on the class; None for arithmetic that is the same everywhere (Q/DQ as stated, GPUs).
    cpu_class: str | None = None
    cpu: str | None = None

    @property
    def speedup(self) -> float | None:
        return self.reference_s / self.candidate_s if self.candidate_s > 0 and self.reference_s > 0 else None

    @property
    def passed(self) -> bool:
        return self.psnr_min >= self.min_psnr

    def as_dict(self) -> Gate:
        def db(v: float) -> float | None:  # JSON has no infinity: identical frames are null
            return None if math.isinf(v) else round(v, 3)

        out: Gate = {"reference": "fp32 onnx on onnxruntime cpu", "metric": "psnr of fused uint8 frames (dB)",
                     "pairs": self.pairs, "psnr_min": db(self.psnr_min), "psnr_all": db(self.psnr_all),
                     "max_abs_error": self.max_abs, "min_psnr": self.min_psnr, "largest_hw": list(self.largest_hw),
                     "passed": self.passed, "reference_s": round(self.reference_s, 3),
                     "candidate_s": round(self.candidate_s, 3),
                     "speedup_vs_fp32": None if self.speedup is None else round(self.speedup, 3)}
        if self.cpu_class:
            out["cpu_class"], out["cpu"] = self.cpu_class, self.cpu or ""
        return out

    def describe(self) -> str:
        def db(v: float) -> str:
            return "identical" if math.isinf(v) else f"{v:.1f} dB"

        return (f"PSNR vs FP32 on {self.pairs} held-out frames (largest {self.largest_hw[0]}x{self.largest_hw[1]}): "
                f"worst {db(self.psnr_min)}, all "
                f"{db(self.psnr_all)}, max error {self.max_abs} grey levels (gate: {self.min_psnr:g} dB)")


def compare(reference: Backend, candidate: Backend, pairs: list[tuple[np.ndarray, np.ndarray]],
            min_psnr: float, progress: Progress | None = None) -> GateResult:
    """Run both on every pair (one at a time, at the pairs' size) and summarise; the caller enforces."""
    if not pairs:
        raise EngineError("no pairs to check the engine on")
    errors, worst = [], 0
    largest = max((p[0].shape[:2] for p in pairs), key=lambda hw: hw[0] * hw[1])
    seen: set[tuple[int, int]] = set()
    ref_s = cand_s = 0.0
    for k, (ir, vis) in enumerate(pairs):
        t0 = time.perf_counter()
        want = reference.run(vis[None], ir[None])[0]
        t1 = time.perf_counter()
        got = candidate.run(vis[None], ir[None])[0]
        t2 = time.perf_counter()
        if ir.shape[:2] in seen:
            ref_s, cand_s = ref_s + t1 - t0, cand_s + t2 - t1
        seen.add(ir.shape[:2])
        errors.append(_mse(want, got))
        worst = max(worst, int(np.abs(want.astype(np.int16) - got.astype(np.int16)).max()))
        if progress:
            progress(k + 1, len(pairs))
    return GateResult(len(pairs), psnr_from_mse(max(errors)), psnr_from_mse(float(np.mean(errors))), worst, min_psnr,
                      (int(largest[0]), int(largest[1])), ref_s, cand_s)
