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
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve_scaling import CAMERA_FPS, PeakMemory, camera, cpu_seconds, make_rig  # noqa: E402

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


def run(n: int, sources: list[tuple[str, str]], engine: Path, seconds: float, folder: Path,
        extra: list[str]) -> dict[str, float]:
    """``serve`` with ``n`` rigs: fused fps, the engine's busy share, peak MB, CPU s per fused frame."""
    rigs = "".join(f'[rigs.r{k}]\ninfrared = "{ir}"\nvisible = "{vis}"\nalign = "rig.json"\n\n'
                   for k, (ir, vis) in enumerate(sources[:n]))
    (folder / "rigs.toml").write_text(rigs)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "occo_deploy", "serve", "rigs.toml", "--engine", str(engine),
                             "--listen", f"127.0.0.1:{port}", *extra], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    memory = PeakMemory([proc.pid])

    def state() -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/rigs", timeout=5) as response:
                body: dict[str, object] = json.load(response)
            return body
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 180
        while True:
            body = state()
            rigs_now = body["rigs"] if body else []
            if isinstance(rigs_now, list) and rigs_now and all(r["fused"] > 0 for r in rigs_now):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"serve with {n} rig(s) of {engine} fused nothing within 180 s")
            time.sleep(0.5)
        start = sum(r["fused"] for r in rigs_now)
        began, cpu = time.monotonic(), cpu_seconds(proc.pid)
        time.sleep(seconds)
        body = state() or {}
        rigs_end = body.get("rigs", [])
        assert isinstance(rigs_end, list)
        end = sum(r["fused"] for r in rigs_end)
        elapsed = time.monotonic() - began
        busy = body.get("busy_ratio") or 0.0
        result = {"fps": (end - start) / elapsed, "busy": float(busy) if isinstance(busy, (int, float)) else 0.0,
                  "cpu_ms": (cpu_seconds(proc.pid) - cpu) / max(1, end - start) * 1e3}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    result["mb"] = memory.stop()
    return result


def _free_port() -> int:
    from tests.support import free_port

    return free_port()


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
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_rig(folder)
        if args.cameras == "rtsp":
            # Every rig reads and decodes both streams itself; two shared encoders keep the cameras'
            # own cost (on this machine's cores) the same for any N.
            cameras = [camera(640, 512), camera(1280, 720)]
            sources = [(cameras[0][1], cameras[1][1])] * max(counts)
        else:
            ir, vis = clip_files(folder, seconds=args.seconds + 200)
            sources = [(ir, vis)] * max(counts)
        try:
            for engine in (Path(e).resolve() for e in args.engines.split(",")):  # serve runs in a folder of its own
                carried = 0
                for n in counts:
                    result = run(n, sources, engine, args.seconds, folder, extra)
                    at_rate = result["fps"] / n >= AT_RATE * CAMERA_FPS
                    carried = n if at_rate else carried
                    rows.append((engine.name, n, result))
                    print(f"  {engine.name}, {n} rig(s): {result['fps']:.2f} fps ({result['fps'] / n:.2f} per rig), "
                          f"busy {result['busy']:.2f}, {result['mb']:.0f} MB", flush=True)
                    if not at_rate:
                        break  # more rigs only share the same engine further
                rows.append((engine.name, -1, {"carried": carried}))
        finally:
            for proc, _ in cameras:
                proc.kill()
    print("\n| engine | rigs | fused fps (per rig) | engine busy | CPU ms per frame | peak MB |")
    print("|---|---|---|---|---|---|")
    for name, n, result in rows:
        if n < 0:
            continue
        print(f"| {name} | {n} | {result['fps']:.2f} ({result['fps'] / n:.2f}) | {result['busy']:.2f} | "
              f"{result['cpu_ms']:.0f} | {result['mb']:.0f} |")
    print(f"\nStreams carried at {CAMERA_FPS:g} fps (each rig at least {AT_RATE:.0%} of it), 1032x720 fused:")
    for name, n, result in rows:
        if n < 0:
            best = max((r["fps"] for e, k, r in rows if e == name and k > 0), default=0.0)
            print(f"  {name}: {int(result['carried'])} rig(s); its best total {best:.2f} fused fps is "
                  f"{best / CAMERA_FPS:.2f} camera-rate stream(s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    sys.exit(main())
