"""What registering a rig costs per frame: ``Rig.apply`` (one crop + resize of the visible frame, one
warp of the infrared one) against the engine's inference on the same 640x480 output, same run.

    python benchmarks/align_cost.py [--engine engines/occo_int8_openvino.onnx] [--rounds 20]

The rig: a 640x512 thermal core beside a 1280x720 visible camera (a real TNO pair placed with a known
similarity), output 640x480. Prints ms per frame for each, the ratio, and names the CPU. The issue's
budget: the warp must not cost more than 5% of a 640x480 INT8 frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", type=Path, default=Path("engines/occo_int8_openvino.onnx"))
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    from occo_deploy import Fuser
    from occo_deploy.registration.rig import Region, Rig
    from occo_deploy.runtime.cpu import cpu_description
    from tests.registration.test_align import _rig_frames

    ir, vis, truth = _rig_frames()
    rig = Rig((640, 512), (1280, 720), truth, Region(110, 0, 960, 720), (640, 480))
    warped, crop = rig.apply(ir, vis)
    with Fuser(args.engine) as fuser:
        fuser.fuse(warped, crop)  # compile for the size
        infer, apply = [], []
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            t0 = time.perf_counter()
            pair = rig.apply(ir, vis)
            t1 = time.perf_counter()
            fuser.fuse(*pair)
            t2 = time.perf_counter()
            apply.append(t1 - t0)
            infer.append(t2 - t1)
        name = f"{fuser.info()['backend']} {fuser.info().get('precision')}"
    a, f = statistics.median(apply) * 1e3, statistics.median(infer) * 1e3
    print(f"CPU: {cpu_description()}")
    print(f"Rig.apply (640x512 + 1280x720 -> 640x480): {a:.2f} ms/frame (median of {args.rounds})")
    print(f"fuse on {name} at 640x480:            {f:.1f} ms/frame")
    print(f"align / fuse: {a / f:.2%}")


if __name__ == "__main__":
    main()
