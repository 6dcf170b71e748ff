"""A real-time stream sender for the live tests: frames of ../shared/data/sequence, encoded (MPEG-2 in
MPEG-TS, with PyAV's FFmpeg) and sent to a URL at a fixed rate, as a network camera would.

    python tests/live/sender.py tcp://127.0.0.1:9000?listen=1 --what ir --fps 30 --size 320x240 [--seconds S]

``tcp://...?listen=1`` waits for the receiver to connect; ``udp://127.0.0.1:9000?pkt_size=1316`` sends
at once. Loops over the sequence until killed or ``--seconds`` passed.
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2

ROOT = Path(__file__).resolve().parents[2]


def frames(what: str, size_wh: tuple[int, int]) -> list:
    import os

    shared = Path(os.environ.get("OCCO_SHARED", ROOT.parent / "shared"))
    folder = shared / "data" / "sequence" / ("ir" if what == "ir" else "vi")
    return [cv2.resize(cv2.imread(str(p)), size_wh, interpolation=cv2.INTER_AREA) for p in sorted(folder.glob("*.png"))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--what", choices=("ir", "vis"), required=True)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    images = frames(args.what, (w, h))
    container = av.open(args.url, "w", format="mpegts")
    stream = container.add_stream("mpeg2video", rate=Fraction(args.fps).limit_denominator(1000))
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.bit_rate = 2_000_000
    stream.options = {"g": str(int(args.fps))}  # a keyframe every second: a receiver that joins late starts soon
    start, k = time.monotonic(), 0
    try:
        while args.seconds is None or time.monotonic() - start < args.seconds:
            frame = av.VideoFrame.from_ndarray(images[k % len(images)], format="bgr24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
            k += 1
            time.sleep(max(0.0, start + k / args.fps - time.monotonic()))
    except (BrokenPipeError, ConnectionResetError, av.error.OSError):
        return 0  # the receiver went away
    finally:
        try:
            for packet in stream.encode():
                container.mux(packet)
            container.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
