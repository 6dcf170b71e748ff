"""What the video pipeline costs on top of the engine: ``fuse`` of the bundled clip vs ``bench`` on its frames.

    python benchmarks/fuse_overhead.py [ENGINE ...] [--rounds 2]

For each engine, alternately: the engine alone on the clip's 20 frames (one call per frame, what
``bench`` measures), and the whole ``fuse`` job on the clip (threaded decode, pairing, prepare,
inference, threaded encode, atomic write). Prints ms/frame of both and the overhead in percent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engines", nargs="*", type=Path, default=[ROOT / "export" / "occo.onnx"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from occo_deploy import demo
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.fusing.jobs import fuse_video

    frames = demo.clip_pairs(20)
    height, width = frames[0][1].shape[:2]
    print(f"{os.cpu_count()} cpus; bundled clip: {len(frames)} frames of {width}x{height}")
    print(f"{'engine':<34} {'engine only ms/frame':>21} {'fuse ms/frame':>14} {'overhead':>9}")
    for engine in args.engines:
        bare, whole = [], []
        with Fuser(engine, threads=args.threads) as fuser:
            fuser.fuse(*frames[0])  # warm-up
            for _ in range(args.rounds):
                start = time.perf_counter()
                for ir, vis in frames:
                    fuser.fuse(ir, vis)
                bare.append((time.perf_counter() - start) / len(frames))
                with tempfile.TemporaryDirectory() as tmp:
                    report = fuse_video(fuser, demo.IR_CLIP, demo.VIS_CLIP, Path(tmp) / "fused.mp4")
                whole.append(report.wall_s / report.frames)
        b, w = statistics.median(bare), statistics.median(whole)
        print(f"{engine.name:<34} {b * 1e3:>21.0f} {w * 1e3:>14.0f} {100 * (w / b - 1):>8.1f}%")


if __name__ == "__main__":
    main()
