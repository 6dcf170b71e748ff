"""``eval`` on a pair of videos: how still each engine's fused video holds, per stretch.

Each engine fuses the paired frames twice, stretched per frame (the reference's) and held steady
(what ``fuse`` writes for videos), and each run's brightness shift on static pixels is measured
(``evaluation.temporal``), with the steady run's fidelity to the per-frame one as PSNR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.evaluation.temporal import STATIC_THRESHOLD, Stability, stability
from occo_deploy.fusing.fuser import Fuser
from occo_deploy.fusing.jobs import VideoPairs
from occo_deploy.fusing.options import RunOptions
from occo_deploy.progress import Progress

#: Frames read when ``limit`` is not given: every fused frame of both runs is held for the measure.
DEFAULT_LIMIT = 300


@dataclass
class StretchRun:
    engine: str
    stretch: str
    stability: Stability
    #: Mean PSNR (dB) against the per-frame run over the frames that differ from it; None: none do.
    psnr_vs_frame: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "stretch": self.stretch, "psnr_vs_frame": self.psnr_vs_frame,
                **self.stability.as_dict()}


@dataclass
class VideoEval:
    frames: int
    pairing: dict[str, Any]
    runs: list[StretchRun] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "video", "static_threshold": STATIC_THRESHOLD, "frames": self.frames,
                "pairing": self.pairing, "runs": [r.as_dict() for r in self.runs]}


def read_pairs(ir: Path, vis: Path, limit: int, offset_ms: float = 0.0) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                                                 VideoPairs]:
    """The first ``limit`` (infrared, visible) frame pairs of two videos, paired as ``fuse`` pairs them."""
    videos = VideoPairs.open(ir, vis, offset_ms)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    with videos.frames() as paired:
        for v, i in paired:
            pairs.append((i.image, v.image))
            if len(pairs) == limit:
                break
    if len(pairs) < 2:
        raise videos.none_paired(ir, vis) if not pairs else InputError(
            f"{vis} and {ir} pair into one frame; the temporal measure needs two or more")
    return pairs, videos


def evaluate_video(ir: Path, vis: Path, engines: Sequence[Path], run: RunOptions, *, limit: int | None = None,
                   progress: Progress | None = None) -> VideoEval:
    """Each engine's fused video of ``ir`` + ``vis``, per frame and steady, measured for stability."""
    pairs, videos = read_pairs(ir, vis, limit or DEFAULT_LIMIT)
    result = VideoEval(len(pairs), videos.as_dict())
    infrared = [i for i, _ in pairs]
    visible = [v for _, v in pairs]
    total = 2 * len(engines) * len(pairs)
    done = 0
    for engine in engines:
        with Fuser(engine, **run.kwargs()) as fuser:
            reference: list[np.ndarray] = []
            for stretch in ("frame", "steady"):
                fused = []
                for _, frame in fuser.fuse_stream(((k, i, v) for k, (i, v) in enumerate(pairs)), stretch=stretch):
                    fused.append(frame)
                    done += 1
                    if progress:
                        progress(done, total)
                if stretch == "frame":
                    reference = fused
                result.runs.append(StretchRun(engine.name, stretch, stability(fused, infrared, visible),
                                              _fidelity(reference, fused)))
    return result


def _fidelity(reference: list[np.ndarray], fused: list[np.ndarray]) -> float | None:
    from occo_deploy.engines.gate import psnr

    values = [psnr(r, f) for r, f in zip(reference, fused) if not np.array_equal(r, f)]
    return round(float(np.mean(values)), 2) if values else None
