"""How much a fused video pumps: the frame-to-frame brightness shift on static pixels
(``occo_deploy.evaluation.temporal``), on the shared real sequences, against the inputs' own change.

    python benchmarks/temporal_stability.py [--engine export/occo.onnx] [--sequences sequence,sequence_llvip]

Each sequence (``../shared/data/<name>/{ir,vi}``, static or slowly moving cameras) is fused frame by
frame with the engine as ``fuse`` runs it, and the shift of the fused luma on the pixels where both
inputs change by less than 3 grey levels is printed per sequence: worst and mean |signed shift|
(the whole frame brightening or darkening), mean absolute change, and the inputs' own. Names the
CPU; the engine's time does not enter the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", type=Path, default=ROOT / "export" / "occo.onnx")
    parser.add_argument("--sequences", default="sequence,sequence_llvip")
    parser.add_argument("--data", type=Path, default=SHARED / "data")
    args = parser.parse_args()

    import cv2
    import numpy as np

    from occo_deploy import Fuser
    from occo_deploy.evaluation.temporal import STATIC_THRESHOLD, stability
    from occo_deploy.runtime.cpu import cpu_description

    print(f"CPU: {cpu_description()}; engine {args.engine}; static: both inputs change < {STATIC_THRESHOLD:g}")
    print("\n| sequence | frames | worst shift | mean shift | mean abs change | inputs' own |")
    print("|---|---|---|---|---|---|")
    with Fuser(args.engine) as fuser:
        for name in args.sequences.split(","):
            folder = args.data / name
            ir_paths, vis_paths = sorted((folder / "ir").iterdir()), sorted((folder / "vi").iterdir())
            ir: list[np.ndarray] = []
            vis: list[np.ndarray] = []
            for path, frames, flags in [(p, ir, cv2.IMREAD_GRAYSCALE) for p in ir_paths] + \
                                       [(p, vis, cv2.IMREAD_COLOR) for p in vis_paths]:
                image = cv2.imread(str(path), flags)
                if image is None:
                    raise SystemExit(f"cannot read {path}")
                frames.append(image)
            fused = [f for _, f in fuser.fuse_stream(((k, i, v) for k, (i, v) in enumerate(zip(ir, vis))))]
            found = stability(fused, ir, vis).as_dict()
            print(f"| {name} | {len(fused)} | {found['worst_shift']:.2f} | {found['mean_shift']:.2f} | "
                  f"{found['mean_abs']:.2f} | {found['inputs_mean_abs']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
