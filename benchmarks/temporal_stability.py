"""How much a fused video pumps, per stretch: the frame-to-frame brightness shift on static pixels
(``occo_deploy.evaluation.temporal``), and the fidelity to the reference's per-frame stretch.

    python benchmarks/temporal_stability.py [--engine export/occo.onnx] [--clips sequence,sequence_llvip,crossing]

Clips: the shared real sequences (``../shared/data/<name>/{ir,vi}``, static or slowly moving
cameras) and ``crossing``, a lit car crossing a still real scene (``benchmarks/clips.py``). Each is
fused three ways with the engine as ``fuse`` runs it: ``frame`` (each frame over its own range, the
reference's), ``steady`` (``--stretch steady``, the default for video) and ``fixed`` (one range over
the whole clip, known only afterwards: the yardstick a causal stretch is measured against). Printed
per clip and stretch: worst and mean |signed shift| of the fused luma on the pixels where both
inputs change by less than 3 grey levels (the whole frame brightening or darkening), and the PSNR
against ``frame``. Names the CPU; the engine's time does not enter the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared"


def load_clip(data: Path, name: str) -> list[tuple[Any, Any]]:
    import cv2

    if name == "crossing":
        from clips import crossing_clip

        return crossing_clip(data)
    folder = data / name
    ir = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((folder / "ir").iterdir())]
    vis = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted((folder / "vi").iterdir())]
    if any(image is None for image in ir + vis) or len(ir) != len(vis):
        raise SystemExit(f"cannot read the pairs of {folder}")
    return list(zip(ir, vis))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", type=Path, default=ROOT / "export" / "occo.onnx")
    parser.add_argument("--clips", default="sequence,sequence_llvip,crossing")
    parser.add_argument("--data", type=Path, default=SHARED / "data")
    args = parser.parse_args()

    import numpy as np

    from occo_deploy import Fuser
    from occo_deploy.engines.gate import psnr
    from occo_deploy.evaluation.temporal import STATIC_THRESHOLD, stability
    from occo_deploy.runtime.cpu import cpu_description
    from occo_deploy.runtime.stretch import SteadyStretch

    class Recorded(SteadyStretch):
        """Each frame over its own range (the reference), its ranges kept."""

        def __init__(self) -> None:
            super().__init__()
            self.ranges: list[tuple[float, float]] = []

        def rows(self, n: int) -> np.ndarray:
            return np.tile(np.asarray((1.0, 0.0, 0.0, 1.0), np.float32), (n, 1))

        def update(self, ranges: Any) -> None:
            self.ranges += [(float(lo), float(hi)) for lo, hi in np.asarray(ranges).reshape(-1, 2)]

    print(f"CPU: {cpu_description()}; engine {args.engine}; static: both inputs change < {STATIC_THRESHOLD:g}")
    print("\n| clip | frames | stretch | worst shift | mean shift | PSNR vs frame (dB) |")
    print("|---|---|---|---|---|---|")
    with Fuser(args.engine) as fuser:
        if not fuser.backend.steerable:
            raise SystemExit(f"{args.engine} was exported before the steady stretch; re-export it")
        for name in args.clips.split(","):
            pairs = load_clip(args.data, name)
            ir = [i for i, _ in pairs]
            vis = [v for _, v in pairs]

            def fused(stretch: Any, pairs: list[tuple[Any, Any]] = pairs) -> list[np.ndarray]:
                return [f for _, f in fuser.fuse_stream(((k, i, v) for k, (i, v) in enumerate(pairs)),
                                                        stretch=stretch)]

            recorded = Recorded()
            reference = fused(recorded)
            lo = min(r[0] for r in recorded.ranges)
            hi = max(r[1] for r in recorded.ranges)
            runs = {"frame": reference, "steady": fused("steady"), "fixed": fused(SteadyStretch.fixed(lo, hi))}
            for stretch, frames in runs.items():
                found = stability(frames, ir, vis)
                # The first frames are equal (steady starts on the frame's own range): PSNR over the rest.
                fidelity = [psnr(r, f) for r, f in zip(reference, frames) if not np.array_equal(r, f)]
                shown = f"{np.mean(fidelity):.1f}" if fidelity else "identical"
                print(f"| {name} | {len(frames)} | {stretch} | {found.worst_shift:.2f} | {found.mean_shift:.2f} | "
                      f"{shown} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
