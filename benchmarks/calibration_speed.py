"""Histogram calibration: occo-deploy's counting against ONNX Runtime's own calibrator, same frames.

    python benchmarks/calibration_speed.py [--onnx export/occo.onnx] [--pairs ../shared/data/pairs]
                                           [--frames 6] [--size 480x640] [--methods percentile,entropy]

For each method and range kind (signed, and |x| for percentile with symmetric ranges) both measure
ranges on the same real pairs, fitted to the build's calibration size, alternating which goes first.
Prints seconds per frame, the ratio (ONNX Runtime's time over ours), and the largest difference of
a range end relative to the tensor's range: the ranges should agree within one histogram bin.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from occo_deploy.calibration import data  # noqa: E402
from occo_deploy.quantization import ranges  # noqa: E402
from occo_deploy.quantization.placement import QUANTIZED_OPS  # noqa: E402
from occo_deploy.runtime.cpu import cpu_description  # noqa: E402
from tests.calibration.onnxruntime_reference import onnxruntime_ranges  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, default=ROOT / "export" / "occo.onnx")
    ap.add_argument("--pairs", type=Path, default=ROOT.parent / "shared" / "data" / "pairs")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", default="480x640", help="HxW the frames are fitted to (the build's default)")
    ap.add_argument("--methods", default="percentile,entropy")
    args = ap.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    hw = (height, width)
    items = data.discover(args.pairs)
    step = max(1, len(items) // args.frames)
    pairs = [data.load_pair(i, hw) for i in items[::step][: args.frames]]  # spread over the data sets
    print(f"CPU: {cpu_description()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{len(pairs)} pairs of {args.pairs} at {hw[0]}x{hw[1]}\n")
    print("| method | ranges | ONNX Runtime s/frame | occo-deploy s/frame | speedup | largest difference |")
    print("|---|---|---|---|---|---|")
    cases = [(m, sym) for m in args.methods.split(",") for sym in ((False, True) if m == "percentile" else (False,))]
    for k, (method, symmetric) in enumerate(cases):
        timed: dict[str, float] = {}
        got: dict[str, ranges.Ranges] = {}
        runners = {"ort": lambda m=method, s=symmetric: onnxruntime_ranges(args.onnx, pairs, m, s, QUANTIZED_OPS),
                   "ours": lambda m=method, s=symmetric: ranges.measure(args.onnx, pairs, m, s)}
        for name in (("ort", "ours") if k % 2 == 0 else ("ours", "ort")):
            start = time.perf_counter()
            got[name] = runners[name]()
            timed[name] = (time.perf_counter() - start) / len(pairs)
        theirs = got["ort"]
        # Ours also cover tensors only another placement reads (the range cache's version 2); the
        # tensors both measured are the ones to agree.
        worst = max(max(abs(got["ours"][n][0] - lo), abs(got["ours"][n][1] - hi)) / max(abs(lo), abs(hi), 1e-12)
                    for n, (lo, hi) in theirs.items())
        kind = "abs (symmetric)" if method == "percentile" and symmetric else "signed"
        print(f"| {method} | {kind} | {timed['ort']:.2f} | {timed['ours']:.2f} | {timed['ort'] / timed['ours']:.2f}x | "
              f"{worst:.1e} of the range |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
