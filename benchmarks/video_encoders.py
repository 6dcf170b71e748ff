"""What the fused video's encoder costs: H.264 (the default), FFV1 (lossless) and OpenCV's mp4v (the
old default, now the fallback), per frame and in file size, at 640x480 and 1920x1080, same run.

    python benchmarks/video_encoders.py [--frames 60] [--rounds 3]

The frames are the bundled real clip's visible frames (a pan over a TNO scene), scaled to each size
and looped, written through ``ThreadedWriter`` as ``fuse`` writes them (the encoder thread's time per
frame, as ``fuse --report`` counts it under ``encode``). Codecs are interleaved within each round;
the median round is printed, with ratios against mp4v, and the CPU is named.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
#: (label, suffix, codec, crf)
CODECS = (("mp4v (baseline)", ".mp4", "mp4v", None), ("h264 crf 23", ".mp4", "h264", None),
          ("h264 crf 18", ".mp4", "h264", 18), ("ffv1 lossless", ".mkv", "ffv1", None))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import cv2
    import numpy as np

    from occo_deploy import demo
    from occo_deploy.runtime.cpu import cpu_description
    from occo_deploy.video.encode import VideoEncoding
    from occo_deploy.video.streams import ThreadedReader, ThreadedWriter, probe

    with ThreadedReader(probe(demo.VIS_CLIP, "visible"), "visible") as reader:
        clip = [f.image for f in reader]
    print(f"CPU: {cpu_description()}; {args.frames} real frames per run, {args.rounds} interleaved rounds")
    for size, wh in SIZES.items():
        frames = [cv2.resize(clip[k % len(clip)], wh, interpolation=cv2.INTER_LINEAR) for k in range(args.frames)]
        runs: dict[str, list[tuple[float, int]]] = {label: [] for label, *_ in CODECS}
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                for label, suffix, codec, crf in CODECS:
                    path = Path(tmp) / f"out{suffix}"
                    path.unlink(missing_ok=True)
                    spent: list[float] = []
                    with ThreadedWriter(path, 30.0, wh, suffix, on_encode=spent.append,
                                        encoding=VideoEncoding(codec=codec, crf=crf)) as writer:
                        for frame in frames:
                            writer.write(frame)
                    runs[label].append((1000 * float(np.mean(spent)), path.stat().st_size))
        base_ms, base_size = (statistics.median(v) for v in zip(*runs[CODECS[0][0]]))
        print(f"\n{size}:\n| encoder | ms/frame | vs mp4v | kB/frame | size vs mp4v |\n|---|---|---|---|---|")
        for label, *_ in CODECS:
            ms, size_b = (statistics.median(v) for v in zip(*runs[label]))
            print(f"| {label} | {ms:.1f} | {ms / base_ms:.2f}x | {size_b / args.frames / 1000:.1f} | "
                  f"{size_b / base_size:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
