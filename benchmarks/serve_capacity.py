"""Streams per machine: how many rigs one engine carries at the cameras' rate, per backend.

    python benchmarks/serve_capacity.py --engines export/occo.onnx,engines/occo_int8_openvino.onnx
    python benchmarks/serve_capacity.py --cameras files --engines ...   # no GStreamer (a GPU machine)

For each engine, ``serve`` runs 1, 2, 4, ... rigs (``--rigs``), each reading a 640x512 thermal and a
1280x720 visible stream, H.264 at 10 fps, registered from the fields of view (the engine gets
1032x720, as in serve_scaling.py). The cameras are two GStreamer RTSP servers every rig reads (``--cameras rtsp``) or,
where it is absent, H.264 files of the bundled clip played at their own 10 fps (``--cameras
files``: the same decoding, no network). Each run is measured over ``--seconds`` after every rig's
first fused frame. Printed per engine and N: fused fps in total and per rig, the engine's busy share,
and the streams the engine carries at the cameras' rate (the largest N whose rigs each get at least
95% of 10 fps), the way serving systems publish it: streams per CPU socket or per GPU, at a stated
resolution and rate. Names the CPU; on a GPU machine, say which GPU beside the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve_scaling import CAMERA_FPS, camera, make_rig, run_serve  # noqa: E402

#: A rig carries the cameras' rate when it gets at least this share of it.
AT_RATE = 0.95


def clip_files(folder: Path, seconds: float) -> tuple[str, str]:
    """The bundled clip as a 640x512 thermal and a 1280x720 visible H.264 file at 10 fps, ``seconds`` long."""
    import cv2

    from occo_deploy.demo import clip_pairs
    from occo_deploy.video.encode import VideoEncoding, open_encoder

    pairs = clip_pairs(50)
    paths = []
    for what, size in (("ir", (640, 512)), ("vis", (1280, 720))):
        path = folder / f"{what}.mp4"
        encoder = open_encoder(path, CAMERA_FPS, size, ".mp4", VideoEncoding())
        for k in range(round(seconds * CAMERA_FPS)):
            ir, vis = pairs[k % len(pairs)]
            image = cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR) if what == "ir" else vis
            encoder.write(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        encoder.close()
        paths.append(str(path))
    return paths[0], paths[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default=str(ROOT / "export" / "occo.onnx"),
                        help="comma-separated engine paths (ONNX Runtime, OpenVINO, TensorRT plans...)")
    parser.add_argument("--rigs", default="1,2,4", help="the numbers of rigs to try, rising")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cameras", choices=("rtsp", "files"), default="rtsp")
    parser.add_argument("--provider", default=None, help="passed to serve (ort-cuda on a GPU, say)")
    args = parser.parse_args()

    from occo_deploy.runtime.cpu import cpu_description

    counts = [int(x) for x in args.rigs.split(",")]
    print(f"CPU: {cpu_description()} ({os.cpu_count()} cores); cameras: 640x512 + 1280x720 H.264 at "
          f"{CAMERA_FPS:g} fps ({args.cameras}), registered to 1032x720; {args.seconds:g} s per run")
    extra = ["--provider", args.provider] if args.provider else []
    cameras = []
    rows: list[tuple[str, int, dict[str, float]]] = []
    carried: dict[str, int] = {}  # engine -> the most rigs it carried at the cameras' rate
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_rig(folder)
        if args.cameras == "rtsp":
            # Every rig reads and decodes both streams itself; two shared encoders keep the cameras'
            # own cost (on this machine's cores) the same for any N.
            cameras = [camera(640, 512), camera(1280, 720)]
            ir, vis = cameras[0][1], cameras[1][1]
        else:
            ir, vis = clip_files(folder, seconds=args.seconds + 200)
        try:
            for engine in (Path(e).resolve() for e in args.engines.split(",")):  # serve runs in a folder of its own
                carried[engine.name] = 0
                for n in counts:
                    result = run_serve(n, ir, vis, engine, args.seconds, folder, extra=extra)
                    at_rate = result["fps"] / n >= AT_RATE * CAMERA_FPS
                    if at_rate:
                        carried[engine.name] = n
                    rows.append((engine.name, n, result))
                    print(f"  {engine.name}, {n} rig(s): {result['fps']:.2f} fps ({result['fps'] / n:.2f} per rig), "
                          f"busy {result['busy']:.2f}, {result['mb']:.0f} MB", flush=True)
                    if not at_rate:
                        break  # more rigs only share the same engine further
        finally:
            for proc, _ in cameras:
                proc.kill()
    print("\n| engine | rigs | fused fps (per rig) | engine busy | CPU ms per frame | peak MB |")
    print("|---|---|---|---|---|---|")
    for name, n, result in rows:
        print(f"| {name} | {n} | {result['fps']:.2f} ({result['fps'] / n:.2f}) | {result['busy']:.2f} | "
              f"{result['cpu_ms']:.0f} | {result['mb']:.0f} |")
    print(f"\nStreams carried at {CAMERA_FPS:g} fps (each rig at least {AT_RATE:.0%} of it), 1032x720 fused:")
    for name, most in carried.items():
        best = max(r["fps"] for e, _, r in rows if e == name)
        print(f"  {name}: {most} rig(s); its best total {best:.2f} fused fps is "
              f"{best / CAMERA_FPS:.2f} camera-rate stream(s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    sys.exit(main())
