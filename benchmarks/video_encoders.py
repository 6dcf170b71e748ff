"""What the fused video's encoder costs: H.264 (the default), H.264 live (serve's recordings), FFV1
(lossless) and OpenCV's mp4v (the old default, now the fallback), per frame, in file size, and in
frames held back, with PSNR against the frames written, at 640x480 and 1920x1080, same run.

    python benchmarks/video_encoders.py [--frames 60] [--rounds 3]

Two real clips: the bundled clip's visible frames (a pan over a TNO scene, looped) and a still
night scene a car crosses (``clips.crossing_clip``: a surveillance camera's typical view, where
libx264's lookahead saves the most). Each is scaled to each size and written through
``ThreadedWriter`` as ``fuse`` writes it (the encoder thread's time per frame, as ``fuse --report``
counts it under ``encode``). Codecs are interleaved within each round; the median round is printed,
with ratios against mp4v, and the CPU is named.

All at 10 fps, a keyframe each second. ``held``: frames written before the first fragment is in the
file. A process killed outright (a node that loses power) loses the frames written since the last
fragment reached the file: at best one fragment (10 frames); what the encoder holds on top comes
from its lookahead, and lasts seconds when frames come at the rate a CPU engine fuses.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from occo_deploy.video.encode import VideoEncoding

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
#: (label, suffix, codec, crf, live)
CODECS = (("mp4v (baseline)", ".mp4", "mp4v", None, False), ("h264 crf 23", ".mp4", "h264", None, False),
          ("h264 live (serve, crf 21)", ".mp4", "h264", None, True), ("h264 crf 18", ".mp4", "h264", 18, False),
          ("ffv1 lossless", ".mkv", "ffv1", None, False))
#: A surveillance camera's rate: a keyframe (and a fragment) each 10 frames.
FPS = 10.0


def held(frames: list[np.ndarray], path: Path, suffix: str, encoding: VideoEncoding) -> int | None:
    """Frames written before the file first holds a whole fragment (its size grows past the header)."""
    from occo_deploy.video.encode import open_encoder

    h, w = frames[0].shape[:2]
    encoder = open_encoder(path, FPS, (w, h), suffix, encoding)
    try:
        header = path.stat().st_size
        for k, frame in enumerate(frames, 1):
            encoder.write(frame, at=(k - 1) / FPS)
            if path.stat().st_size > header + 1000:
                return k
        return None
    finally:
        encoder.close()


def psnr(path: Path, frames: list[np.ndarray]) -> float:
    """Mean PSNR of the decoded video against the frames written (inf where lossless)."""
    import av
    import numpy as np

    from occo_deploy.engines.gate import psnr as image_psnr

    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return float(np.mean([image_psnr(a, b[:a.shape[0], :a.shape[1]]) for a, b in zip(frames, decoded, strict=True)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import cv2
    import numpy as np
    from clips import crossing_clip

    from occo_deploy import demo
    from occo_deploy.runtime.cpu import cpu_description
    from occo_deploy.video.encode import VideoEncoding
    from occo_deploy.video.streams import ThreadedReader, ThreadedWriter, probe

    with ThreadedReader(probe(demo.VIS_CLIP, "visible"), "visible") as reader:
        pan = [f.image for f in reader]
    still = [vis for _, vis in crossing_clip(ROOT.parent / "shared" / "data", frames=args.frames)]
    clips = {"pan": pan, "still scene": still}
    print(f"CPU: {cpu_description()}; {args.frames} real frames per run, {args.rounds} interleaved rounds")
    for clip_name, clip in clips.items():
        for size, wh in SIZES.items():
            frames = [cv2.resize(clip[k % len(clip)], wh, interpolation=cv2.INTER_LINEAR) for k in range(args.frames)]
            runs: dict[str, list[tuple[float, int]]] = {label: [] for label, *_ in CODECS}
            kept: dict[str, int | None] = {}
            quality: dict[str, float] = {}
            with tempfile.TemporaryDirectory() as tmp:
                for label, suffix, codec, crf, live in CODECS:
                    if codec != "mp4v":
                        kept[label] = held(frames, Path(tmp) / f"held{suffix}", suffix,
                                           VideoEncoding(codec=codec, crf=crf, live=live))
                for _ in range(args.rounds):
                    for label, suffix, codec, crf, live in CODECS:
                        path = Path(tmp) / f"out{suffix}"
                        path.unlink(missing_ok=True)
                        spent: list[float] = []
                        with ThreadedWriter(path, FPS, wh, suffix, on_encode=spent.append,
                                            encoding=VideoEncoding(codec=codec, crf=crf, live=live)) as writer:
                            for frame in frames:
                                writer.write(frame)
                        runs[label].append((1000 * float(np.mean(spent)), path.stat().st_size))
                        quality[label] = psnr(path, frames)
            base_ms, base_size = (statistics.median(v) for v in zip(*runs[CODECS[0][0]]))
            print(f"\n{clip_name}, {size}:\n"
                  "| encoder | ms/frame | vs mp4v | kB/frame | size vs mp4v | PSNR dB | held |\n"
                  "|---|---|---|---|---|---|---|")
            for label, *_ in CODECS:
                ms, size_b = (statistics.median(v) for v in zip(*runs[label]))
                db = "lossless" if math.isinf(quality[label]) else f"{quality[label]:.2f}"
                print(f"| {label} | {ms:.1f} | {ms / base_ms:.2f}x | {size_b / args.frames / 1000:.1f} | "
                      f"{size_b / base_size:.2f}x | {db} | {kept.get(label, '-')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
